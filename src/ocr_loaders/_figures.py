"""Figures as retrieval units: crops of ``image`` blocks, their files and their links.

A page with ``image`` blocks keeps the image the engine saw (``PageResult.figure_image``); a
load with ``images="files"`` or ``"inline"`` cuts each block's box from it, mapped exactly as
``regions`` are (:func:`~ocr_loaders._model.scale_box` on the sent image's pixels), as PNG.
File names come only from the sanitised input stem, the page number and the figure's index on
the page, never from model text, and files are written only inside the folder given.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from ._grounding.markdown import caption_for
from ._model import BBox, Block, Page, SourceInfo, scale_box

ImagesMode = Literal["none", "files", "inline"]
IMAGES_MODES: tuple[ImagesMode, ...] = ("none", "files", "inline")
MIMETYPE = "image/png"


@dataclass(frozen=True, slots=True)
class Figure:
    """One cropped ``image`` block: where it is, its caption and its pixels."""

    doc: SourceInfo
    page: int
    index: int
    """0-based number of the figure among the page's ``image`` blocks."""
    block: Block
    caption: str
    bbox: BBox
    """The figure's box in page units (as in ``regions``)."""
    data: bytes
    """The crop, PNG."""
    width: int
    height: int
    name: str
    path: str = ""
    """The file written (``images="files"``), else ``""``."""
    link: str = ""
    """The markdown link target, ``""`` when no file was written."""

    @property
    def id(self) -> str:
        """Stable id: same bytes -> same id, run after run."""
        return f"{self.doc.doc_hash[:32]}-p{self.page}-f{self.index}"


def safe_stem(file_name: str) -> str:
    """The input's stem with every character but letters, digits, ``-`` and ``_`` replaced."""
    stem = Path(file_name).stem
    return re.sub(r"[^\w\-]", "_", stem, flags=re.ASCII).strip("_") or "document"


def figure_name(stem: str, page: int, index: int) -> str:
    """A crop's file name, from sanitised parts only."""
    return f"{safe_stem(stem)}-p{page}-{index}.png"


class StemNames:
    """One crop stem per document of a load: two inputs named alike (``a/report.pdf``,
    ``b/report.pdf``) get ``report`` and ``report-2``, so one folder holds both."""

    def __init__(self) -> None:
        self._by_doc: dict[tuple[str, str], str] = {}
        self._taken: set[str] = set()

    def __call__(self, doc: SourceInfo) -> str:
        key = (doc.source, doc.doc_hash)
        if key not in self._by_doc:
            stem, candidate, n = safe_stem(doc.file_name), safe_stem(doc.file_name), 2
            while candidate.lower() in self._taken:
                candidate, n = f"{stem}-{n}", n + 1
            self._taken.add(candidate.lower())
            self._by_doc[key] = candidate
        return self._by_doc[key]


def pixel_box(block: Block, width: int, height: int) -> tuple[int, int, int, int]:
    """The block's first box on a ``width`` x ``height`` image, rounded, clamped, >= 1 px."""
    x0, y0, x1, y1 = scale_box(block.boxes[0], width, height)
    left = min(max(0, round(x0)), width - 1)
    top = min(max(0, round(y0)), height - 1)
    right = min(max(left + 1, round(x1)), width)
    bottom = min(max(top + 1, round(y1)), height)
    return left, top, right, bottom


def crop_figures(doc: SourceInfo, page: Page, image: bytes, stem: str = "") -> list[Figure]:
    """Every ``image`` block of ``page`` cut from ``image`` (the image the engine saw); crop
    names start with ``stem`` (default: the input's file name), sanitised."""
    from PIL import Image

    images = [(i, b) for i, b in enumerate(page.blocks) if b.label == "image"]
    if not images or not image:
        return []
    out: list[Figure] = []
    with Image.open(io.BytesIO(image)) as opened:
        picture = opened.convert("RGB")
    w, h = picture.size
    for k, (i, block) in enumerate(images):
        if not block.boxes:
            continue
        box = pixel_box(block, w, h)
        buf = io.BytesIO()
        picture.crop(box).save(buf, format="PNG")
        out.append(
            Figure(
                doc=doc,
                page=page.number,
                index=k,
                block=block,
                caption=caption_for(page.blocks, i),
                bbox=scale_box(block.boxes[0], page.width, page.height),
                data=buf.getvalue(),
                width=box[2] - box[0],
                height=box[3] - box[1],
                name=figure_name(stem or doc.file_name, page.number, k),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class FigureFolder:
    """Where a document's crops go (``folder``) and how markdown links to them (``prefix``)."""

    folder: Path
    prefix: str

    def write(self, figure: Figure) -> Figure:
        """Write the crop under :attr:`folder`; the figure with its path and link."""
        from dataclasses import replace

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / figure.name  # the name is sanitised: no separators, no ``..``
        path.write_bytes(figure.data)
        link = quote(self.prefix + figure.name, safe="/:\\")  # spaces in a stem or folder
        return replace(figure, path=str(path), link=link)


def figure_options(mode: str) -> FigureOptions:
    """The CLI's ``--images``, checked (``files`` lands in ``OUT/<stem>/images/``)."""
    for known in IMAGES_MODES:
        if mode == known:
            return FigureOptions(known)
    from ._errors import ConfigError

    raise ConfigError(f"--images must be one of {', '.join(IMAGES_MODES)}, got {mode!r}")


@dataclass(frozen=True, slots=True)
class FigureOptions:
    """What a load does with figures: ``mode`` and, for Python ``files``, the folder."""

    mode: ImagesMode = "none"
    folder: Path | None = None

    def __post_init__(self) -> None:
        from ._errors import ConfigError

        if self.mode not in IMAGES_MODES:
            raise ConfigError(f"images must be one of {IMAGES_MODES}, got {self.mode!r}")

    @classmethod
    def take(cls, options: dict[str, object]) -> FigureOptions:
        """Remove ``images`` and ``images_dir`` from adapter keyword arguments.

        ``images="files"`` needs ``images_dir``: the Python API writes no file the caller
        did not ask for.
        """
        from ._errors import ConfigError

        mode = options.pop("images", "none")
        folder = options.pop("images_dir", None)
        if mode == "files" and folder is None:
            raise ConfigError('images="files" needs images_dir (the folder to write crops in)')
        if not isinstance(mode, str) or not (folder is None or isinstance(folder, (str, Path))):
            raise ConfigError("images must be a str and images_dir a path")
        return cls(mode, Path(folder).expanduser() if folder is not None else None)  # type: ignore[arg-type]

    def place(self, _doc: SourceInfo) -> FigureFolder | None:
        """Where the Python API writes a document's crops (all in the one folder)."""
        if self.mode != "files" or self.folder is None:
            return None
        return FigureFolder(self.folder, self.folder.as_posix().rstrip("/") + "/")
