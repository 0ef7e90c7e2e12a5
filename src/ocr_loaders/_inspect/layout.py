"""Every block's boxes, page by page: ``OUT/<stem>/pages.jsonl``, written as pages arrive.

Chunk regions only name the boxes that ended up in some chunk; the inspector draws every block
of every page, so ``convert --html`` keeps each page's blocks in a compact line::

    {"page": 3, "label": "iii", "width": 612.0, "height": 792.0,
     "blocks": [{"order": 0, "label": "title", "text": "# Results", "boxes": [[x0, y0, x1, y1]]}]}

Boxes are in the frame of ``regions`` (docs/metadata.md): page units, top-left origin, rounded
to 0.01 exactly as chunk regions are, so a chunk region and its block's box compare equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._errors import CorruptInputError
from .._model import BBox, Page

LAYOUT_FILE = "pages.jsonl"
"""The per-page blocks file, in ``OUT/<stem>/``."""


def rounded(bbox: BBox) -> BBox:
    """A box rounded like :meth:`~ocr_loaders._model.Region.as_dict` rounds chunk regions."""
    x0, y0, x1, y1 = (round(v, 2) for v in bbox)
    return (x0, y0, x1, y1)


@dataclass(frozen=True, slots=True)
class LaidBlock:
    """One block as drawn: reading-order number, label, text and boxes in page units."""

    order: int
    label: str
    text: str
    boxes: tuple[BBox, ...]


@dataclass(frozen=True, slots=True)
class PageLayout:
    """One page's frame and blocks."""

    page: int
    label: str
    width: float
    height: float
    blocks: tuple[LaidBlock, ...]


def page_layout(page: Page) -> PageLayout:
    """The layout of a parsed page, boxes mapped onto its frame."""
    blocks = tuple(
        LaidBlock(
            b.index,
            b.label,
            b.text,
            tuple(rounded(box) for box in b.scaled_boxes(page.width, page.height)),
        )
        for b in page.blocks
    )
    return PageLayout(page.number, page.label, page.width, page.height, blocks)


def layout_line(layout: PageLayout) -> str:
    """One line of ``pages.jsonl``."""
    data = {
        "page": layout.page,
        "label": layout.label,
        "width": layout.width,
        "height": layout.height,
        "blocks": [
            {
                "order": b.order,
                "label": b.label,
                "text": b.text,
                "boxes": [list(x) for x in b.boxes],
            }
            for b in layout.blocks
        ],
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def as_bbox(value: Any) -> BBox:
    """Four numbers as a box (``TypeError``/``ValueError`` if they are not)."""
    x0, y0, x1, y1 = (float(v) for v in value)
    return (x0, y0, x1, y1)


def parse_layout(line: str) -> PageLayout:
    """A line of ``pages.jsonl`` back into a :class:`PageLayout` (``ValueError`` if malformed)."""
    data = json.loads(line)
    try:
        blocks = tuple(
            LaidBlock(
                int(b["order"]),
                str(b["label"]),
                str(b["text"]),
                tuple(as_bbox(x) for x in b["boxes"]),
            )
            for b in data["blocks"]
        )
        return PageLayout(
            int(data["page"]),
            str(data["label"]),
            float(data["width"]),
            float(data["height"]),
            blocks,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"missing or wrong field ({exc})") from exc


def read_layouts(path: Path) -> dict[int, PageLayout]:
    """Every page of a ``pages.jsonl`` by page number; a bad line is a clear error."""
    layouts: dict[int, PageLayout] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                layout = parse_layout(line)
            except ValueError as exc:
                raise CorruptInputError(
                    f"line {n} is not a page layout: {exc}", path=str(path)
                ) from exc
            layouts[layout.page] = layout
    return layouts


class LayoutWriter:
    """Appends pages to ``pages.jsonl`` as they arrive (memory stays flat); a rerun replaces
    an earlier run's file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def add(self, page: Page) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")
        self._fh.write(layout_line(page_layout(page)))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
