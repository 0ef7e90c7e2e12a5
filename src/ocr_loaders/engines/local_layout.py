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
"""

from __future__ import annotations

import html
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..model import BBox

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
class TableRegion:
    """A table found on the page: its box in the displayed frame and its HTML."""

    bbox: BBox
    html: str


@dataclass(frozen=True, slots=True)
class TableCell:
    """One cell of a table grid: 0-based row/column, spans, its text lines top to bottom."""

    row: int
    col: int
    lines: tuple[str, ...]
    rowspan: int = 1
    colspan: int = 1

    @property
    def text(self) -> str:
        """The cell's text on one line."""
        return " ".join(ln.strip() for ln in self.lines if ln.strip())


@dataclass(frozen=True, slots=True)
class LayoutBlock:
    """A block ready to become a grounded ``Block``: label, page-unit boxes, content."""

    label: str
    boxes: tuple[BBox, ...]
    text: str


# --- geometry -------------------------------------------------------------------------------


def rotate_bbox(bbox: BBox, angle: int, width: float, height: float) -> BBox:
    """Turn a box of a ``width`` x ``height`` frame clockwise by ``angle`` (0/90/180/270).

    The result lives in the turned frame (``height`` x ``width`` for 90 and 270).
    """
    x0, y0, x1, y1 = bbox
    a = angle % 360
    if a == 90:
        return (height - y1, x0, height - y0, x1)
    if a == 180:
        return (width - x1, height - y1, width - x0, height - y0)
    if a == 270:
        return (y0, width - x1, y1, width - x0)
    return bbox


def rotated_size(angle: int, width: float, height: float) -> tuple[float, float]:
    """Frame size after turning by ``angle``."""
    return (height, width) if angle % 180 == 90 else (width, height)


def union_bbox(boxes: Iterable[BBox]) -> BBox:
    """Smallest box holding all ``boxes`` (which must not be empty)."""
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _center_inside(bbox: BBox, outer: BBox, pad: float = 0.0) -> bool:
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return outer[0] - pad <= cx <= outer[2] + pad and outer[1] - pad <= cy <= outer[3] + pad


def dominant_direction(lines: Sequence[TextLine]) -> int:
    """The writing direction carrying most characters (0 when there is no text)."""
    weight: dict[int, int] = {}
    for line in lines:
        if line.direction >= 0:
            weight[line.direction] = weight.get(line.direction, 0) + len(line.text.strip())
    if not weight:
        return 0
    return max(sorted(weight), key=lambda d: weight[d])


# --- the items being ordered ----------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    kind: str  # "line", "table" or "image"
    x0: float
    y0: float
    x1: float
    y1: float
    text: str = ""
    size: float = 0.0
    bold: bool = False

    @property
    def h(self) -> float:
        return max(self.y1 - self.y0, 1e-6)

    @property
    def w(self) -> float:
        return max(self.x1 - self.x0, 1e-6)

    @property
    def bbox(self) -> BBox:
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(slots=True)
class _Row:
    items: list[_Item]
    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def of(cls, items: list[_Item]) -> _Row:
        items = sorted(items, key=lambda i: i.x0)
        return cls(
            items,
            min(i.x0 for i in items),
            min(i.y0 for i in items),
            max(i.x1 for i in items),
            max(i.y1 for i in items),
        )

    @property
    def kind(self) -> str:
        return self.items[0].kind

    @property
    def h(self) -> float:
        return max(self.y1 - self.y0, 1e-6)

    @property
    def text(self) -> str:
        return " ".join(i.text.strip() for i in self.items if i.text.strip())

    @property
    def size(self) -> float:
        chars = [(max(len(i.text.strip()), 1), i.size) for i in self.items]
        total = sum(c for c, _ in chars)
        return sum(c * s for c, s in chars) / total

    @property
    def bold(self) -> bool:
        total = sum(len(i.text.strip()) for i in self.items)
        bold = sum(len(i.text.strip()) for i in self.items if i.bold)
        return total > 0 and bold >= 0.8 * total


@dataclass(slots=True)
class _Para:
    rows: list[_Row] = field(default_factory=list)

    @property
    def bbox(self) -> BBox:
        return union_bbox((r.x0, r.y0, r.x1, r.y1) for r in self.rows)

    @property
    def size(self) -> float:
        chars = [(max(len(r.text), 1), r.size) for r in self.rows]
        total = sum(c for c, _ in chars)
        return sum(c * s for c, s in chars) / total

    @property
    def bold(self) -> bool:
        return all(r.bold for r in self.rows)

    @property
    def text(self) -> str:
        return join_lines(r.text for r in self.rows)


# --- text helpers ---------------------------------------------------------------------------

_HYPHEN_END = re.compile(r"[^\W\d_]-$")
_LOWER_START = re.compile(r"^[^\W\d_]")
_BULLET_START = re.compile(
    r"^(?:[•●▪◦‣■□►▶✓✔·∙○◆◇\-–—*!\uf0a7\uf0b7]\s|\(?\d{1,3}[.)]\s|\(?[a-z][.)]\s|\([ivx]{1,4}\)\s)"
)
_TERMINAL_END = re.compile(r"[.!?:;。！？]['\"”’)\]]?$")
_CAPTION_START = re.compile(
    r"^(?P<kind>figure|fig\.|table|tab\.|abbildung|abb\.|tabelle|图|表)\s*[\dIVX]+[a-z]?\s*[.:|]",
    re.IGNORECASE,
)
_TAG_LIKE = re.compile(r"<\|\s*/?\s*(?:ref|det|grounding)\s*\|>")


def join_lines(lines: Iterable[str]) -> str:
    """Join wrapped lines into one paragraph, undoing end-of-line hyphenation.

    ``"effi-" + "cient"`` becomes ``"efficient"``; a hyphen before an upper-case letter or a
    digit is kept, with no space (``"Lucene-" + "BM25"`` gives ``"Lucene-BM25"``).
    """
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
        elif _HYPHEN_END.search(out):
            out = (out[:-1] if line[:1].islower() else out) + line
        else:
            out = f"{out} {line}"
    return out


def clean_text(text: str) -> str:
    """Remove anything that would read as a grounding tag, and control characters."""
    text = _TAG_LIKE.sub("", text)
    return "".join(ch for ch in text if ch in "\n\t" or ch >= " ")


# --- reading order --------------------------------------------------------------------------


def _merged_intervals(items: Iterable[_Item]) -> list[list[float]]:
    merged: list[list[float]] = []
    for a, b in sorted((i.x0, i.x1) for i in items):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _y_overlap(a: _Item | _Row, b: _Item | _Row) -> float:
    return min(a.y1, b.y1) - max(a.y0, b.y0)


def _aligned_fraction(left: list[_Item], right: list[_Item]) -> float:
    """Share of the smaller side's items that sit on the same row as an item of the other."""
    small, big = (left, right) if len(left) <= len(right) else (right, left)
    if not small:
        return 0.0
    hits = sum(1 for a in small if any(_y_overlap(a, b) >= 0.5 * min(a.h, b.h) for b in big))
    return hits / len(small)


def _prose_like(side: list[_Item]) -> bool:
    """Lines mostly filling their column, as wrapped prose does (unlike table cells)."""
    lines = [i for i in side if i.kind == "line"]
    if len(lines) < 3:
        return False
    x0 = min(i.x0 for i in lines)
    x1 = max(i.x1 for i in lines)
    return statistics.median(i.w for i in lines) >= 0.6 * (x1 - x0)


def _column_cuts(items: list[_Item], unit: float) -> list[float]:
    """x positions of the gutters that split ``items`` into reading columns, left to right.

    A gutter is vertical whitespace crossing the whole region, at least ``0.8 * unit`` wide,
    with enough on each side (two items, or a very wide gap). Row-aligned short items on both
    sides (forms, borderless tables) are rows, not columns, unless both sides are prose.
    """
    if len(items) < 2:
        return []
    merged = _merged_intervals(items)
    if len(merged) < 2:
        return []
    gaps = [
        (merged[k][1], merged[k + 1][0])
        for k in range(len(merged) - 1)
        if merged[k + 1][0] - merged[k][1] >= 0.8 * unit
    ]
    if not gaps:
        return []
    parts = _columns_at(items, [(a + b) / 2 for a, b in gaps])
    cuts: list[float] = []
    for k, (a, b) in enumerate(gaps):
        left, right = parts[k], parts[k + 1]
        if not left or not right:
            continue
        if min(len(left), len(right)) < 2 and b - a < 2.0 * unit:
            continue
        if _aligned_fraction(left, right) >= 0.6 and not (_prose_like(left) and _prose_like(right)):
            continue
        cuts.append((a + b) / 2)
    return cuts


def _columns_at(items: list[_Item], cuts: list[float]) -> list[list[_Item]]:
    """Items grouped by the column their centre falls in, one list per column (maybe empty)."""
    bounds = [-float("inf"), *cuts, float("inf")]
    parts: list[list[_Item]] = [[] for _ in range(len(bounds) - 1)]
    for it in items:
        cx = (it.x0 + it.x1) / 2
        for k in range(len(parts)):
            if bounds[k] <= cx < bounds[k + 1]:
                parts[k].append(it)
                break
    return parts


def _split_x(items: list[_Item], cuts: list[float]) -> list[list[_Item]]:
    return [p for p in _columns_at(items, cuts) if p]


def _bands(items: list[_Item]) -> list[list[_Item]]:
    """Split into horizontal bands separated by whitespace (small overlaps tolerated)."""
    bands: list[list[_Item]] = []
    bottom = -float("inf")
    for it in sorted(items, key=lambda i: (i.y0, i.x0)):
        tol = 0.25 * it.h if it.kind == "line" else 0.0
        if bands and it.y0 < bottom - tol:
            bands[-1].append(it)
            bottom = max(bottom, it.y1)
        else:
            bands.append([it])
            bottom = it.y1
    return bands


def _rows(items: list[_Item]) -> list[_Row]:
    """Cluster items into rows by vertical overlap, top to bottom, each row left to right."""
    rows: list[list[_Item]] = []
    for it in sorted(items, key=lambda i: (i.y0 + i.y1) / 2):
        if it.kind == "line" and rows and rows[-1][0].kind == "line":
            last = rows[-1]
            y0 = min(i.y0 for i in last)
            y1 = max(i.y1 for i in last)
            h = min(it.h, y1 - y0)
            if min(it.y1, y1) - max(it.y0, y0) >= 0.5 * h:
                last.append(it)
                continue
        rows.append([it])
    return [_Row.of(r) for r in rows]


def _low_coverage_intervals(
    items: list[_Item], limit: int, min_width: float
) -> list[tuple[float, float]]:
    """x-intervals at least ``min_width`` wide that at most ``limit`` items cover."""
    events = sorted([(i.x0, 1) for i in items] + [(i.x1, -1) for i in items])
    out: list[tuple[float, float]] = []
    depth = 0
    start: float | None = None
    lo = min(i.x0 for i in items)
    for x, step in events:
        depth += step
        if depth <= limit and start is None and x > lo:
            start = x
        elif depth > limit and start is not None:
            if x - start >= min_width:
                out.append((start, x))
            start = None
    return out


def _blocked_gutter(items: list[_Item], unit: float) -> tuple[float, float] | None:
    """A column gutter crossed by some items (titles, wide figures, full-width paragraphs).

    The gutter is a valley of the x-coverage profile: an interval at least ``0.8 * unit``
    wide crossed by few items relative to the columns beside it. Thresholds are tried from
    strict to loose (up to half the items crossing); a gutter is accepted when at least three
    items lie wholly on each side and the items that do not cross it split into valid
    columns there.
    """
    n = len(items)
    if n < 6:
        return None
    for limit in sorted({2, n // 10, n // 5, (3 * n) // 10, (2 * n) // 5, n // 2}):
        if limit < 1:
            continue
        best: tuple[int, tuple[float, float]] | None = None
        for a, b in _low_coverage_intervals(items, limit, 0.8 * unit):
            left = sum(1 for i in items if i.x1 <= a)
            right = sum(1 for i in items if i.x0 >= b)
            side = min(left, right)
            if side < 3 or (best is not None and side <= best[0]):
                continue
            free = [i for i in items if not (i.x0 < a and i.x1 > b)]
            if any(a - unit <= c <= b + unit for c in _column_cuts(free, unit)):
                best = (side, (a, b))
        if best is not None:
            return best[1]
    return None


def _split_at_blockers(
    items: list[_Item], gutter: tuple[float, float], unit: float
) -> list[list[_Item]]:
    """Cut a region into horizontal segments at the items crossing ``gutter``.

    Each run of crossing items (with anything beside them on the same rows) is a segment; the
    items between two runs form another, to be split into columns. A heading that ends such a
    column stretch, below everything in the other column and after a gap, belongs to the
    full-width section that follows it, so it moves there.
    """
    a, b = gutter
    blockers = sorted((i for i in items if i.x0 < a and i.x1 > b), key=lambda i: i.y0)
    bands: list[list[float]] = []
    for it in blockers:
        if bands and it.y0 < bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], it.y1)
        else:
            bands.append([it.y0, it.y1])
    blocker_ids = {id(i) for i in blockers}
    # Segment 2k holds the items below k blocker bands; segment 2k+1 is blocker band k.
    segments: dict[int, list[_Item]] = {}
    for it in items:
        if id(it) in blocker_ids:
            k = next(k for k, (y0, y1) in enumerate(bands) if y0 <= it.y0 <= y1)
            segments.setdefault(2 * k + 1, []).append(it)
            continue
        beside = [
            k for k, (y0, y1) in enumerate(bands) if min(it.y1, y1) - max(it.y0, y0) >= 0.5 * it.h
        ]
        if beside:
            segments.setdefault(2 * beside[0] + 1, []).append(it)
        else:
            cy = (it.y0 + it.y1) / 2
            above = sum(1 for y0, _y1 in bands if y0 <= cy)
            segments.setdefault(2 * above, []).append(it)
    mid = (a + b) / 2
    for k in sorted(segments):
        if k % 2 or k // 2 >= len(bands):
            continue  # only column stretches followed by a full-width band
        left = [i for i in segments[k] if (i.x0 + i.x1) / 2 < mid]
        right = [i for i in segments[k] if (i.x0 + i.x1) / 2 >= mid]
        for side, other in ((left, right), (right, left)):
            if not side or not other:
                continue
            bottom = max(i.y1 for i in other)
            ordered = sorted(side, key=lambda i: i.y0)
            # the first item below the other column that also follows a vertical gap
            first = next(
                (
                    n
                    for n, i in enumerate(ordered)
                    if n > 0 and i.y0 > bottom and i.y0 - ordered[n - 1].y1 >= 0.8 * unit
                ),
                None,
            )
            if first is None:
                continue
            moved = {id(i) for i in ordered[first:]}
            segments[k] = [i for i in segments[k] if id(i) not in moved]
            segments[k + 1] = ordered[first:] + segments[k + 1]
    return [segments[k] for k in sorted(segments) if segments[k]]


def order_items(items: list[_Item], unit: float, depth: int = 0) -> list[list[_Row]]:
    """Reading order: a list of leaf regions, each a list of rows (see module docstring)."""
    if not items:
        return []
    if len(items) == 1 or depth > 40:
        return [_rows(items)]
    out: list[list[_Row]] = []
    cuts = _column_cuts(items, unit)
    if cuts:
        for part in _split_x(items, cuts):
            out.extend(order_items(part, unit, depth + 1))
        return out
    gutter = _blocked_gutter(items, unit)
    if gutter is not None:
        segments = _split_at_blockers(items, gutter, unit)
        if len(segments) > 1:
            for seg in segments:
                out.extend(order_items(seg, unit, depth + 1))
            return out
    bands = _bands(items)
    if len(bands) == 1:
        return [_rows(items)]
    for band in bands:
        out.extend(order_items(band, unit, depth + 1))
    return out


# --- rows -> paragraphs -----------------------------------------------------------------------


def _continues_row(a: _Row, b: _Row) -> bool:
    """``b`` is the rest of ``a``'s visual line (split by MuPDF or by a column cut)."""
    if a.kind != "line" or b.kind != "line":
        return False
    size = max(a.size, b.size)
    return (
        _y_overlap(a, b) >= 0.5 * min(a.h, b.h)
        and b.x0 >= a.x1 - 0.5 * size
        and b.x0 - a.x1 <= 2.0 * size
    )


def _starts_list_item(text: str) -> bool:
    return bool(_BULLET_START.match(text))


def _joins(para: _Para, row: _Row, size_tolerance: float) -> bool:
    """Whether ``row`` continues paragraph ``para`` (same column, close, same style)."""
    last = para.rows[-1]
    if row.kind != "line" or last.kind != "line":
        return False
    size = min(last.size, row.size)
    big = max(last.size, row.size)
    if big > size_tolerance * size:  # different font size
        return False
    if last.bold and not row.bold and len(para.rows) == 1:
        return False  # a bold heading line, then body text
    if row.bold and not last.bold and _TERMINAL_END.search(last.text) and len(row.text) < 100:
        return False  # body text, then a bold heading line
    gap = row.y0 - last.y1
    if gap > 0.7 * size or gap < -0.6 * min(last.h, row.h):
        return False
    px0, _py0, px1, _py1 = para.bbox
    overlap = min(px1, row.x1) - max(px0, row.x0)
    if overlap < 0.5 * min(row.x1 - row.x0, px1 - px0):
        return False
    if _starts_list_item(row.text):
        return False
    if (
        len(para.rows) == 1
        and last.x1 - last.x0 < 0.6 * (row.x1 - row.x0)
        and not last.text.endswith(("-", ","))
    ):
        return False  # a short first line over a long one: a heading or a label
    ended = bool(_TERMINAL_END.search(last.text))
    indented = row.x0 > px0 + 0.8 * size and last.x0 <= px0 + 0.5 * size
    short = last.x1 < px1 - 2.5 * size
    return not (ended and (indented or short))


def _continues_across(prev: _Para, nxt: _Para) -> bool:
    """A paragraph cut by a column or page-region break: no terminal punctuation before,
    a lower-case start after, same style, and the next part starts in a new column."""
    if not prev.rows or not nxt.rows or prev.rows[-1].kind != "line" or nxt.rows[0].kind != "line":
        return False
    a, b = prev.rows[-1], nxt.rows[0]
    if _TERMINAL_END.search(a.text) or not _LOWER_START.match(b.text) or not b.text[0].islower():
        return False
    if abs(prev.size - nxt.size) > 0.1 * max(prev.size, nxt.size) or prev.bold != nxt.bold:
        return False
    return b.y0 < a.y0 and b.x0 > a.x1 - 0.5 * a.size


def build_paragraphs(regions: list[list[_Row]], *, ocr: bool = False) -> list[_Para]:
    """Rows in reading order -> paragraphs; tables and images stay single-row 'paragraphs'.

    OCR line heights vary with ascenders and descenders, so ``ocr`` allows more size spread.
    """
    size_tolerance = 1.4 if ocr else 1.15
    rows: list[_Row] = []
    for region in regions:
        for row in region:
            if rows and _continues_row(rows[-1], row):
                rows[-1] = _Row.of(rows[-1].items + row.items)
            else:
                rows.append(row)
    paras: list[_Para] = []
    for row in rows:
        if paras and _joins(paras[-1], row, size_tolerance):
            paras[-1].rows.append(row)
        else:
            paras.append(_Para([row]))
    out: list[_Para] = []
    for para in paras:
        if out and _continues_across(out[-1], para):
            out[-1] = _MultiPara.of(out[-1], para)
        else:
            out.append(para)
    return out


@dataclass(slots=True)
class _MultiPara(_Para):
    """A paragraph flowing across columns: one box per part."""

    parts: list[list[_Row]] = field(default_factory=list)

    @classmethod
    def of(cls, prev: _Para, nxt: _Para) -> _MultiPara:
        prev_parts = prev.parts if isinstance(prev, _MultiPara) else [prev.rows]
        return cls(rows=prev.rows + nxt.rows, parts=[*prev_parts, nxt.rows])

    def boxes(self) -> list[BBox]:
        return [union_bbox((r.x0, r.y0, r.x1, r.y1) for r in part) for part in self.parts]


# --- labels ---------------------------------------------------------------------------------


def body_size(lines: Iterable[_Item]) -> float:
    """The font size (or line height) carrying most characters, rounded to half units."""
    weight: dict[float, int] = {}
    for it in lines:
        if it.kind == "line" and it.text.strip():
            key = round(it.size * 2) / 2
            weight[key] = weight.get(key, 0) + len(it.text.strip())
    if not weight:
        return 0.0
    return max(sorted(weight), key=lambda s: weight[s])


def _heading_level(para: _Para, body: float, *, ocr: bool) -> str | None:
    """``title``, ``sub_title`` or ``None`` for a text paragraph."""
    text = para.text
    if (
        body <= 0
        or len(text) > 200
        or len(para.rows) > 3
        or sum(ch.isalpha() for ch in text) < 2
        or _CAPTION_START.match(text)
    ):
        return None
    ratio = para.size / body
    if ocr:
        # OCR line heights are noisy (ascenders, descenders): ask for a clearer jump.
        if ratio >= 2.0 and len(para.rows) <= 2:
            return "title"
        if ratio >= 1.4 and len(text) <= 120:
            return "sub_title"
        return None
    if ratio >= 1.6:
        return "title"
    if ratio >= 1.15:
        return "sub_title"
    if (
        para.bold
        and len(para.rows) == 1
        and len(text) <= 100
        and abs(ratio - 1) < 0.15
        and not _TERMINAL_END.search(text.rstrip("."))
        and not text.endswith(".")
    ):
        return "sub_title"
    return None


def _caption_label(text: str) -> str | None:
    m = _CAPTION_START.match(text)
    if not m:
        return None
    kind = m.group("kind").lower()
    return "table_caption" if kind.startswith(("tab", "表")) else "image_caption"


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
    items: list[_Item] = []
    odd: list[TextLine] = []
    for line in lines:
        text = clean_text(line.text).strip()
        if not text:
            continue
        if line.direction != angle:
            odd.append(line)
            continue
        b = up(line.bbox)
        if any(_center_inside(b, tb, pad=1.0) for tb in table_boxes):
            continue
        items.append(_Item("line", *b, text=text, size=line.size, bold=line.bold))
    for k, tb in enumerate(table_boxes):
        items.append(_Item("table", *tb, text=str(k)))
    for ib in images:
        items.append(_Item("image", *up(ib)))

    body = body_size(items)
    # OCR boxes are padded around the glyphs: their height overstates the font size.
    unit = body * (0.7 if ocr else 1.0) if body > 0 else max(10.0, 0.012 * max(uw, uh))
    regions = order_items(items, unit)
    paras = build_paragraphs(regions, ocr=ocr)

    labels = [_para_label(para, body, ocr=ocr) for para in paras]
    _promote_title(paras, labels, body, uh)
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
            if isinstance(para, _MultiPara)
            else (down(para.bbox),)
        )
        text = para.text
        if label in ("title", "sub_title"):
            text = ("# " if label == "title" else "## ") + text
        blocks.append(LayoutBlock(label, boxes, text))
    blocks.extend(_odd_blocks(odd))
    return blocks


def _para_label(para: _Para, body: float, *, ocr: bool) -> str:
    kind = para.rows[0].items[0].kind
    if kind != "line":
        return kind
    text = para.text
    return _caption_label(text) or _heading_level(para, body, ocr=ocr) or "text"


def _promote_title(paras: list[_Para], labels: list[str], body: float, height: float) -> None:
    """With no ``title`` on the page, the largest heading near the top becomes one.

    DeepSeek-OCR labels a page's main heading ``title`` even when it is only moderately
    larger than the body text (a paper's title at 14 pt over 10 pt text).
    """
    if "title" in labels or body <= 0:
        return
    heads = [k for k, lab in enumerate(labels) if lab == "sub_title"]
    if not heads:
        return
    top = max(heads, key=lambda k: (paras[k].size, -k))
    para = paras[top]
    if (
        para.size >= 1.25 * body
        and para.bbox[1] <= height / 3
        and all(paras[k].size < para.size - 0.1 for k in heads if k != top)
    ):
        labels[top] = "title"


def _odd_blocks(lines: list[TextLine]) -> list[LayoutBlock]:
    """Lines written across the main direction (margin notes, axis labels): one block each,
    after the main text, ordered by position."""
    out = []
    for line in sorted(lines, key=lambda ln: (ln.bbox[0], ln.bbox[1])):
        text = clean_text(line.text).strip()
        if text:
            out.append(LayoutBlock("text", (line.bbox,), text))
    return out


# --- tables -> DeepSeek-style HTML ----------------------------------------------------------


def cells_to_html(cells: Sequence[TableCell]) -> str:
    """``<table><tr><td>`` HTML (with rowspan/colspan) for a grid of cells, DeepSeek's style.

    Grid positions no cell covers get an empty ``<td></td>`` so every row has the same width.
    """
    if not cells:
        return "<table></table>"
    n_rows = max(c.row + c.rowspan for c in cells)
    n_cols = max(c.col + c.colspan for c in cells)
    covered = [[False] * n_cols for _ in range(n_rows)]
    starts: dict[tuple[int, int], TableCell] = {}
    for c in cells:
        starts[(c.row, c.col)] = c
    out = ["<table>"]
    for r in range(n_rows):
        out.append("<tr>")
        for col in range(n_cols):
            cell = starts.get((r, col))
            if cell is not None and not covered[r][col]:
                for rr in range(r, min(n_rows, r + cell.rowspan)):
                    for cc in range(col, min(n_cols, col + cell.colspan)):
                        covered[rr][cc] = True
                attrs = ""
                if cell.rowspan > 1:
                    attrs += f' rowspan="{cell.rowspan}"'
                if cell.colspan > 1:
                    attrs += f' colspan="{cell.colspan}"'
                text = html.escape(" ".join(clean_text(cell.text).split()), quote=False)
                out.append(f"<td{attrs}>{text}</td>")
            elif not covered[r][col]:
                covered[r][col] = True
                out.append("<td></td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def grid_cells(
    cell_boxes: Sequence[BBox], cell_lines: Sequence[Sequence[str]], tol: float = 2.0
) -> list[TableCell]:
    """Rows, columns and spans of cells given by their boxes (a table finder's output).

    Grid lines are the distinct cell edges (within ``tol``); a cell spans every grid column
    (row) its box covers. Degenerate and duplicate boxes are dropped.
    """

    def edges(values: Iterable[float]) -> list[float]:
        out: list[float] = []
        for v in sorted(values):
            if not out or v - out[-1] > tol:
                out.append(v)
        return out

    xs = edges([b[0] for b in cell_boxes] + [b[2] for b in cell_boxes])
    ys = edges([b[1] for b in cell_boxes] + [b[3] for b in cell_boxes])

    def index(v: float, grid: list[float]) -> int:
        return min(range(len(grid)), key=lambda k: abs(grid[k] - v))

    cells: list[TableCell] = []
    seen: set[tuple[int, int]] = set()
    for b, lines in zip(cell_boxes, cell_lines, strict=True):
        c0, c1 = index(b[0], xs), index(b[2], xs)
        r0, r1 = index(b[1], ys), index(b[3], ys)
        if c1 <= c0 or r1 <= r0 or (r0, c0) in seen:
            continue
        seen.add((r0, c0))
        cells.append(TableCell(r0, c0, tuple(lines), rowspan=r1 - r0, colspan=c1 - c0))
    return cells


def split_stacked_rows(cells: Sequence[TableCell]) -> list[TableCell]:
    """Split grid rows whose cells all hold the same number (>1) of text lines.

    Table finders miss row rules that are not drawn, giving one grid row with five states in
    each cell; when every non-empty cell of a span-free row has the same k lines, the row is
    really k rows.
    """
    by_row: dict[int, list[TableCell]] = {}
    for c in cells:
        by_row.setdefault(c.row, []).append(c)
    spanned = {r for c in cells if c.rowspan > 1 for r in range(c.row, c.row + c.rowspan)}
    out: list[TableCell] = []
    shift = 0
    for r in sorted(by_row):
        row = by_row[r]
        counts = {len(c.lines) for c in row if c.lines}
        n = counts.pop() if len(counts) == 1 else 1
        if n > 1 and r not in spanned and len(row) > 1:
            for j in range(n):
                for c in row:
                    line = (c.lines[j],) if c.lines else ()
                    out.append(TableCell(c.row + shift + j, c.col, line, 1, c.colspan))
            shift += n - 1
        else:
            out.extend(TableCell(c.row + shift, c.col, c.lines, c.rowspan, c.colspan) for c in row)
    return out


def table_is_plausible(cells: Sequence[TableCell], words_in_box: int, words_in_cells: int) -> bool:
    """Reject what table finders mistake for tables: chart grids, frames around text.

    A table needs at least 2 rows, 2 columns and 2 non-empty cells; at most 40 % of its grid
    empty; its cells must hold the words inside its box (not 15 % left over); and no single
    cell of a table with few filled cells may hold most of its words (a frame drawn around a
    paragraph).
    """
    if not cells:
        return False
    n_rows = max(c.row + c.rowspan for c in cells)
    n_cols = max(c.col + c.colspan for c in cells)
    filled = [c for c in cells if c.text]
    if n_rows < 2 or n_cols < 2 or len(filled) < 2:
        return False
    filled_area = sum(c.rowspan * c.colspan for c in filled)
    if filled_area < 0.6 * n_rows * n_cols:
        return False
    if words_in_box and words_in_box - words_in_cells > 0.15 * words_in_box:
        return False
    biggest = max(len(c.text.split()) for c in filled)
    return not (len(filled) <= 4 and words_in_cells > 25 and biggest > 0.6 * words_in_cells)
