"""Gap filling: text-layer words that no block covers become ``text`` blocks of their own.

Missed words are grouped by their layer line; neighbouring lines (less than a line apart,
overlapping horizontally) form one block. A filled block goes into the reading order before
the first block that starts below it in the same column, else at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._model import BBox, Block, model_box
from .words import LayerWord, joined_text


@dataclass(frozen=True, slots=True)
class _Group:
    words: tuple[LayerWord, ...]
    bbox: BBox


def _union(boxes: Sequence[BBox]) -> BBox:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _groups(words: Sequence[LayerWord]) -> list[_Group]:
    lines: dict[int, list[LayerWord]] = {}
    for w in words:
        lines.setdefault(w.line, []).append(w)
    groups: list[_Group] = []
    for line in lines.values():
        box = _union([w.bbox for w in line])
        if groups:
            last = groups[-1].bbox
            height = max(box[3] - box[1], 1.0)
            if 0 <= box[1] - last[3] < height and box[0] < last[2] and last[0] < box[2]:
                groups[-1] = _Group(groups[-1].words + tuple(line), _union([last, box]))
                continue
        groups.append(_Group(tuple(line), box))
    return groups


def fill_gaps(
    blocks: Sequence[Block], missed: Sequence[LayerWord], width: float, height: float
) -> tuple[list[Block], tuple[int, ...]]:
    """``blocks`` with the ``missed`` words added as ``text`` blocks, renumbered, and the
    indices of the added blocks."""
    order: list[tuple[Block, bool]] = [(b, False) for b in blocks]
    for group in _groups(missed):
        box = model_box(group.bbox, width, height)
        new = Block("text", (box,), joined_text(group.words), 0, source="text_layer")
        at = len(order)
        for i, (b, _) in enumerate(order):
            if not b.boxes:
                continue
            x0, y0, x1, _y1 = b.boxes[0]
            if y0 > box[1] and x0 < box[2] and box[0] < x1:
                at = i
                break
        order.insert(at, (new, True))
    out = [
        Block(b.label, b.boxes, b.text, i, source="text_layer" if filled else b.source)
        for i, (b, filled) in enumerate(order)
    ]
    return out, tuple(i for i, (_, filled) in enumerate(order) if filled)
