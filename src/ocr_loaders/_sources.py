"""Inputs: paths, folders, globs, bytes and file objects -> documents -> selected pages.

Nothing here renders. A :class:`DocumentSource` names one input; :func:`open_input` opens it
(PyMuPDF for PDFs, Pillow for images, TIFF frames as pages) and checks it, raising one of the
project's :mod:`~ocr_loaders._errors` naming the file. What it is (hash, kind, page count, page
labels) is a :class:`DocumentOutline`; :mod:`ocr_loaders._rendering` turns the opened handle's
pages into images, one at a time, so a 1000-page PDF is never rendered up front.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union, cast

from ._errors import (
    ConfigError,
    CorruptInputError,
    EmptyDocumentError,
    InputNotFoundError,
    PasswordError,
    UnreadableInputError,
    UnsupportedInputError,
)
from ._model import SourceInfo
from ._page_weights import page_weights
from ._sniff import (
    SUFFIXES,
    Kind,
    claimed_kind,
    describe_content,
    eof_marker_missing,
    sniff_kind,
)

log = logging.getLogger(__name__)

Input = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
"""Anything a loader accepts: a path, folder or glob; raw bytes; a binary file object."""


# --- page selection -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageSelection:
    """1-based page ranges such as ``"1-3,7,10-"``; ``None`` ranges mean every page."""

    ranges: tuple[tuple[int, int | None], ...] | None = None

    @classmethod
    def parse(cls, spec: str | Iterable[int] | PageSelection | None) -> PageSelection:
        """Parse ``"1-3,7"``, ``"5-"`` (5 to the end), an iterable of ints, or ``None``."""
        if spec is None or isinstance(spec, PageSelection):
            return spec or cls()
        if not isinstance(spec, str):
            numbers = [int(n) for n in spec]
            if any(n < 1 for n in numbers):
                raise ConfigError(f"page numbers are 1-based, got {numbers}")
            return cls(tuple((n, n) for n in numbers))
        ranges: list[tuple[int, int | None]] = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            try:
                if "-" in part:
                    lo_s, hi_s = part.split("-", 1)
                    lo = int(lo_s) if lo_s else 1
                    hi = int(hi_s) if hi_s else None
                else:
                    lo = hi = int(part)
            except ValueError:
                raise ConfigError(
                    f"bad page range {part!r} in {spec!r} (use e.g. '1-3,7')"
                ) from None
            if lo < 1 or (hi is not None and hi < lo):
                raise ConfigError(f"bad page range {part!r} in {spec!r}: pages are 1-based")
            ranges.append((lo, hi))
        if not ranges:
            raise ConfigError(f"empty page selection {spec!r}")
        return cls(tuple(ranges))

    def numbers(self, total: int) -> list[int]:
        """The selected 1-based page numbers that exist in a document of ``total`` pages."""
        if self.ranges is None:
            return list(range(1, total + 1))
        chosen: set[int] = set()
        for lo, hi in self.ranges:
            chosen.update(range(lo, min(total, hi if hi is not None else total) + 1))
        return sorted(chosen)


# --- sources --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentSource:
    """One input document, not yet opened: a path, or bytes with a display name."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    extra: tuple[tuple[str, str | int | float | bool], ...] = ()

    def read_head(self, size: int = 2048) -> bytes:
        """The first bytes, for type sniffing."""
        if self.data is not None:
            return self.data[:size]
        assert self.path is not None
        with self.path.open("rb") as fh:
            return fh.read(size)


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _folder_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    skipped = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = Path(root) / name
            if p.suffix.lower() in SUFFIXES:
                found.append(p)
            else:
                skipped += 1
    if skipped:
        log.info("%s: skipped %d file(s) that are not PDFs or images", folder, skipped)
    return found


def resolve_inputs(inputs: Input | Sequence[Input]) -> list[DocumentSource]:
    """Expand inputs into documents, in a stable order. Raises for missing paths.

    Folders are walked recursively (hidden entries skipped; only PDF and image suffixes are
    taken); glob patterns are expanded (``**`` recursive). A path given explicitly is taken
    whatever its suffix: its bytes decide whether it can be read.
    """
    items: list[Input]
    if isinstance(inputs, (str, bytes, bytearray, memoryview, os.PathLike)) or hasattr(
        inputs, "read"
    ):
        items = [cast(Input, inputs)]
    else:
        items = list(inputs)
    out: list[DocumentSource] = []
    for item in items:
        if isinstance(item, (bytes, bytearray, memoryview)):
            out.append(DocumentSource(name="<bytes>", data=bytes(item)))
        elif hasattr(item, "read"):
            data = item.read()
            if not isinstance(data, (bytes, bytearray)):
                raise UnsupportedInputError(
                    "file objects must be opened in binary mode",
                    path=getattr(item, "name", "<stream>"),
                )
            out.append(
                DocumentSource(name=str(getattr(item, "name", "<stream>")), data=bytes(data))
            )
        else:
            text = os.fspath(item)
            path = Path(text).expanduser()
            if path.is_dir():
                files = _folder_files(path)
                if not files:
                    raise InputNotFoundError("folder holds no PDF or image file", path=text)
                out.extend(DocumentSource(name=str(f), path=f) for f in files)
            elif path.exists():
                out.append(DocumentSource(name=str(path), path=path))
            elif _has_glob(text):
                matches = sorted(
                    Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True)
                )
                files = [m for m in matches if m.is_file() and m.suffix.lower() in SUFFIXES]
                if not files:
                    raise InputNotFoundError("pattern matched no PDF or image file", path=text)
                out.extend(DocumentSource(name=str(f), path=f) for f in files)
            else:
                raise InputNotFoundError("no such file or folder", path=text)
    return out


def hash_source(src: DocumentSource) -> str:
    """sha256 of the input's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    if src.data is not None:
        h.update(src.data)
    else:
        assert src.path is not None
        with src.path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# --- opened inputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentOutline:
    """What an input is, once opened: its :class:`SourceInfo` and page labels.

    The same for a document open in this process, one open in a render worker and one known
    from the cache's manifest, so page labels and page selection are decided in one place.
    """

    info: SourceInfo
    labels: tuple[str, ...] = ()
    """The PDF's own page labels (``""`` where it defines none); empty when it has none."""
    weights: tuple[int, ...] = ()
    """A guess at each page's cost to the model (``_page_weights``); empty when unknown."""

    @property
    def page_count(self) -> int:
        return self.info.total_pages

    def label(self, number: int) -> str:
        """The page's label: the PDF's own page label if it defines one, else the number."""
        if 0 < number <= len(self.labels) and self.labels[number - 1]:
            return self.labels[number - 1]
        return str(number)

    def weight(self, number: int) -> int:
        """The page's weight (0 when unknown): heavier pages are sent first."""
        return self.weights[number - 1] if 0 < number <= len(self.weights) else 0

    def page_numbers(self, selection: PageSelection) -> list[int]:
        """Selected pages that exist; raises when a selection matches none of them."""
        numbers = selection.numbers(self.page_count)
        if not numbers:
            raise ConfigError(
                f"{self.info.source}: page selection matches none of its {self.page_count} page(s)"
            )
        return numbers


@dataclass(frozen=True, slots=True)
class OpenedInput:
    """An opened, checked input: its outline and the library handle that reads its pages.

    Not thread-safe (PyMuPDF is not): keep it on one thread or in one worker.
    """

    outline: DocumentOutline
    handle: Any
    """``pymupdf.Document`` for a PDF (PyMuPDF is untyped here), ``PIL.Image.Image`` else."""
    reopen: Callable[[], Any] | None = None
    """A fresh PDF handle on the same document (``None`` for images)."""

    def close(self) -> None:
        """Release the handle; never raises (closing must not mask the real error)."""
        close_handle(self.handle, self.outline.info.source)


def close_handle(handle: Any, source: str) -> None:
    """Close a PyMuPDF or Pillow handle, logging instead of raising."""
    try:
        handle.close()
    except Exception:  # closing must never mask the real error
        log.debug("closing %s failed", source, exc_info=True)


_PIXEL_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def lifted_pixel_limit() -> Iterator[None]:
    """Lift Pillow's decompression-bomb check for one open or decode, then restore it.

    The project enforces its own pixel budget (huge images are decoded once and scaled down),
    so Pillow's process-wide limit is only suspended here, never changed for the caller.
    """
    from PIL import Image

    with _PIXEL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open_pdf(
    src: DocumentSource, password: str | None
) -> tuple[Any, int, list[str] | None, tuple[int, ...]]:
    """Open, decrypt and check a PDF: its handle, page count, page labels and page weights."""
    doc = _load_pdf(src, password)
    if doc.is_repaired and eof_marker_missing(src.data, src.path):
        doc.close()
        raise CorruptInputError(
            "truncated: the PDF ends before its %%EOF marker (an interrupted download?)",
            path=src.name,
        )
    count = doc.page_count
    if count == 0:
        doc.close()
        raise EmptyDocumentError("the PDF has no pages", path=src.name)
    labels: list[str] | None = None
    try:
        if doc.get_page_labels():
            labels = [doc[i].get_label() for i in range(count)]
    except Exception:  # labels are a nicety; a broken label tree must not stop the document
        labels = None
    return doc, count, labels, page_weights(doc)


def _load_pdf(src: DocumentSource, password: str | None) -> Any:
    """A PyMuPDF handle on the PDF, decrypted with ``password`` when it is encrypted."""
    import pymupdf

    try:
        if src.data is not None:
            doc = pymupdf.open(stream=src.data, filetype="pdf")
        else:
            doc = pymupdf.open(src.path, filetype="pdf")
    except Exception as exc:
        raise CorruptInputError(f"not a readable PDF ({exc})", path=src.name) from exc
    # Read needs_pass exactly once, before authenticating: with PyMuPDF 2.0, reading it again
    # after a successful authenticate() leaves every page rendering blank.
    encrypted = bool(doc.needs_pass)
    if encrypted:
        if not password:
            doc.close()
            raise PasswordError("the PDF is encrypted; pass its password", path=src.name)
        if not doc.authenticate(password):
            doc.close()
            raise PasswordError("wrong password for this encrypted PDF", path=src.name)
    return doc


def _open_image(src: DocumentSource) -> tuple[Any, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        fp: Any = io.BytesIO(src.data) if src.data is not None else str(src.path)
        with lifted_pixel_limit():
            img = Image.open(fp)
        frames = int(getattr(img, "n_frames", 1))
    except UnidentifiedImageError as exc:
        raise CorruptInputError("not a readable image", path=src.name) from exc
    except Exception as exc:
        raise CorruptInputError(f"not a readable image ({exc})", path=src.name) from exc
    if img.width <= 0 or img.height <= 0:
        raise CorruptInputError("image has no pixels", path=src.name)
    return img, frames


def open_input(
    src: DocumentSource, password: str | None = None, *, known_hash: str | None = None
) -> OpenedInput:
    """Open and check one input. Raises :class:`~ocr_loaders._errors.InputError` subclasses.

    ``known_hash`` skips re-hashing a file whose sha256 was just computed elsewhere.
    """
    try:
        if src.path is not None:
            if src.path.is_dir():
                raise UnreadableInputError("is a folder, not a file", path=src.name)
            size = src.path.stat().st_size
        else:
            size = len(src.data or b"")
        if size == 0:
            raise CorruptInputError("the file is empty (0 bytes)", path=src.name)
        head = src.read_head()
    except PermissionError as exc:
        raise UnreadableInputError("permission denied", path=src.name) from exc
    except FileNotFoundError as exc:
        raise InputNotFoundError("no such file", path=src.name) from exc
    except OSError as exc:
        raise UnreadableInputError(f"cannot read ({exc.strerror or exc})", path=src.name) from exc
    kind = sniff_kind(head)
    if kind is None:
        # MuPDF would read such a file as HTML, XML or text and "find" pages in it: refuse
        claimed = claimed_kind(src.name)
        if claimed is not None:
            raise CorruptInputError(
                f"not a {claimed}: the file holds {describe_content(head)}", path=src.name
            )
        raise UnsupportedInputError(
            "not a PDF or an image (PNG, JPEG, TIFF, WebP, BMP, GIF)", path=src.name
        )
    doc_hash = known_hash or hash_source(src)
    labels: list[str] | None = None
    weights: tuple[int, ...] = ()
    if kind == "pdf":
        handle, count, labels, weights = _open_pdf(src, password)
    else:
        handle, count = _open_image(src)
    reopen = (lambda: _load_pdf(src, password)) if kind == "pdf" else None
    outline = DocumentOutline(source_info(src, doc_hash, kind, count), tuple(labels or ()), weights)
    return OpenedInput(outline, handle, reopen)


def describe(src: DocumentSource, password: str | None = None) -> DocumentOutline:
    """Open an input just long enough to read its outline (same errors as :func:`open_input`)."""
    opened = open_input(src, password)
    opened.close()
    return opened.outline


def source_info(src: DocumentSource, doc_hash: str, kind: Kind, total_pages: int) -> SourceInfo:
    """The :class:`SourceInfo` of an input whose hash, kind and page count are known."""
    return SourceInfo(
        source=src.name if src.path is None else str(src.path),
        file_name=src.path.name if src.path is not None else Path(src.name).name,
        file_path=str(src.path.resolve()) if src.path is not None else src.name,
        doc_hash=doc_hash,
        kind=kind,
        total_pages=total_pages,
        extra=src.extra,
    )
