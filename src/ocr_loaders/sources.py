"""Inputs: paths, folders, globs, bytes and file objects -> documents -> selected pages.

Nothing here renders. A :class:`DocumentSource` names one input; :func:`open_document` opens it
(PyMuPDF for PDFs, Pillow for images, TIFF frames as pages) and checks it, raising one of the
project's :mod:`~ocr_loaders.errors` naming the file; :class:`OpenDocument` then renders single
pages on demand, so a 1000-page PDF is never rendered up front. Open documents are not
thread-safe (PyMuPDF is not): the pipeline keeps each one in a single worker.
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Union, cast

from .errors import (
    ConfigError,
    CorruptInputError,
    EmptyDocumentError,
    InputError,
    InputNotFoundError,
    PageRenderError,
    PasswordError,
    UnreadableInputError,
    UnsupportedInputError,
)
from .model import PageImage, SourceInfo
from .render import lifted_pixel_limit

log = logging.getLogger(__name__)

Input = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
"""Anything a loader accepts: a path, folder or glob; raw bytes; a binary file object."""

Kind = Literal["pdf", "image"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"})
SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
"""File name suffixes picked up when a folder or glob is given."""


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


def sniff_kind(head: bytes) -> Kind | None:
    """``pdf`` or ``image`` from the first bytes; ``None`` for anything else."""
    if b"%PDF" in head[:1024]:
        return "pdf"
    signatures = (
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        b"II*\x00",
        b"MM\x00*",
        b"BM",
        b"GIF87a",
        b"GIF89a",
    )
    if head.startswith(signatures) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    return None


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


# --- opened documents -----------------------------------------------------------------------


REOPEN_AFTER_PAGES = 200
"""MuPDF keeps every object it has parsed until the document is closed (tens of KB per page of
a dense PDF), so a PDF is reopened after this many rendered pages: memory stays flat however
long the document is, for the cost of one open per 200 pages."""


class OpenDocument:
    """An opened, checked input whose pages render one at a time. Not thread-safe.

    ``reopen`` gives a fresh handle on the same document (see :data:`REOPEN_AFTER_PAGES`).
    """

    def __init__(
        self,
        info: SourceInfo,
        handle: Any,
        labels: Sequence[str] | None,
        reopen: Callable[[], Any] | None = None,
    ) -> None:
        self.info = info
        self._handle = handle  # pymupdf.Document or PIL.Image.Image
        self._labels = labels
        self._reopen = reopen
        self._rendered = 0

    @property
    def page_count(self) -> int:
        return self.info.total_pages

    def page_numbers(self, selection: PageSelection) -> list[int]:
        """Selected pages that exist; raises when a selection matches none of them."""
        numbers = selection.numbers(self.page_count)
        if not numbers:
            raise ConfigError(
                f"{self.info.source}: page selection matches none of its {self.page_count} page(s)"
            )
        return numbers

    def label(self, number: int) -> str:
        """The page's label: the PDF's own page label if it defines one, else the number."""
        if self._labels is not None:
            label = self._labels[number - 1]
            if label:
                return label
        return str(number)

    def render(self, number: int, settings: Any, hook: Any = None) -> PageImage:
        """Render page ``number`` (1-based) for an engine; see :mod:`ocr_loaders.render`."""
        from . import render

        if self.info.kind == "pdf":
            if self._reopen is not None and self._rendered >= REOPEN_AFTER_PAGES:
                self._refresh(number)
            self._rendered += 1
            return render.render_pdf_page(self, self._handle, number, settings, hook)
        return render.render_image_frame(self, self._handle, number, settings)

    def _refresh(self, number: int) -> None:
        """Swap the handle for a fresh one on the same, unchanged document."""
        assert self._reopen is not None
        self.close()
        try:
            handle = self._reopen()
        except InputError as exc:
            raise PageRenderError(
                f"cannot reopen the document ({exc.reason})", path=self.info.source, page=number
            ) from exc
        if handle.page_count != self.info.total_pages:
            handle.close()
            raise PageRenderError(
                "the document changed while it was being read", path=self.info.source, page=number
            )
        self._handle = handle
        self._rendered = 0

    def close(self) -> None:
        try:
            self._handle.close()
        except Exception:  # closing must never mask the real error
            log.debug("closing %s failed", self.info.source, exc_info=True)


def _open_pdf(src: DocumentSource, password: str | None) -> tuple[Any, int, list[str] | None]:
    """Open, decrypt and check a PDF: its handle, page count and page labels."""
    doc = _load_pdf(src, password)
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
    return doc, count, labels


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


def open_document(
    src: DocumentSource, password: str | None = None, *, known_hash: str | None = None
) -> OpenDocument:
    """Open and check one input. Raises :class:`~ocr_loaders.errors.InputError` subclasses.

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
        suffix = src.path.suffix.lower() if src.path else ""
        if suffix == ".pdf":
            kind = "pdf"  # a damaged PDF whose header moved: let MuPDF try to repair it
        else:
            raise UnsupportedInputError(
                "not a PDF or an image (PNG, JPEG, TIFF, WebP, BMP, GIF)", path=src.name
            )
    doc_hash = known_hash or hash_source(src)
    labels: list[str] | None = None
    if kind == "pdf":
        handle, count, labels = _open_pdf(src, password)
    else:
        handle, count = _open_image(src)
    reopen = (lambda: _load_pdf(src, password)) if kind == "pdf" else None
    return OpenDocument(source_info(src, doc_hash, kind, count), handle, labels, reopen)


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
