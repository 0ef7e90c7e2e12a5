"""Ruled tables on scanned pages: ruling lines found in the image, OCR lines put in cells.

A scan has no table finder to ask, but a ruled table's rules are long straight runs of dark
pixels, which text never makes. The page is binarised; morphological opening with a long
thin kernel keeps only horizontal (vertical) runs longer than ``RULE_SHARE`` of the page's
shorter side. Clusters of touching rules with at least two horizontal and two vertical rules
are grids; a grid cell has a wall on a side when a rule covers most of that side, and cells
with no wall between them are one merged cell (rowspan / colspan). The rules are whitened
before OCR (a rule beside text is read as ``|`` or ``l``), then each OCR line goes to the
cell holding its centre, and the cells go through the same grid and HTML code as the text
layer's tables (:mod:`.local_tables`).

Pure numpy/OpenCV on arrays, no I/O. Borderless tables and tables with only horizontal
rules (booktabs) are not found here; they read as text rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._model import BBox
from .local_layout import TextLine
from .local_onnx import release_freed_memory
from .local_tables import (
    CellLine,
    TableRegion,
    cells_to_html,
    grid_cells,
    split_spanning_cells,
    split_stacked_rows,
    table_is_plausible,
)

RULE_SHARE = 1 / 40
"""A rule is a straight dark run at least this share of the image's shorter side long (64
px on a 300 dpi Letter page; the tallest letters are about half that at 12 pt)."""
RULE_MIN_PX = 20
WALL_COVER = 0.6
"""A cell side is walled when a rule covers this share of it."""


@dataclass(frozen=True, slots=True)
class RuledGrid:
    """A ruled grid found in an image: its box, its cells' boxes and the rule pixels."""

    bbox: BBox
    cells: tuple[BBox, ...]
    rules: np.ndarray
    """Boolean mask of the grid's rule pixels over the whole image."""


def find_ruled_grids(gray: np.ndarray) -> list[RuledGrid]:
    """Ruled grids (at least 2 x 2 cells) in a grayscale image, in its pixel frame."""
    import cv2

    h, w = gray.shape[:2]
    if min(h, w) < 4 * RULE_MIN_PX:
        return []
    _t, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    length = max(RULE_MIN_PX, round(RULE_SHARE * min(h, w)))
    horiz = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    vert = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    if not horiz.any() or not vert.any():
        return []
    tol = max(3, round(min(h, w) / 300))
    joined = cv2.dilate(cv2.bitwise_or(horiz, vert), np.ones((2 * tol + 1, 2 * tol + 1), np.uint8))
    del ink
    count, labels, stats, _c = cv2.connectedComponentsWithStats(
        joined, connectivity=8, ltype=cv2.CV_16U
    )
    del joined
    grids: list[RuledGrid] = []
    for k in range(1, count):
        x, y, bw, bh, _area = (int(v) for v in stats[k])
        if bw < 2 * length or bh < length:
            continue
        region = labels[y : y + bh, x : x + bw] == k
        hm = (horiz[y : y + bh, x : x + bw] > 0) & region
        vm = (vert[y : y + bh, x : x + bw] > 0) & region
        ys = _rule_positions(hm.any(axis=1), tol)
        xs = _rule_positions(vm.any(axis=0), tol)
        if len(ys) < 3 or len(xs) < 3:
            continue
        cells = _grid_cell_boxes(hm, vm, xs, ys, tol)
        if len(cells) < 4:
            continue
        mask = np.zeros((h, w), bool)
        mask[y : y + bh, x : x + bw] = hm | vm
        box = (float(x + xs[0]), float(y + ys[0]), float(x + xs[-1]), float(y + ys[-1]))
        shifted = tuple((a + x, b + y, c + x, d + y) for a, b, c, d in cells)
        grids.append(RuledGrid(box, shifted, mask))
    del labels, horiz, vert
    release_freed_memory()  # a few page-sized masks, freed before the detector's peak
    return grids


def _rule_positions(profile: np.ndarray, tol: int) -> list[int]:
    """Centres of the runs of True in a 1-D profile; runs closer than ``tol`` are one."""
    idx = np.flatnonzero(profile)
    if not len(idx):
        return []
    out: list[int] = []
    start = prev = int(idx[0])
    for v in (int(i) for i in idx[1:]):
        if v - prev > tol:
            out.append((start + prev) // 2)
            start = v
        prev = v
    out.append((start + prev) // 2)
    return out


def _grid_cell_boxes(
    hm: np.ndarray, vm: np.ndarray, xs: list[int], ys: list[int], tol: int
) -> list[BBox]:
    """Boxes of the grid's cells, merged where no rule separates neighbouring grid cells."""
    rows, cols = len(ys) - 1, len(xs) - 1

    def v_wall(x: int, y0: int, y1: int) -> bool:
        strip = vm[y0 + tol : max(y0 + tol + 1, y1 - tol), max(0, x - tol) : x + tol + 1]
        return bool(strip.size) and float(strip.any(axis=1).mean()) >= WALL_COVER

    def h_wall(y: int, x0: int, x1: int) -> bool:
        strip = hm[max(0, y - tol) : y + tol + 1, x0 + tol : max(x0 + tol + 1, x1 - tol)]
        return bool(strip.size) and float(strip.any(axis=0).mean()) >= WALL_COVER

    parent = list(range(rows * cols))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols and not v_wall(xs[c + 1], ys[r], ys[r + 1]):
                parent[find(r * cols + c)] = find(r * cols + c + 1)
            if r + 1 < rows and not h_wall(ys[r + 1], xs[c], xs[c + 1]):
                parent[find(r * cols + c)] = find((r + 1) * cols + c)
    groups: dict[int, list[tuple[int, int]]] = {}
    for r in range(rows):
        for c in range(cols):
            groups.setdefault(find(r * cols + c), []).append((r, c))
    boxes: list[BBox] = []
    for members in groups.values():
        r0, r1 = min(m[0] for m in members), max(m[0] for m in members) + 1
        c0, c1 = min(m[1] for m in members), max(m[1] for m in members) + 1
        if (r1 - r0) * (c1 - c0) != len(members):
            return []  # not a rectangle: rules too broken to trust
        boxes.append((float(xs[c0]), float(ys[r0]), float(xs[c1]), float(ys[r1])))
    return boxes


def erase_rules(img: np.ndarray, grids: Sequence[RuledGrid]) -> np.ndarray:
    """A copy of ``img`` with the grids' rules whitened (so OCR does not read them)."""
    out: np.ndarray = img.copy()
    for g in grids:
        out[g.rules] = 255
    return out


def grid_tables(grids: Sequence[RuledGrid], lines: Sequence[TextLine]) -> list[TableRegion]:
    """The grids that hold a plausible table of the OCR ``lines``, as HTML tables."""
    out: list[TableRegion] = []
    for g in grids:
        inside = [ln for ln in lines if _centre_in(ln.bbox, g.bbox)]
        cell_lines = [_lines_in(box, inside) for box in g.cells]
        boxes, cell_lines = split_spanning_cells(list(g.cells), cell_lines, tol=2.0)
        cells = split_stacked_rows(grid_cells(boxes, cell_lines, tol=2.0))
        in_box = sum(len(ln.text.split()) for ln in inside)
        in_cells = sum(len(cl.text.split()) for cls in cell_lines for cl in cls)
        if inside and table_is_plausible(cells, in_box, in_cells):
            out.append(TableRegion(g.bbox, cells_to_html(cells)))
    return out


def _centre_in(b: BBox, box: BBox) -> bool:
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _lines_in(box: BBox, lines: Sequence[TextLine]) -> list[CellLine]:
    """The OCR lines whose centre is in ``box``, top to bottom; pieces of one text line
    (cut at wide gaps) are joined left to right."""
    inside = sorted((ln for ln in lines if _centre_in(ln.bbox, box)), key=lambda ln: ln.bbox[1])
    rows: list[list[TextLine]] = []
    for ln in inside:
        last = rows[-1][-1] if rows else None
        if last is not None:
            h = min(ln.bbox[3] - ln.bbox[1], last.bbox[3] - last.bbox[1])
            if abs((ln.bbox[1] + ln.bbox[3]) - (last.bbox[1] + last.bbox[3])) / 2 <= 0.5 * h:
                rows[-1].append(ln)
                continue
        rows.append([ln])
    return [
        CellLine(
            " ".join(ln.text.strip() for ln in sorted(row, key=lambda ln: ln.bbox[0])),
            min(ln.bbox[1] for ln in row),
            max(ln.bbox[3] for ln in row),
        )
        for row in rows
    ]
