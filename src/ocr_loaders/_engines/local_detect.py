"""The text detector's output geometry: its probability map turned into line
quadrilaterals in the page's pixel frame (DBNet post-processing, as PP-OCR does it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DET_THRESH = 0.3
DET_BOX_THRESH = 0.5
DET_UNCLIP = 1.6


@dataclass(frozen=True, slots=True)
class Detection:
    """A text line found by the detector: its quadrilateral (4 x 2, clockwise from top-left)
    in the frame of the image given, and the detector's mean score inside it."""

    quad: np.ndarray
    score: float


def db_boxes(
    pred: np.ndarray, scale: tuple[float, float], clip: tuple[int, int]
) -> list[Detection]:
    """Differentiable-binarisation output (a text probability map) -> line quadrilaterals.

    Each connected region above ``DET_THRESH`` gives its minimum-area rectangle, kept when the
    map's mean inside it reaches ``DET_BOX_THRESH``, then grown by ``area * DET_UNCLIP /
    perimeter`` on every side (the shrink the model was trained with, undone). A map point
    ``(x, y)`` is the image's ``(x * scale[0], y * scale[1])``; corners are clipped to
    ``clip`` (width, height: the image without its padding).
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
        quad[:, 0] = np.clip(quad[:, 0] * scale[0], 0, clip[0] - 1)
        quad[:, 1] = np.clip(quad[:, 1] * scale[1], 0, clip[1] - 1)
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
