"""Bold lines on scans, told from the ink.

OCR gives no font weight, so bold headings set at the body's size read as text and run
into the paragraph after them. A bold face has thicker stems and smaller counters: along
each pixel row of a line, the dark runs (strokes) are long and the light runs between them
inside words (counters, letter gaps) short. Their ratio, mean stroke over mean gap (runs
left out: gaps over twice the median, word spaces; strokes over 0.7 of the line's height,
rules, underlines and dashes), does not
depend on the line's size or the scan's resolution; on 300 dpi scans it is 1.9 to 2.2 times
the page's median for bold headings and at most 1.2 times for the body text, and at 150 dpi
still 1.5 to 1.7 times.

A line is bold when its ratio is at least :data:`OVER_MEDIAN` times the page's median line
and :data:`OVER_P80` times its 80th percentile (a page whose lines spread widely, such as a
chart's labels or a blurred scan, asks for more). Only lines :data:`MIN_HEIGHT_PX` tall or
more (strokes of one or two pixels say nothing), about as tall as the page's typical line
(:data:`SIZES`), with :data:`MIN_LETTERS` letters are measured, and only on pages with
:data:`MIN_LINES` such lines; no other line is bold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._model import BBox

MIN_HEIGHT_PX = 24
MIN_LETTERS = 4
MIN_LINES = 5
OVER_MEDIAN = 1.45
OVER_P80 = 1.3
SIZES = (0.6, 1.6)
"""Only lines this many times the page's median line height are measured: bold matters
for headings at the body's size, and taller boxes hold large type or slanted labels."""


def stroke_ratio(crop: np.ndarray) -> float | None:
    """Mean dark run over mean light run inside words, along the rows of a grayscale line
    crop (text running left to right or upside down); ``None`` when the crop has too little
    contrast or ink to tell. Light runs over twice the median (word spaces) and dark runs
    over 0.7 of the crop's height (rules, underlines, dashes) are left out."""
    height, crop = crop.shape[0], crop[::2]  # every other row is enough
    hist = np.bincount(crop[:, ::2].ravel(), minlength=256)
    cum = np.cumsum(hist)
    ink = int(np.searchsorted(cum, 0.02 * cum[-1]))
    paper = int(np.searchsorted(cum, 0.90 * cum[-1]))
    if paper - ink < 40:
        return None
    dark = np.zeros((crop.shape[0], crop.shape[1] + 2), np.bool_)  # light on both sides
    np.less(crop, (ink + paper) / 2, out=dark[:, 1:-1])
    edges = dark[:, 1:] != dark[:, :-1]
    at = np.flatnonzero(edges)  # per row: start, end, start, end...
    rows = at // edges.shape[1]
    cols = at - rows * edges.shape[1]
    starts, ends, run_rows = cols[0::2], cols[1::2], rows[0::2]
    same_row = run_rows[1:] == run_rows[:-1]
    gaps = (starts[1:] - ends[:-1])[same_row]
    if starts.size < 20 or gaps.size < 10:
        return None
    gaps = gaps[gaps <= 2 * np.median(gaps)]
    strokes = ends - starts
    strokes = strokes[strokes < 0.7 * height]  # not rules, underlines, dashes
    return float(strokes.mean() / gaps.mean()) if strokes.size else None


def bold_lines(
    gray: np.ndarray, boxes: Sequence[BBox], texts: Sequence[str], tall: Sequence[bool]
) -> list[bool]:
    """Which OCR lines are set in bold (see the module docstring). ``boxes`` are in
    ``gray``'s pixels; ``tall`` lines run up or down the page and are measured across."""
    extents = [
        ((b[3] - b[1], b[2] - b[0]) if up else (b[2] - b[0], b[3] - b[1]))
        for b, up in zip(boxes, tall, strict=True)
    ]  # (length, height) along the writing
    typical = float(np.median([h for _, h in extents])) if extents else 0.0
    ratios: list[float | None] = []
    for box, text, up, (length, height) in zip(boxes, texts, tall, extents, strict=True):
        if (
            height < MIN_HEIGHT_PX
            or not SIZES[0] * typical <= height <= SIZES[1] * typical
            or sum(ch.isalpha() for ch in text) < MIN_LETTERS
            or length < 0.25 * len(text) * height  # too short for its text: slanted writing
        ):
            ratios.append(None)
            continue
        x0, y0, x1, y1 = (round(v) for v in box)
        crop = gray[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
        ratios.append(stroke_ratio(crop.T if up else crop) if crop.size else None)
    measured = np.array([r for r in ratios if r is not None])
    if measured.size < MIN_LINES:
        return [False] * len(ratios)
    median, p80 = np.percentile(measured, [50, 80])
    floor = max(OVER_MEDIAN * median, OVER_P80 * p80)
    return [r is not None and r >= floor for r in ratios]
