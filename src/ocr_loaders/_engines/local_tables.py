"""Tables for the local engine: PyMuPDF's finder -> a grid of cells -> DeepSeek-style HTML.

The grid functions are pure; :func:`find_tables` works on an open PyMuPDF page (in the page
hook, where the document is open).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .._model import BBox
from .local_paragraphs import clean_text


@dataclass(frozen=True, slots=True)
class TableRegion:
    """A table found on the page: its box in the displayed frame and its HTML."""

    bbox: BBox
    html: str


@dataclass(frozen=True, slots=True)
class CellLine:
    """One text line inside a table cell, with its vertical extent (page units)."""

    text: str
    y0: float
    y1: float

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1e-6)


@dataclass(frozen=True, slots=True)
class TableCell:
    """One cell of a table grid: 0-based row/column, spans, its text lines top to bottom.

    ``extents`` holds each line's (y0, y1) when known (empty for cells built by hand); it
    lets :func:`split_stacked_rows` see which lines of neighbouring cells sit side by side.
    """

    row: int
    col: int
    lines: tuple[str, ...]
    rowspan: int = 1
    colspan: int = 1
    extents: tuple[tuple[float, float], ...] = ()

    @property
    def text(self) -> str:
        """The cell's text on one line."""
        return " ".join(ln.strip() for ln in self.lines if ln.strip())


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


def _edges(values: Iterable[float], tol: float) -> list[float]:
    """Distinct values, sorted, those within ``tol`` of the previous one merged."""
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > tol:
            out.append(v)
    return out


def grid_cells(
    cell_boxes: Sequence[BBox], cell_lines: Sequence[Sequence[CellLine]], tol: float = 2.0
) -> list[TableCell]:
    """Rows, columns and spans of cells given by their boxes (a table finder's output).

    Grid lines are the distinct cell edges (within ``tol``); a cell spans every grid column
    (row) its box covers. Degenerate and duplicate boxes are dropped.
    """
    xs = _edges([b[0] for b in cell_boxes] + [b[2] for b in cell_boxes], tol)
    ys = _edges([b[1] for b in cell_boxes] + [b[3] for b in cell_boxes], tol)

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
        texts = tuple(ln.text for ln in lines)
        extents = tuple((ln.y0, ln.y1) for ln in lines)
        cells.append(TableCell(r0, c0, texts, r1 - r0, c1 - c0, extents))
    return cells


ALIGN = 0.35
"""Two text lines sit side by side when their centres differ by at most this many line
heights."""


def split_spanning_cells(
    cell_boxes: Sequence[BBox], cell_lines: Sequence[Sequence[CellLine]], tol: float = 2.0
) -> tuple[list[BBox], list[list[CellLine]]]:
    """Cut cells that span grid rows only because a row rule is missing in their column.

    A ruled table whose rule between two rows is not drawn under some columns comes out of
    the finder as one cell over both rows there, holding both rows' text ("OTSL" over
    "HTML" beside separate cells "0.965" and "0.969"). Such a cell is cut at the row bands
    of the grid when every one of its lines lies inside one band and sits side by side with
    a line of a neighbouring single-row cell there, and the lines fall in at least two
    bands. A real merged cell (one label centred over two rows) is left alone.
    """
    ys = _edges([b[1] for b in cell_boxes] + [b[3] for b in cell_boxes], tol)
    bands = list(pairwise(ys))

    def bands_of(box: BBox) -> list[int]:
        return [k for k, (a, b) in enumerate(bands) if a >= box[1] - tol and b <= box[3] + tol]

    covered = [bands_of(box) for box in cell_boxes]
    single: dict[int, list[CellLine]] = {}
    for ks, lines in zip(covered, cell_lines, strict=True):
        if len(ks) == 1:
            single.setdefault(ks[0], []).extend(lines)
    out_boxes: list[BBox] = []
    out_lines: list[list[CellLine]] = []
    for box, ks, lines in zip(cell_boxes, covered, cell_lines, strict=True):
        where = [_band_of(ln, [bands[k] for k in ks]) for ln in lines] if len(ks) > 1 else []
        ok = (
            len(lines) > 1
            and all(w is not None for w in where)
            and len(set(where)) > 1
            and all(
                _aligned(ln, single.get(ks[w], []))
                for ln, w in zip(lines, where, strict=True)
                if w is not None
            )
        )
        if not ok:
            out_boxes.append(box)
            out_lines.append(list(lines))
            continue
        for j, k in enumerate(ks):
            a, b = bands[k]
            out_boxes.append((box[0], a, box[2], b))
            out_lines.append([ln for ln, w in zip(lines, where, strict=True) if w == j])
    return out_boxes, out_lines


def _band_of(line: CellLine, bands: Sequence[tuple[float, float]]) -> int | None:
    """The band holding at least 70 % of the line's height, if any."""
    for j, (a, b) in enumerate(bands):
        if min(b, line.y1) - max(a, line.y0) >= 0.7 * line.height:
            return j
    return None


def _aligned(line: CellLine, others: Sequence[CellLine]) -> bool:
    return any(abs(o.cy - line.cy) <= ALIGN * max(o.height, line.height) for o in others)


def split_stacked_rows(cells: Sequence[TableCell]) -> list[TableCell]:
    """Split grid rows that hold several table rows because their row rules are missing.

    Table finders miss row rules that are not drawn, giving one grid row with five states in
    each cell. A span-free row is really k rows when every non-empty cell holds the same k
    (>1) lines; or, where line positions are known, when at least two cells hold k lines
    that sit side by side and every other cell holds one line: such a line goes to the
    sub-row it sits beside, or spans all k (a label centred over them).
    """
    by_row: dict[int, list[TableCell]] = {}
    for c in cells:
        by_row.setdefault(c.row, []).append(c)
    spanned = {r for c in cells if c.rowspan > 1 for r in range(c.row, c.row + c.rowspan)}
    out: list[TableCell] = []
    shift = 0
    for r in sorted(by_row):
        row = by_row[r]
        split = _row_split(row) if r not in spanned and len(row) > 1 else None
        if split is None:
            out.extend(
                TableCell(c.row + shift, c.col, c.lines, c.rowspan, c.colspan, c.extents)
                for c in row
            )
            continue
        n, placed = split
        for c, parts in zip(row, placed, strict=True):
            for sub, span, lines in parts:
                out.append(TableCell(r + shift + sub, c.col, lines, span, c.colspan))
        shift += n - 1
    return sorted(out, key=lambda c: (c.row, c.col))


_Part = tuple[int, int, tuple[str, ...]]
"""A piece of a split cell: its sub-row, its rowspan, its lines."""


def _row_split(row: Sequence[TableCell]) -> tuple[int, list[list[_Part]]] | None:
    """How a grid row splits: the number of sub-rows and each cell's pieces; ``None`` when
    the row stays whole."""

    def spread(c: TableCell, n: int) -> list[_Part]:
        if not c.lines:
            return [(j, 1, ()) for j in range(n)]
        return [(j, 1, (c.lines[j],)) for j in range(n)]

    counts = {len(c.lines) for c in row if c.lines}
    if len(counts) == 1 and (n := counts.pop()) > 1:
        return n, [spread(c, n) for c in row]
    multi = [c for c in row if len(c.lines) > 1]
    sizes = {len(c.lines) for c in multi}
    if len(multi) < 2 or len(sizes) != 1 or any(len(c.extents) != len(c.lines) for c in row):
        return None
    n = sizes.pop()
    bands = [
        CellLine("", min(c.extents[j][0] for c in multi), max(c.extents[j][1] for c in multi))
        for j in range(n)
    ]
    for c in multi:
        for j, (y0, y1) in enumerate(c.extents):
            if not _aligned(CellLine("", y0, y1), [bands[j]]):
                return None
    placed: list[list[_Part]] = []
    for c in row:
        if not c.lines or len(c.lines) == n:
            placed.append(spread(c, n))
            continue
        y0, y1 = c.extents[0][0], c.extents[-1][1]
        hit = [j for j, b in enumerate(bands) if _aligned(CellLine("", y0, y1), [b])]
        if len(c.lines) == 1 and len(hit) == 1:
            placed.append([(j, 1, c.lines if j == hit[0] else ()) for j in range(n)])
        else:
            placed.append([(0, n, c.lines)])
    return n, placed


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


def find_tables(page: Any, text_angle: int) -> list[TableRegion]:
    """Tables from PyMuPDF's finder, as DeepSeek-style HTML, boxes in the displayed frame.

    The finder works in the frame the page is shown in; when the text runs sideways there
    (a landscape table on a rotated page) the page rotation is changed for the call so the
    finder sees upright text, and restored afterwards.
    """
    import pymupdf

    original = int(page.rotation)
    to_display = page.rotation_matrix
    wanted = (original - text_angle) % 360
    try:
        if wanted != original:
            page.set_rotation(wanted)
        to_finder = page.rotation_matrix
        from_finder = page.derotation_matrix * to_display
        try:
            found = page.find_tables(use_layout=False)
        except TypeError:  # PyMuPDF before the layout-gated finder
            found = page.find_tables()
        tables = list(getattr(found, "tables", None) or [])
        words = page.get_text("words") if tables else []
    finally:
        if int(page.rotation) != original:
            page.set_rotation(original)
    placed: list[_Word] = []
    for w in words:
        r = pymupdf.Rect(w[:4]) * to_finder
        placed.append(_Word((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, r.x0, r.y0, r.y1, str(w[4])))
    out: list[TableRegion] = []
    for tab in tables:
        boxes: list[BBox] = [tuple(c) for c in (tab.cells or []) if c is not None]
        if len(boxes) < 4:
            continue
        boxes, cell_lines = split_spanning_cells(boxes, [_cell_lines(b, placed) for b in boxes])
        cells = split_stacked_rows(grid_cells(boxes, cell_lines))
        tx0, ty0, tx1, ty1 = tab.bbox
        in_table = sum(1 for w in placed if tx0 <= w.cx <= tx1 and ty0 <= w.cy <= ty1)
        in_cells = sum(len(ln.text.split()) for lines in cell_lines for ln in lines)
        if not table_is_plausible(cells, in_table, in_cells):
            continue
        r = pymupdf.Rect(tab.bbox) * from_finder
        out.append(TableRegion((r.x0, r.y0, r.x1, r.y1), cells_to_html(cells)))
    return out


@dataclass(frozen=True, slots=True)
class _Word:
    cx: float
    cy: float
    x0: float
    y0: float
    y1: float
    text: str


def _cell_lines(box: BBox, words: list[_Word]) -> list[CellLine]:
    """The words whose centre lies in ``box``, as text lines top to bottom."""
    x0, y0, x1, y1 = box
    inside = sorted(
        (w for w in words if x0 <= w.cx <= x1 and y0 <= w.cy <= y1), key=lambda w: (w.y0, w.x0)
    )
    rows: list[list[_Word]] = []
    for w in inside:
        if rows and abs(w.y0 - rows[-1][-1].y0) <= 0.5 * max(1.0, w.y1 - w.y0):
            rows[-1].append(w)
        else:
            rows.append([w])
    return [
        CellLine(
            " ".join(w.text for w in sorted(row, key=lambda w: w.x0)),
            min(w.y0 for w in row),
            max(w.y1 for w in row),
        )
        for row in rows
    ]
