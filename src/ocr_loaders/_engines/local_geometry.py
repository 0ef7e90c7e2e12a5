"""Geometry shared by the local engine's layout: boxes turned and joined; the items and
rows that reading order moves (page units, top-left origin).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .._model import BBox

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


def center_inside(bbox: BBox, outer: BBox, pad: float = 0.0) -> bool:
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return outer[0] - pad <= cx <= outer[2] + pad and outer[1] - pad <= cy <= outer[3] + pad


def y_overlap(a: Item | Row, b: Item | Row) -> float:
    return min(a.y1, b.y1) - max(a.y0, b.y0)


# --- the items being ordered ----------------------------------------------------------------


@dataclass(slots=True)
class Item:
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
class Row:
    items: list[Item]
    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def of(cls, items: list[Item]) -> Row:
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
        """At least 80 % of the row's letters (of its characters, when it has no letters)
        are bold: a section number beside a bold heading does not count (OCR cannot weigh
        a piece that short)."""
        letters = [(sum(ch.isalpha() for ch in i.text), i.bold) for i in self.items]
        if not any(n for n, _ in letters):
            letters = [(len(i.text.strip()), i.bold) for i in self.items]
        total = sum(n for n, _ in letters)
        return total > 0 and sum(n for n, b in letters if b) >= 0.8 * total
