"""Tiles: a page image cut into overlapping parts, each read on its own, stitched back.

A tile carries a smaller share of the page's text for a comparable number of vision tokens
(each tile is scaled up to the page image's longer side), which is what a page that lost
text to compression needs. Tiles are horizontal bands (two, or more for a denser page: as
many as bring each band to the target density, within the page's request limit; poster-sized
pages are also cut down the middle), each cut edge moved to the nearest blank pixel row or
column so no text line is cut in two. Blocks come back in page coordinates; a block read in
two tiles (inside the overlap) is kept once, and a paragraph split by the cut loses the lines
the upper tile already read. Reading order: tile by tile, top to bottom (row-major for a grid).
"""

from __future__ import annotations

import difflib
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .._model import Block, PageImage, model_box, scale_box
from .words import tokens

OVERLAP = 0.08
"""Overlap between neighbouring tiles, as a share of the page's side."""
POSTER_SIDE_PT = 1200.0
"""A PDF page larger than this (points, either side: beyond A3) is cut into a 2 x 2 grid."""
MAX_TILE_PIXELS = 4_000_000
DUPLICATE_SHARE = 0.8
"""A block whose tokens are this much inside (in order) a block of an earlier tile, where the
two meet, is a duplicate from the overlap."""


@dataclass(frozen=True, slots=True)
class Tile:
    """A part of the page image: pixel rectangle ``(x0, y0, x1, y1)`` of the sent image."""

    x0: int
    y0: int
    x1: int
    y1: int
    row: int
    col: int


def _blank_near(profile: Sequence[float], target: int, lo: int, hi: int) -> int:
    """The blank line (a row or column with no ink) nearest ``target`` within ``[lo, hi)``;
    ``target`` itself when there is none."""
    best, dist = target, None
    for i in range(max(0, lo), min(len(profile), hi)):
        if profile[i] == 0 and (dist is None or abs(i - target) < dist):
            best, dist = i, abs(i - target)
    return best


def _cuts(profile: Sequence[float], size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` overlapping spans of ``[0, size)`` whose edges sit on blank lines."""
    if parts == 1:
        return [(0, size)]
    half = max(1, int(size * OVERLAP / 2))
    spans: list[tuple[int, int]] = []
    start = 0
    for k in range(1, parts):
        middle = size * k // parts
        end = _blank_near(profile, middle + half, middle, middle + 2 * half)
        nxt = _blank_near(profile, middle - half, middle - 2 * half, middle)
        spans.append((start, max(end, start + 1)))
        start = min(nxt, end - 1)
    spans.append((start, size))
    return spans


def bands_for(density: float, target: float, most: int) -> int:
    """Horizontal bands that bring ``density`` (text tokens per vision token of the whole
    page) down to ``target`` per tile, at least 2, at most ``most``."""
    return max(2, min(most, math.ceil(density / target))) if target > 0 else 2


def plan_tiles(image: PageImage, bands: int = 2) -> list[Tile]:
    """The tiles of a page image: ``bands`` horizontal bands (see the module docstring);
    a poster-sized page is also cut down the middle, into ``2 x max(2, bands // 2)``."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(image.image)) as img:
        gray = np.asarray(img.convert("L"))
    ink = gray < 200
    rows_profile = ink.sum(axis=1).tolist()
    cols_profile = ink.sum(axis=0).tolist()
    poster = image.source.kind == "pdf" and max(image.width, image.height) > POSTER_SIDE_PT
    cols = 2 if poster else 1
    rows = max(2, bands // 2) if poster else max(2, bands)
    h, w = gray.shape
    tiles = []
    for r, (y0, y1) in enumerate(_cuts(rows_profile, h, rows)):
        for c, (x0, x1) in enumerate(_cuts(cols_profile, w, cols)):
            tiles.append(Tile(x0, y0, x1, y1, r, c))
    return tiles


def tile_image(image: PageImage, tile: Tile) -> PageImage:
    """The tile as a page image of its own: cropped, scaled up to the page image's longer
    side (within the pixel budget), its frame the tile's part of the page."""
    from PIL import Image

    from .._rendering.raster import png_bytes

    with Image.open(io.BytesIO(image.image)) as img:
        crop = img.convert("RGB").crop((tile.x0, tile.y0, tile.x1, tile.y1))
    cw, ch = crop.size
    scale = max(image.image_width, image.image_height) / max(cw, ch)
    scale = max(1.0, min(scale, (MAX_TILE_PIXELS / (cw * ch)) ** 0.5))
    if scale > 1.0:
        crop = crop.resize((round(cw * scale), round(ch * scale)), Image.Resampling.LANCZOS)
    sx, sy = image.width / image.image_width, image.height / image.image_height
    return PageImage(
        source=image.source,
        number=image.number,
        label=image.label,
        width=(tile.x1 - tile.x0) * sx,
        height=(tile.y1 - tile.y0) * sy,
        image=png_bytes(crop.tobytes(), crop.width, crop.height, 3),
        mime="image/png",
        image_width=crop.width,
        image_height=crop.height,
        downscaled=image.downscaled,
    )


def to_page(blocks: Sequence[Block], image: PageImage, tile: Tile) -> list[Block]:
    """A tile's blocks with their boxes mapped into the page's 0..999 frame."""
    sx, sy = image.width / image.image_width, image.height / image.image_height
    ox, oy = tile.x0 * sx, tile.y0 * sy
    tw, th = (tile.x1 - tile.x0) * sx, (tile.y1 - tile.y0) * sy
    out = []
    for b in blocks:
        boxes = []
        for box in b.boxes:
            x0, y0, x1, y1 = scale_box(box, tw, th)
            boxes.append(model_box((x0 + ox, y0 + oy, x1 + ox, y1 + oy), image.width, image.height))
        out.append(Block(b.label, tuple(boxes), b.text, b.index))
    return out


def _drop_leading(text: str, count: int) -> str:
    """``text`` without the words that make up its first ``count`` tokens."""
    seen = 0
    for word in re.finditer(r"\S+", text):
        if seen >= count:
            return text[word.start() :].strip()
        seen += len(tokens(word.group()))
    return ""


def _prefix_overlap(upper: list[str], lower: list[str]) -> int:
    """The longest ``k`` with the last ``k`` tokens of ``upper`` equal to the first ``k`` of
    ``lower`` (at least 3 tokens, so a chance repeat of a word or two is kept)."""
    for k in range(min(len(upper), len(lower)), 2, -1):
        if upper[-k:] == lower[:k]:
            return k
    return 0


def _read_in(toks: list[str], before: list[str]) -> int:
    """Tokens of ``toks`` found in ``before`` in the same order (longest common runs)."""
    matcher = difflib.SequenceMatcher(None, toks, before, autojunk=False)
    return sum(m.size for m in matcher.get_matching_blocks())


def _extent(block: Block) -> tuple[int, int, int, int]:
    xs0, ys0, xs1, ys1 = zip(*block.boxes, strict=True) if block.boxes else ((0,), (0,), (0,), (0,))
    return (min(xs0), min(ys0), max(xs1), max(ys1))


def _meets(a: Block, b: Block) -> bool:
    """The two blocks' boxes touch or overlap (a block of one tile and one of another)."""
    ax0, ay0, ax1, ay1 = _extent(a)
    bx0, by0, bx1, by1 = _extent(b)
    return ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1


def stitch(parts: Sequence[Sequence[Block]]) -> list[Block]:
    """One page's blocks from its tiles' blocks (already in page coordinates), in tile order:
    a block that an earlier tile already read (it lies in the overlap) is dropped, and a
    paragraph continued across the cut loses the words the earlier tile read; indices are
    renumbered."""
    kept: list[Block] = []
    for blocks in parts:
        earlier = list(kept)
        for block in blocks:
            toks = tokens(block.text)
            text = block.text
            duplicate = False
            for other in earlier:
                if not _meets(block, other):
                    continue
                before = tokens(other.text)
                k = _prefix_overlap(before, toks)
                if k:
                    text = _drop_leading(text, k)
                    toks = toks[k:]
                if toks and _read_in(toks, before) >= DUPLICATE_SHARE * len(toks):
                    duplicate = True
                    break
            if not duplicate and text.strip():
                kept.append(Block(block.label, block.boxes, text, 0))
    return [Block(b.label, b.boxes, b.text, i) for i, b in enumerate(kept)]
