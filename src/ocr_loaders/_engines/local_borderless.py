"""Tables without rules on a scan, found from where the OCR lines sit.

The OCR lines of a scan are already cut where the ink stops for more than an ink height
(``local_onnx.split_at_gaps``), so the cells of a row come as separate pieces. A borderless
table is then a run of consecutive rows whose pieces, projected onto the x axis, leave the same
vertical gutters: at least ``MIN_ROWS`` rows and two columns, one of them a column of figures
(quantities, prices, dates: what the tables of invoices, parts lists and statements hold). A
line across the gutters (a paragraph, a title over the table) closes every gutter, so it ends
the run. Prose set in columns, and an author block of names and affiliations, have gutters too:
the column of figures tells them apart, and so do their lines, which in a column of prose are
words that fill the column's width where a table column holds short or uneven entries. Pure
functions; coordinates in image pixels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .._model import BBox
from .local_layout import TextLine
from .local_tables import TableCell, TableRegion, cells_to_html, table_is_plausible

MIN_ROWS = 3
NUMERIC_COLUMN = 0.6
"""A column is a column of figures when this share of its filled cells hold a digit."""
PROSE_WORDS = 3
PROSE_FILL = 0.7
PROSE_SHARE = 0.6
"""A column reads as prose when this share of its pieces are lines of at least
``PROSE_WORDS`` words filling ``PROSE_FILL`` of the column's width."""
MIN_FILL = 0.6
"""Every row of a table has text in at least this share of its columns."""
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class _Row:
    pieces: tuple[TextLine, ...]
    """Left to right."""
    top: float
    bottom: float


def borderless_tables(lines: Sequence[TextLine], taken: Sequence[BBox] = ()) -> list[TableRegion]:
    """The borderless tables among upright OCR ``lines`` (none inside ``taken`` boxes)."""
    free = [
        ln
        for ln in lines
        if ln.direction == 0 and ln.text.strip() and not any(_inside(ln.bbox, b) for b in taken)
    ]
    rows = _rows(free)
    if not rows:
        return []
    gap = 2.5 * sorted(r.bottom - r.top for r in rows)[len(rows) // 2]
    out: list[TableRegion] = []
    i = 0
    while i < len(rows):
        run = _longest_run(rows, i, gap)
        table = _table(run) if len(run) >= MIN_ROWS else None
        if table is None:
            i += 1
            continue
        out.append(table)
        i += len(run)
    return out


def _inside(b: BBox, box: BBox) -> bool:
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _rows(lines: Sequence[TextLine]) -> list[_Row]:
    """Lines grouped into rows by their vertical centres, top to bottom."""
    rows: list[list[TextLine]] = []
    for ln in sorted(lines, key=lambda ln: (ln.bbox[1] + ln.bbox[3]) / 2):
        cy, h = (ln.bbox[1] + ln.bbox[3]) / 2, ln.bbox[3] - ln.bbox[1]
        if rows:
            last = rows[-1]
            lcy = sum((x.bbox[1] + x.bbox[3]) / 2 for x in last) / len(last)
            lh = min(x.bbox[3] - x.bbox[1] for x in last)
            if abs(cy - lcy) <= 0.5 * min(h, lh):
                last.append(ln)
                continue
        rows.append([ln])
    return [
        _Row(
            tuple(sorted(r, key=lambda ln: ln.bbox[0])),
            min(ln.bbox[1] for ln in r),
            max(ln.bbox[3] for ln in r),
        )
        for r in rows
    ]


def _columns(rows: Sequence[_Row]) -> list[tuple[float, float]]:
    """The x intervals the rows' pieces cover together (the gaps between them are gutters)."""
    spans = sorted((p.bbox[0], p.bbox[2]) for r in rows for p in r.pieces)
    out: list[tuple[float, float]] = []
    for x0, x1 in spans:
        if out and x0 <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], x1))
        else:
            out.append((x0, x1))
    return out


def _longest_run(rows: Sequence[_Row], start: int, gap: float) -> list[_Row]:
    """Rows from ``start`` on that keep at least two gutters open (one, for numbers), each
    with pieces in most columns, no further apart than ``gap``."""
    run = [rows[start]]
    if len(rows[start].pieces) < 2:
        return run
    for row in rows[start + 1 :]:
        if row.top - run[-1].bottom > gap or len(row.pieces) < 2:
            break
        cols = _columns([*run, row])
        if len(cols) < 2 or not all(_fill(r, cols) >= MIN_FILL for r in [*run, row]):
            break
        run.append(row)
    return run


def _fill(row: _Row, cols: Sequence[tuple[float, float]]) -> float:
    used = {_column_of(p, cols) for p in row.pieces}
    return len(used) / len(cols)


def _column_of(piece: TextLine, cols: Sequence[tuple[float, float]]) -> int:
    cx = (piece.bbox[0] + piece.bbox[2]) / 2
    return min(range(len(cols)), key=lambda k: 0 if cols[k][0] <= cx <= cols[k][1] else 1)


def _prose(run: Sequence[_Row], cols: Sequence[tuple[float, float]], k: int) -> bool:
    """Whether column ``k`` of the run reads as a column of prose."""
    width = cols[k][1] - cols[k][0]
    pieces = [p for row in run for p in row.pieces if _column_of(p, cols) == k]
    lines = [
        p
        for p in pieces
        if len(p.text.split()) >= PROSE_WORDS and p.bbox[2] - p.bbox[0] >= PROSE_FILL * width
    ]
    return len(lines) >= PROSE_SHARE * max(len(pieces), 1)


def _figures(column: Sequence[str]) -> bool:
    """Whether a column's filled cells are mostly figures (a header cell may be a word)."""
    filled = [t for t in column if t]
    return len(filled) >= 2 and sum(bool(_NUMBER.search(t)) for t in filled) >= (
        NUMERIC_COLUMN * len(filled)
    )


def _table(run: Sequence[_Row]) -> TableRegion | None:
    """The run as a table, or ``None`` when its cells read like prose set in columns."""
    cols = _columns(run)
    texts: dict[tuple[int, int], list[str]] = {}
    for r, row in enumerate(run):
        for p in row.pieces:
            texts.setdefault((r, _column_of(p, cols)), []).append(p.text.strip())
    cells = [
        TableCell(r, c, (" ".join(texts.get((r, c), [])),))
        for r in range(len(run))
        for c in range(len(cols))
    ]
    if 2 * sum(_prose(run, cols, k) for k in range(len(cols))) >= len(cols):
        return None
    if not any(_figures([c.text for c in cells if c.col == k]) for k in range(len(cols))):
        return None
    in_run = sum(len(p.text.split()) for row in run for p in row.pieces)
    if not table_is_plausible(cells, in_run, in_run):
        return None
    box = (
        min(p.bbox[0] for row in run for p in row.pieces),
        min(row.top for row in run),
        max(p.bbox[2] for row in run for p in row.pieces),
        max(row.bottom for row in run),
    )
    return TableRegion(box, cells_to_html(cells))
