"""Figures as retrieval units: crops of ``image`` blocks (on request ``table`` and ``equation``
blocks too), their files and their links.

A load with ``images="files"`` or ``"inline"`` has the pipeline crop each block's box
(``PageResult.crops``, see :mod:`ocr_loaders._rendering.crops`); this module turns the crops
into :class:`Figure` s with their captions, names and files. File names come only from the
sanitised input stem, the page number, the block's label and its index on the page, never
from model text, and files are written only inside the folder given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from ._grounding.markdown import caption_for
from ._model import BBox, Block, Crop, Page, SourceInfo, scale_box
from ._rendering.crops import CROP_BLOCKS, CropFormat, CropSettings

ImagesMode = Literal["none", "files", "inline"]
IMAGES_MODES: tuple[ImagesMode, ...] = ("none", "files", "inline")
MIMETYPE = "image/png"
"""The default crops' type (``figure_format="jpeg"``: ``image/jpeg``)."""
_ID_LETTER = {"image": "f", "table": "t", "equation": "e"}


@dataclass(frozen=True, slots=True)
class Figure:
    """One cropped ``image`` block: where it is, its caption and its pixels."""

    doc: SourceInfo
    page: int
    index: int
    """0-based number of the block among the page's blocks of its label."""
    block: Block
    caption: str
    bbox: BBox
    """The figure's box in page units (as in ``regions``)."""
    data: bytes
    """The crop, encoded as ``mime`` says."""
    width: int
    height: int
    name: str
    path: str = ""
    """The file written (``images="files"``), else ``""``."""
    link: str = ""
    """The markdown link target, ``""`` when no file was written (and for tables and
    equations, which keep their text in the chunk and are never linked)."""
    mime: str = MIMETYPE

    @property
    def label(self) -> str:
        """``image``, ``table`` or ``equation``."""
        return self.block.label

    @property
    def id(self) -> str:
        """Stable id: same bytes -> same id, run after run (``-f`` figures, ``-t`` tables,
        ``-e`` equations)."""
        return f"{self.doc.doc_hash[:32]}-p{self.page}-{_ID_LETTER[self.label]}{self.index}"


def safe_stem(file_name: str) -> str:
    """The input's stem with every character but letters, digits, ``-`` and ``_`` replaced."""
    stem = Path(file_name).stem
    return re.sub(r"[^\w\-]", "_", stem, flags=re.ASCII).strip("_") or "document"


def figure_name(
    stem: str, page: int, index: int, label: str = "image", extension: str = "png"
) -> str:
    """A crop's file name, from sanitised parts only: ``<stem>-p<page>-<index>.png`` for a
    figure, ``<stem>-p<page>-table<index>.png`` for a table (``equation`` likewise)."""
    kind = "" if label == "image" else _known_label(label)
    return f"{safe_stem(stem)}-p{page}-{kind}{index}.{extension}"


def _known_label(label: str) -> str:
    if label not in CROP_BLOCKS:
        raise ValueError(f"not a cropped label: {label!r}")
    return label


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


def crop_figures(
    doc: SourceInfo,
    page: Page,
    crops: tuple[Crop, ...],
    stem: str = "",
    settings: CropSettings | None = None,
) -> list[Figure]:
    """The page's crops as figures: caption, box, name (starting with ``stem``, default the
    input's file name, sanitised) and index among the page's blocks of the same label."""
    settings = settings or CropSettings()
    out: list[Figure] = []
    for crop in crops:
        block = page.blocks[crop.block]
        index = sum(b.label == block.label for b in page.blocks[: crop.block])
        out.append(
            Figure(
                doc=doc,
                page=page.number,
                index=index,
                block=block,
                caption=_caption(page.blocks, crop.block),
                bbox=scale_box(block.boxes[0], page.width, page.height),
                data=crop.data,
                width=crop.width,
                height=crop.height,
                name=figure_name(
                    stem or doc.file_name, page.number, index, block.label, settings.extension
                ),
                mime=settings.mime,
            )
        )
    return out


def _caption(blocks: tuple[Block, ...], i: int) -> str:
    """A figure's or table's adjacent caption; an equation's own text (its LaTeX)."""
    if blocks[i].label == "equation":
        return " ".join(blocks[i].text.split())[:300]
    return caption_for(blocks, i)


@dataclass(frozen=True, slots=True)
class FigureFolder:
    """Where a document's crops go (``folder``) and how markdown links to them (``prefix``)."""

    folder: Path
    prefix: str

    def write(self, figure: Figure) -> Figure:
        """Write the crop under :attr:`folder`; the figure with its path and (a figure's
        only: tables and equations keep their text) markdown link."""
        from dataclasses import replace

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / figure.name  # the name is sanitised: no separators, no ``..``
        path.write_bytes(figure.data)
        link = ""
        if figure.label == "image":
            link = quote(self.prefix + figure.name, safe="/:\\")  # spaces in a stem or folder
        return replace(figure, path=str(path), link=link)


def figure_options(
    mode: str,
    *,
    figure_dpi: int | None = None,
    figure_format: str = "png",
    crop_blocks: str = "image",
) -> FigureOptions:
    """The CLI's ``--images`` (``files`` lands in ``OUT/<stem>/images/``), ``--figure-dpi``,
    ``--figure-format`` and ``--crop-blocks`` (comma-separated labels), checked."""
    from ._errors import ConfigError

    for known in IMAGES_MODES:
        if mode == known:
            blocks = tuple(b.strip() for b in crop_blocks.split(",") if b.strip())
            return FigureOptions(known, crops=crop_settings(figure_dpi, figure_format, blocks))
    raise ConfigError(f"--images must be one of {', '.join(IMAGES_MODES)}, got {mode!r}")


def crop_settings(dpi: object, image_format: object, blocks: object) -> CropSettings:
    """Checked :class:`CropSettings` from user values (``figure_dpi``, ``figure_format``,
    ``crop_blocks``)."""
    from ._errors import ConfigError

    if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, int)):
        raise ConfigError(f"figure_dpi must be an int (dots per inch) or None, got {dpi!r}")
    fmt = "jpeg" if image_format == "jpg" else image_format
    if fmt not in ("png", "jpeg"):
        raise ConfigError(f"figure_format must be 'png' or 'jpeg', got {image_format!r}")
    if isinstance(blocks, str):
        blocks = (blocks,)
    if not isinstance(blocks, (tuple, list)) or not all(isinstance(b, str) for b in blocks):
        raise ConfigError(f"crop_blocks must be a sequence of labels, got {blocks!r}")
    image_format_: CropFormat = "png" if fmt == "png" else "jpeg"
    return CropSettings(tuple(blocks), dpi, image_format_)


@dataclass(frozen=True, slots=True)
class FigureOptions:
    """What a load does with figures: ``mode``, for Python ``files`` the folder, and how
    crops are made (``crops``: which blocks, at what resolution, in which format)."""

    mode: ImagesMode = "none"
    folder: Path | None = None
    crops: CropSettings = CropSettings()

    def __post_init__(self) -> None:
        from ._errors import ConfigError

        if self.mode not in IMAGES_MODES:
            raise ConfigError(f"images must be one of {IMAGES_MODES}, got {self.mode!r}")

    @property
    def wanted(self) -> CropSettings | None:
        """The crop settings the pipeline works with, ``None`` when no crop is wanted."""
        return None if self.mode == "none" else self.crops

    @classmethod
    def take(cls, options: dict[str, object]) -> FigureOptions:
        """Remove ``images``, ``images_dir``, ``figure_dpi``, ``figure_format`` and
        ``crop_blocks`` from adapter keyword arguments.

        ``images="files"`` needs ``images_dir``: the Python API writes no file the caller
        did not ask for.
        """
        from ._errors import ConfigError

        mode = options.pop("images", "none")
        folder = options.pop("images_dir", None)
        crops = crop_settings(
            options.pop("figure_dpi", None),
            options.pop("figure_format", "png"),
            options.pop("crop_blocks", ("image",)),
        )
        if mode == "files" and folder is None:
            raise ConfigError('images="files" needs images_dir (the folder to write crops in)')
        if not isinstance(mode, str) or not (folder is None or isinstance(folder, (str, Path))):
            raise ConfigError("images must be a str and images_dir a path")
        path = Path(folder).expanduser() if folder is not None else None
        return cls(mode, path, crops)  # type: ignore[arg-type]

    def place(self, _doc: SourceInfo) -> FigureFolder | None:
        """Where the Python API writes a document's crops (all in the one folder)."""
        if self.mode != "files" or self.folder is None:
            return None
        return FigureFolder(self.folder, self.folder.as_posix().rstrip("/") + "/")
