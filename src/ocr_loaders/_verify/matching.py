"""Compare a page's OCR blocks with its text layer: coverage, unsupported words, missed text.

Coverage is **order-free**: the share of the text layer's tokens that the OCR text holds, as
a multiset (a token found twice in the layer must be read twice). Reading order is left out
on purpose: the model's order of columns, tables and side notes legitimately differs from
the order a PDF producer wrote its text in, and a lost or made-up passage shows in the counts
whatever the order. ``unsupported`` is the share of OCR tokens the text layer does not hold
(made-up or misread text). Words of the layer whose centre lies outside every block's box
(with a margin) are *missed*: the model did not see that part of the page at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .._model import BBox, Block
from .words import LayerToken, LayerWord, layer_counts, layer_tokens, tokens

INVENTED_MIN_TOKENS = 8
INVENTED_SUPPORT = 0.1
BOX_MARGIN = 0.01
"""Slack around a block's box when picking the layer words inside it, as a share of the
page's larger side: model boxes are drawn on a 0..999 grid and a little loose or tight."""


@dataclass(frozen=True, slots=True)
class BlockCheck:
    """One block against the layer words inside its boxes."""

    index: int
    layer_tokens: int
    coverage: float
    """Share of the layer tokens inside the block that its text holds (1.0 with none)."""


@dataclass(frozen=True, slots=True)
class PageCheck:
    """A page's OCR text against its text layer."""

    layer_tokens: int
    ocr_tokens: int
    matched: int
    blocks: tuple[BlockCheck, ...]
    missed_words: tuple[int, ...]
    """Indices of layer words outside every block's box."""
    invented: int = 0
    """Blocks of at least :data:`INVENTED_MIN_TOKENS` tokens nearly none of which (under
    :data:`INVENTED_SUPPORT`) the layer holds: text the page does not have at all. A page
    share can hide one (a made-up English sentence on a Korean page of a thousand
    characters); a block cannot."""

    @property
    def coverage(self) -> float:
        return self.matched / self.layer_tokens if self.layer_tokens else 1.0

    @property
    def unsupported(self) -> float:
        return 1.0 - self.matched / self.ocr_tokens if self.ocr_tokens else 0.0


def overlap(a: Counter[str], b: Counter[str]) -> int:
    """Tokens two multisets share."""
    if len(a) > len(b):
        a, b = b, a
    return sum(min(n, b[t]) for t, n in a.items() if t in b)


def _inside(point: tuple[float, float], box: BBox, margin: float) -> bool:
    x, y = point
    return box[0] - margin <= x <= box[2] + margin and box[1] - margin <= y <= box[3] + margin


def check_page(
    words: Sequence[LayerWord],
    blocks: Sequence[Block],
    width: float,
    height: float,
    *,
    layer: Sequence[LayerToken] | None = None,
    geometry: bool = True,
) -> PageCheck:
    """Compare ``blocks`` (the parsed OCR answer) with the layer ``words`` of a page whose
    frame is ``width`` x ``height`` (the frame of ``regions``). Without ``geometry`` only the
    page's counts are worked out (no per-block figures, no missed words): what ``flag``
    needs, at a fraction of the cost."""
    if layer is None and not geometry:  # counts only: no token objects
        counts = layer_counts(words)
    else:
        layer = layer_tokens(words) if layer is None else layer
        counts = Counter(t.token for t in layer)
    block_tokens = [tokens(b.text) for b in blocks]
    ocr_counts: Counter[str] = Counter()
    for toks in block_tokens:
        ocr_counts.update(toks)
    matched = overlap(counts, ocr_counts)
    invented = sum(
        1
        for toks in block_tokens
        if len(toks) >= INVENTED_MIN_TOKENS
        and sum(t in counts for t in toks) < INVENTED_SUPPORT * len(toks)
    )
    layer_total = counts.total()
    if not geometry or layer is None:
        return PageCheck(layer_total, sum(ocr_counts.values()), matched, (), (), invented)

    margin = BOX_MARGIN * max(width, height)
    boxes = [b.scaled_boxes(width, height) for b in blocks]
    centers = [w.center for w in words]
    owner: list[int] = [-1] * len(words)
    for i, center in enumerate(centers):
        for j, block_boxes in enumerate(boxes):
            if any(_inside(center, box, margin) for box in block_boxes):
                owner[i] = j
                break
    per_block: list[Counter[str]] = [Counter() for _ in blocks]
    for tok in layer:
        j = owner[tok.word]
        if j >= 0:
            per_block[j][tok.token] += 1
    checks = []
    for j, block in enumerate(blocks):
        inside = per_block[j]
        total = sum(inside.values())
        found = overlap(inside, Counter(block_tokens[j])) if total else 0
        checks.append(BlockCheck(block.index, total, found / total if total else 1.0))
    missed = tuple(i for i, o in enumerate(owner) if o < 0 and tokens(words[i].text))
    ocr_total = sum(ocr_counts.values())
    return PageCheck(layer_total, ocr_total, matched, tuple(checks), missed, invented)
