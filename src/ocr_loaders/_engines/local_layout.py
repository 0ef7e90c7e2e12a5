"""Layout analysis for the local engine: text lines, tables and images -> labelled blocks.

Pure functions, no I/O: the same code orders a PDF's text layer and the lines an OCR model
found on a scan. Coordinates are page units (PDF points or image pixels), top-left origin.

How a page is read:

1. The dominant text direction is found; when the page is shown sideways, everything is turned
   into the frame where that text is upright, laid out there, and the boxes turned back.
2. Reading order is a recursive XY-cut that prefers columns: a region splits at vertical
   whitespace gutters first; otherwise it splits into horizontal bands, and consecutive bands
   that share a gutter are grouped and split again. Aligned short items (forms, borderless
   tables) are not taken for columns, so they read row by row.
3. Lines become rows, rows become paragraphs (by spacing, indentation, font size and weight),
   and paragraphs are labelled ``title`` / ``sub_title`` / captions / ``text`` like DeepSeek-OCR.

The steps live in :mod:`.local_geometry`, :mod:`.local_order` (2), :mod:`.local_paragraphs`
(3) and :mod:`.local_tables` (tables found by PyMuPDF, as HTML).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._model import BBox
from .local_geometry import Item, center_inside, rotate_bbox, rotated_size
from .local_order import order_items
from .local_paragraphs import (
    MultiPara,
    body_size,
    build_paragraphs,
    clean_text,
    para_label,
    promote_title,
)
from .local_tables import TableRegion

# --- inputs and outputs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text on the page, in the displayed frame."""

    bbox: BBox
    text: str
    size: float
    """Font size in points (text layer) or line height in pixels (OCR)."""
    bold: bool = False
    direction: int = 0
    """Clockwise angle of the writing direction in the displayed frame: 0, 90, 180, 270, or
    -1 when the line is skewed."""


@dataclass(frozen=True, slots=True)
class LayoutBlock:
    """A block ready to become a grounded ``Block``: label, page-unit boxes, content."""

    label: str
    boxes: tuple[BBox, ...]
    text: str


def dominant_direction(lines: Sequence[TextLine]) -> int:
    """The writing direction carrying most characters (0 when there is no text)."""
    weight: dict[int, int] = {}
    for line in lines:
        if line.direction >= 0:
            weight[line.direction] = weight.get(line.direction, 0) + len(line.text.strip())
    if not weight:
        return 0
    return max(sorted(weight), key=lambda d: weight[d])


# --- public entry point ---------------------------------------------------------------------


def layout_page(
    lines: Sequence[TextLine],
    tables: Sequence[TableRegion],
    images: Sequence[BBox],
    width: float,
    height: float,
    *,
    ocr: bool = False,
) -> list[LayoutBlock]:
    """Labelled blocks in reading order, boxes in the displayed ``width`` x ``height`` frame.

    ``lines`` inside a table's box are dropped (the table block carries them). ``ocr`` says the
    lines come from an OCR model (sizes are line heights, no weights), which makes heading
    detection more conservative.
    """
    angle = dominant_direction(lines)
    turn = (360 - angle) % 360  # turning the page by this makes the main text upright
    uw, uh = rotated_size(turn, width, height)

    def up(b: BBox) -> BBox:
        return rotate_bbox(b, turn, width, height)

    def down(b: BBox) -> BBox:
        return rotate_bbox(b, angle, uw, uh)

    table_boxes = [up(t.bbox) for t in tables]
    items: list[Item] = []
    odd: list[TextLine] = []
    for line in lines:
        text = clean_text(line.text).strip()
        if not text:
            continue
        if line.direction != angle:
            odd.append(line)
            continue
        b = up(line.bbox)
        if any(center_inside(b, tb, pad=1.0) for tb in table_boxes):
            continue
        items.append(Item("line", *b, text=text, size=line.size, bold=line.bold))
    for k, tb in enumerate(table_boxes):
        items.append(Item("table", *tb, text=str(k)))
    for ib in images:
        items.append(Item("image", *up(ib)))

    body = body_size(items)
    # OCR boxes are padded around the glyphs: their height overstates the font size.
    unit = body * (0.7 if ocr else 1.0) if body > 0 else max(10.0, 0.012 * max(uw, uh))
    regions = order_items(items, unit)
    paras = build_paragraphs(regions, ocr=ocr)

    labels = [para_label(para, body, ocr=ocr) for para in paras]
    promote_title(paras, labels, body, uh)
    blocks: list[LayoutBlock] = []
    for para, label in zip(paras, labels, strict=True):
        first = para.rows[0].items[0]
        if first.kind == "table":
            t = tables[int(first.text)]
            blocks.append(LayoutBlock("table", (t.bbox,), t.html))
            continue
        if first.kind == "image":
            blocks.append(LayoutBlock("image", (down(first.bbox),), ""))
            continue
        boxes = (
            tuple(down(b) for b in para.boxes())
            if isinstance(para, MultiPara)
            else (down(para.bbox),)
        )
        text = para.text
        if label in ("title", "sub_title"):
            text = ("# " if label == "title" else "## ") + text
        blocks.append(LayoutBlock(label, boxes, text))
    blocks.extend(_odd_blocks(odd))
    return blocks


def _odd_blocks(lines: list[TextLine]) -> list[LayoutBlock]:
    """Lines written across the main direction (margin notes, axis labels): one block each,
    after the main text, ordered by position."""
    out = []
    for line in sorted(lines, key=lambda ln: (ln.bbox[0], ln.bbox[1])):
        text = clean_text(line.text).strip()
        if text:
            out.append(LayoutBlock("text", (line.bbox,), text))
    return out
