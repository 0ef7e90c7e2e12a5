"""The text detector's geometry: which part of the scaled page it reads, and how its
probability map becomes line quadrilaterals in the page's pixel frame.

The detector reads only the window of the scaled page that holds ink, with a white border
(:func:`ink_window`): its time and memory grow with the pixels it sees, and a scanned
page's margins are a fifth to a third of them. The text keeps its scale, so small print
reads as on the whole page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DET_THRESH = 0.3
DET_BOX_THRESH = 0.5
DET_UNCLIP = 1.6
INK_LEVEL = 230
"""A scaled pixel darker than this (in its darkest channel) is ink for :func:`ink_window`."""
WINDOW_MARGIN = 32
"""White border kept around the ink, in scaled pixels: the map near a line does not change."""
WINDOW_STEP = 32
"""The detector's input sides are multiples of this."""


@dataclass(frozen=True, slots=True)
class Detection:
    """A text line found by the detector: its quadrilateral (4 x 2, clockwise from top-left)
    in the frame of the image given, and the detector's mean score inside it."""

    quad: np.ndarray
    score: float


@dataclass(frozen=True, slots=True)
class Window:
    """Rows ``top:bottom`` and columns ``left:right`` of the scaled page."""

    top: int
    left: int
    bottom: int
    right: int


def ink_window(gray: np.ndarray, margin: int = WINDOW_MARGIN) -> Window:
    """The part of a scaled grayscale page the detector reads: the box around every pixel
    darker than :data:`INK_LEVEL`, grown by ``margin`` on each side and out to multiples of
    :data:`WINDOW_STEP` (the whole page when nothing is dark)."""
    h, w = gray.shape
    dark = gray < INK_LEVEL
    rows = np.flatnonzero(dark.any(axis=1))
    cols = np.flatnonzero(dark.any(axis=0))
    if not len(rows):
        return Window(0, 0, h, w)
    top, bottom = _span(int(rows[0]), int(rows[-1]) + 1, margin, h)
    left, right = _span(int(cols[0]), int(cols[-1]) + 1, margin, w)
    return Window(top, left, bottom, right)


def _span(start: int, end: int, margin: int, size: int) -> tuple[int, int]:
    """``start:end`` grown by ``margin``, with both ends on multiples of :data:`WINDOW_STEP`
    inside ``0:size`` (``size`` itself is a multiple): the detector's grid stays where it is
    on the whole page, so the map inside the window is the same."""
    step = WINDOW_STEP
    start = max(0, start - margin) // step * step
    end = min(size, -(-(end + margin) // step) * step)
    return start, end


def db_boxes(
    pred: np.ndarray,
    scale: tuple[float, float],
    offset: tuple[int, int],
    clip: tuple[int, int],
) -> list[Detection]:
    """Differentiable-binarisation output (a text probability map) -> line quadrilaterals.

    Each connected region above ``DET_THRESH`` gives its minimum-area rectangle, kept when the
    map's mean inside it reaches ``DET_BOX_THRESH``, then grown by ``area * DET_UNCLIP /
    perimeter`` on every side (the shrink the model was trained with, undone). A map point
    ``(x, y)`` is the image's ``((x + offset[0]) * scale[0], (y + offset[1]) * scale[1])``;
    corners are clipped to ``clip`` (width, height: the image without its padding).
    """
    import cv2

    mask = cv2.dilate((pred > DET_THRESH).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out: list[Detection] = []
    for contour in contours[:1000]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < 3:
            continue
        x0, y0, _w, _h = cv2.boundingRect(contour)
        region = pred[y0 : y0 + _h, x0 : x0 + _w]
        box_mask = np.zeros(region.shape, np.uint8)
        pts = cv2.boxPoints(((cx, cy), (rw, rh), angle)) - np.array([x0, y0], np.float32)
        cv2.fillPoly(box_mask, [np.round(pts).astype(np.int32)], 1)
        score = float(cv2.mean(region, box_mask)[0])
        if score < DET_BOX_THRESH:
            continue
        grow = rw * rh * DET_UNCLIP / (2.0 * (rw + rh))
        rw, rh = rw + 2 * grow, rh + 2 * grow
        if min(rw, rh) < 5:
            continue
        quad = _clockwise(cv2.boxPoints(((cx, cy), (rw, rh), angle)))
        quad[:, 0] = np.clip((quad[:, 0] + offset[0]) * scale[0], 0, clip[0] - 1)
        quad[:, 1] = np.clip((quad[:, 1] + offset[1]) * scale[1], 0, clip[1] - 1)
        if np.linalg.norm(quad[0] - quad[1]) <= 3 or np.linalg.norm(quad[0] - quad[3]) <= 3:
            continue
        out.append(Detection(quad, score))
    return out


def _clockwise(pts: np.ndarray) -> np.ndarray:
    """Four corners ordered top-left, top-right, bottom-right, bottom-left."""
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)
