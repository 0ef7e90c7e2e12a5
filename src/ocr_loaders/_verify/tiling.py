"""Tiles: a page image cut into overlapping parts, each read on its own, stitched back.

A tile carries a smaller share of the page's text for a comparable number of vision tokens:
each is padded to a squarer shape (DeepSeek-OCR's tile grid follows the aspect ratio) and
scaled up to the page image's longer side, which is what a page that lost text to
compression needs. Layouts tried: two horizontal bands, three, a 2 x 2 grid where the page
has a blank gutter (or is poster-sized), four bands; the first whose tiles each expect at
most the target text per vision token (the page's text shared by ink) wins, within the
page's request limit. Each cut edge moves to the nearest blank pixel row or column so no text
line is cut in two. Blocks come back in page coordinates; a block read in two tiles (inside
the overlap) is kept once, and a paragraph split by the cut loses the words the upper tile
already read. Reading order: an XY-cut over the stitched blocks (columns before bands), so
the bands of a two-column page read down the left column, then the right.
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
MAX_ASPECT = 1.6
"""Longer side / shorter side a tile is sent at, at most (white space added)."""
POSTER_SIDE_PT = 1200.0
"""A PDF page larger than this (points, either side: beyond A3) is cut into a 2 x 2 grid."""
MAX_TILE_PIXELS = 4_000_000
DUPLICATE_AREA = 0.5
"""...and whose box lies at least this much over that block's."""
GUTTER = 8
"""The narrowest blank vertical strip (0..999 grid: about 5 pt on a Letter page) the reading
order takes for a column gutter."""
NOTE = 0.1
"""A lone block beside a gutter narrower than this share of the blocks' width is a margin
note."""
WIDE = 0.6
"""A band of blocks with no gutter spanning this share of the blocks' width cuts the page
(a title or a full-width figure above or between columns)."""
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

    @property
    def padded(self) -> tuple[int, int]:
        """The tile's size with white space added below (or to the right) so its aspect
        ratio stays within :data:`MAX_ASPECT`: DeepSeek-OCR's tile grid follows the aspect
        ratio, and a wide strip would get fewer vision tokens than a half page."""
        w, h = self.x1 - self.x0, self.y1 - self.y0
        return max(w, math.ceil(h / MAX_ASPECT)), max(h, math.ceil(w / MAX_ASPECT))


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


LAYOUTS: tuple[tuple[int, int], ...] = ((2, 1), (3, 1), (2, 2), (4, 1))
"""``(rows, columns)`` tried in this order; a 2 x 2 grid only where the page has a blank
gutter down the middle (columns) or is poster-sized."""
GUTTER_SPAN = 0.1
"""The gutter is looked for within this share of the width around the middle..."""
GUTTER_MIN = 0.015
"""...and is at least this share of the width blank (wider than a space between words)."""


@dataclass(frozen=True, slots=True)
class _Profile:
    rows: list[int]
    cols: list[int]
    width: int
    height: int


def _profile(image: PageImage) -> _Profile:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(image.image)) as img:
        gray = np.asarray(img.convert("L"))
    ink = gray < 200
    h, w = gray.shape
    return _Profile(ink.sum(axis=1).tolist(), ink.sum(axis=0).tolist(), w, h)


def _ink_share(p: _Profile, t: Tile) -> float:
    """The share of the page's ink inside a tile (rows and columns apportioned apart)."""
    rows = sum(p.rows[t.y0 : t.y1]) / max(1, sum(p.rows))
    cols = sum(p.cols[t.x0 : t.x1]) / max(1, sum(p.cols))
    return rows * cols


def _tiles(p: _Profile, rows: int, cols: int) -> list[Tile]:
    return [
        Tile(x0, y0, x1, y1, r, c)
        for r, (y0, y1) in enumerate(_cuts(p.rows, p.height, rows))
        for c, (x0, x1) in enumerate(_cuts(p.cols, p.width, cols))
    ]


def plan_tiles(image: PageImage, rows: int = 2, cols: int = 1) -> list[Tile]:
    """``rows`` x ``cols`` overlapping tiles of a page image, edges on blank lines."""
    return _tiles(_profile(image), rows, cols)


def _scaled(image: PageImage, cw: int, ch: int) -> tuple[int, int]:
    """The pixel size a ``cw`` x ``ch`` crop is sent at (see :func:`tile_image`)."""
    scale = max(image.image_width, image.image_height) / max(cw, ch, 1)
    scale = max(1.0, min(scale, (MAX_TILE_PIXELS / max(cw * ch, 1)) ** 0.5))
    return round(cw * scale), round(ch * scale)


def _blank_run(profile: Sequence[int]) -> int:
    """The longest run of blank lines (no ink) in ``profile``."""
    best = run = 0
    for v in profile:
        run = run + 1 if v == 0 else 0
        best = max(best, run)
    return best


def choose_tiles(
    image: PageImage, text_tokens: float, target: float, most: int, model: str
) -> list[Tile]:
    """The fewest tiles whose expected density (the page's text tokens shared by ink, over
    each tile's own vision tokens) is at most ``target``; else the densest layout's best
    within ``most`` tiles. A wide strip gets fewer vision tokens than a half page (DeepSeek's
    tile grid follows the aspect ratio), so more bands are not always better."""
    from .._tokens import vision_tokens

    p = _profile(image)
    middle = p.width // 2
    span = int(p.width * GUTTER_SPAN / 2)
    window = p.cols[middle - span : middle + span + 1]
    inked = sum(p.cols[: middle - span]) > 0 and sum(p.cols[middle + span + 1 :]) > 0
    gutter = inked and _blank_run(window) >= max(8, p.width * GUTTER_MIN)
    poster = image.source.kind == "pdf" and max(image.width, image.height) > POSTER_SIDE_PT
    best: tuple[float, list[Tile]] | None = None
    for rows, cols in LAYOUTS:
        if rows * cols > max(most, 2) or (cols == 2 and not (gutter or poster)):
            continue
        tiles = _tiles(p, rows, cols)
        density = max(
            text_tokens * _ink_share(p, t) / vision_tokens(*_scaled(image, *t.padded), model)
            for t in tiles
        )
        if density <= target:
            return tiles
        if best is None or density < best[0]:
            best = (density, tiles)
    return best[1] if best is not None else _tiles(p, 2, 1)


def tile_image(image: PageImage, tile: Tile) -> PageImage:
    """The tile as a page image of its own: cropped, scaled up to the page image's longer
    side (within the pixel budget), its frame the tile's part of the page."""
    from PIL import Image

    from .._rendering.raster import png_bytes

    pw, ph = tile.padded
    with Image.open(io.BytesIO(image.image)) as img:
        crop = Image.new("RGB", (pw, ph), (255, 255, 255))
        crop.paste(img.convert("RGB").crop((tile.x0, tile.y0, tile.x1, tile.y1)), (0, 0))
    size = _scaled(image, pw, ph)
    if size != crop.size:
        crop = crop.resize(size, Image.Resampling.LANCZOS)
    sx, sy = image.width / image.image_width, image.height / image.image_height
    return PageImage(
        source=image.source,
        number=image.number,
        label=image.label,
        width=pw * sx,
        height=ph * sy,
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
    tw, th = tile.padded[0] * sx, tile.padded[1] * sy  # the frame the tile was read in
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


def _overlap_share(a: Block, b: Block) -> float:
    """The area two blocks' extents share, as a share of the smaller one (0: apart or only
    touching)."""
    ax0, ay0, ax1, ay1 = _extent(a)
    bx0, by0, bx1, by1 = _extent(b)
    w = min(ax1, bx1) - max(ax0, bx0)
    h = min(ay1, by1) - max(ay0, by0)
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min(max(1, (ax1 - ax0) * (ay1 - ay0)), max(1, (bx1 - bx0) * (by1 - by0)))
    return w * h / smaller


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
                shared = _overlap_share(block, other)
                if shared <= 0:
                    continue
                before = tokens(other.text)
                k = _prefix_overlap(before, toks)
                if k:
                    text = _drop_leading(text, k)
                    toks = toks[k:]
                    if not toks:  # all of it read before (markup left over from the cut)
                        duplicate = True
                        break
                if (
                    toks
                    and shared >= DUPLICATE_AREA
                    and _read_in(toks, before) >= DUPLICATE_SHARE * len(toks)
                ):
                    duplicate = True
                    break
            if not duplicate and text.strip():
                kept.append(Block(block.label, block.boxes, text, 0))
    return [Block(b.label, b.boxes, b.text, i) for i, b in enumerate(reading_order(kept))]


def reading_order(blocks: Sequence[Block]) -> list[Block]:
    """``blocks`` (tile by tile) in reading order, by an XY-cut over their first boxes (where
    each block starts); a block without a box stays behind the block before it."""
    placed = [(i, b.boxes[0]) for i, b in enumerate(blocks) if b.boxes]
    rank = {i: k for k, i in enumerate(_xy_cut(placed))}
    keys, last = [], -1
    for i in range(len(blocks)):
        last = rank.get(i, last)
        keys.append((last, i))
    return [blocks[i] for _, i in sorted(keys)]


_Entry = tuple[int, tuple[int, int, int, int]]
"""A block's index and its first box (0..999 grid)."""


def _xy_cut(entries: list[_Entry]) -> list[int]:
    """Indices in reading order. Columns first: a set splits at blank vertical gutters into
    columns of at least two blocks each (a lone margin note is no column). Else the set's
    blank horizontal gaps make bands; a *wide* band (one with no gutter, across most of the
    set) cuts the set, and the bands between wide ones stay together so their columns are
    found next (a title over two columns). A set that splits no way keeps the order given.
    Narrow notes in the margin (an arXiv stamp, line numbers) are read after the rest."""
    if len(entries) < 2:
        return [i for i, _ in entries]
    notes = _margin_notes(entries)
    if notes:
        rest = [e for e in entries if e not in notes]
        return _xy_cut(rest) + [i for i, _ in notes]
    columns = _columns(entries)
    if len(columns) > 1:
        return [i for column in columns for i in _xy_cut(column)]
    bands = _split(entries, 1, 0)
    if len(bands) == 1:
        return [i for i, _ in sorted(entries)]
    left = min(b[0] for _, b in entries)
    width = max(b[2] for _, b in entries) - left
    segments: list[list[_Entry]] = []
    after_wide = True
    for band in bands:
        extent = max(b[2] for _, b in band) - min(b[0] for _, b in band)
        wide = extent >= WIDE * width and len(_split(band, 0, GUTTER)) == 1
        if wide or after_wide:
            segments.append(list(band))
        else:
            segments[-1].extend(band)
        after_wide = wide
    parts = [sorted(segment) for segment in segments]
    if len(parts) == 1:
        parts = bands
    return [i for part in parts for i in _xy_cut(part)]


def _margin_notes(entries: list[_Entry]) -> list[_Entry]:
    """A lone block left or right of a gutter, narrower than :data:`NOTE` of the set's width,
    when at least two blocks are beside it."""
    groups = _split(entries, 0, GUTTER)
    if len(groups) < 2 or len(entries) < 3:
        return []
    width = max(b[2] for _, b in entries) - min(b[0] for _, b in entries)
    return [
        g[0]
        for g in (groups[0], groups[-1])
        if len(g) == 1 and g[0][1][2] - g[0][1][0] < NOTE * width
    ]


def _columns(entries: list[_Entry]) -> list[list[_Entry]]:
    """``entries`` split at blank vertical gutters, a group of one merged into its neighbour."""
    groups = _split(entries, 0, GUTTER)
    merged: list[list[_Entry]] = []
    for group in groups:
        if merged and (len(group) < 2 or len(merged[-1]) < 2):
            merged[-1] = sorted(merged[-1] + group)
        else:
            merged.append(group)
    return merged


def _split(entries: list[_Entry], axis: int, gap: int) -> list[list[_Entry]]:
    """``entries`` grouped by the blank gaps wider than ``gap`` along ``axis`` (0: x), groups
    in coordinate order, each in the order given."""
    groups: list[list[_Entry]] = []
    end = -1
    for entry in sorted(entries, key=lambda e: e[1][axis]):
        start, stop = entry[1][axis], entry[1][axis + 2]
        if groups and start <= end + gap:
            groups[-1].append(entry)
            end = max(end, stop)
        else:
            groups.append([entry])
            end = stop
    return [sorted(g) for g in groups]
