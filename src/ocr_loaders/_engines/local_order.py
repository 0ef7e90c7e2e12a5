"""Reading order for the local engine: a recursive XY-cut that prefers columns.

A region splits at vertical whitespace gutters first; otherwise it splits into horizontal
bands, and consecutive bands that share a gutter are grouped and split again. Aligned short
items (forms, borderless tables) are not taken for columns, so they read row by row.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from .local_geometry import Item, Row, y_overlap

# --- reading order --------------------------------------------------------------------------


def _merged_intervals(items: Iterable[Item]) -> list[list[float]]:
    merged: list[list[float]] = []
    for a, b in sorted((i.x0, i.x1) for i in items):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _aligned_fraction(left: list[Item], right: list[Item]) -> float:
    """Share of the smaller side's items that sit on the same row as an item of the other."""
    small, big = (left, right) if len(left) <= len(right) else (right, left)
    if not small:
        return 0.0
    hits = sum(1 for a in small if any(y_overlap(a, b) >= 0.5 * min(a.h, b.h) for b in big))
    return hits / len(small)


def _prose_like(side: list[Item]) -> bool:
    """Lines mostly filling their column, as wrapped prose does (unlike table cells)."""
    lines = [i for i in side if i.kind == "line"]
    if len(lines) < 3:
        return False
    x0 = min(i.x0 for i in lines)
    x1 = max(i.x1 for i in lines)
    return statistics.median(i.w for i in lines) >= 0.6 * (x1 - x0)


def _column_cuts(items: list[Item], unit: float) -> list[float]:
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


def _columns_at(items: list[Item], cuts: list[float]) -> list[list[Item]]:
    """Items grouped by the column their centre falls in, one list per column (maybe empty)."""
    bounds = [-float("inf"), *cuts, float("inf")]
    parts: list[list[Item]] = [[] for _ in range(len(bounds) - 1)]
    for it in items:
        cx = (it.x0 + it.x1) / 2
        for k in range(len(parts)):
            if bounds[k] <= cx < bounds[k + 1]:
                parts[k].append(it)
                break
    return parts


def _split_x(items: list[Item], cuts: list[float]) -> list[list[Item]]:
    return [p for p in _columns_at(items, cuts) if p]


def _bands(items: list[Item]) -> list[list[Item]]:
    """Split into horizontal bands separated by whitespace (small overlaps tolerated)."""
    bands: list[list[Item]] = []
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


def _rows(items: list[Item]) -> list[Row]:
    """Cluster items into rows by vertical overlap, top to bottom, each row left to right."""
    rows: list[list[Item]] = []
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
    return [Row.of(r) for r in rows]


def _low_coverage_intervals(
    items: list[Item], limit: int, min_width: float
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


def _blocked_gutter(items: list[Item], unit: float) -> tuple[float, float] | None:
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
            # Items reaching over the middle of the gutter are its blockers (a short line of
            # a full-width section can end inside a gutter without crossing it).
            mid = (a + b) / 2
            free = [i for i in items if not (i.x0 < mid < i.x1)]
            if any(a - unit <= c <= b + unit for c in _column_cuts(free, unit)):
                best = (side, (a, b))
        if best is not None:
            return best[1]
    return None


def _split_at_blockers(
    items: list[Item], gutter: tuple[float, float], unit: float
) -> list[list[Item]]:
    """Cut a region into horizontal segments at the items crossing ``gutter``.

    Each run of crossing items (with anything beside them on the same rows) is a segment; the
    items between two runs form another, to be split into columns. A heading that ends such a
    column stretch, below everything in the other column and after a gap (or set in bold
    after regular text), belongs to the full-width section that follows it, so it moves
    there.
    """
    a, b = gutter
    mid = (a + b) / 2
    blockers = sorted((i for i in items if i.x0 < mid < i.x1), key=lambda i: i.y0)
    bands: list[list[float]] = []
    for it in blockers:
        if bands and it.y0 < bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], it.y1)
        else:
            bands.append([it.y0, it.y1])
    blocker_ids = {id(i) for i in blockers}
    # Segment 2k holds the items below k blocker bands; segment 2k+1 is blocker band k.
    segments: dict[int, list[Item]] = {}
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
            # the first item below the other column that also follows a vertical gap, or
            # starts a bold line after text that is not (OCR boxes can close the gap)
            first = next(
                (
                    n
                    for n, i in enumerate(ordered)
                    if n > 0
                    and i.y0 > bottom
                    and (
                        i.y0 - ordered[n - 1].y1 >= 0.8 * unit
                        or (i.bold and not ordered[n - 1].bold)
                    )
                ),
                None,
            )
            if first is None:
                continue
            moved = {id(i) for i in ordered[first:]}
            segments[k] = [i for i in segments[k] if id(i) not in moved]
            segments[k + 1] = ordered[first:] + segments[k + 1]
    return [segments[k] for k in sorted(segments) if segments[k]]


def order_items(items: list[Item], unit: float, depth: int = 0) -> list[list[Row]]:
    """Reading order: a list of leaf regions, each a list of rows (see module docstring)."""
    if not items:
        return []
    if len(items) == 1 or depth > 40:
        return [_rows(items)]
    out: list[list[Row]] = []
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
