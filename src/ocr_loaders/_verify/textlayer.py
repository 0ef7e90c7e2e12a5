"""Read a PDF page's text layer for the cross-check, where the page is already open.

The renderer calls :func:`read_text_layer` when its settings ask for the layer (``verify``),
with the text of the display list it drew the page from, and puts the result in
``PageImage.text_layer``. Words come in the displayed frame of ``regions`` (points, top-left
origin, ``/Rotate`` applied), so a block's box picks the words inside it exactly as
``regions`` are mapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .._mupdf_setup import uncorrected_quads
from .garbage import layer_quality
from .words import LayerWord, tokens

LayerState = Literal["usable", "none", "garbage", "scan"]

SCAN_COVERAGE = 0.5
"""A page mostly covered by one image..."""
SCAN_MIN_WORDS = 30
"""...with fewer words than this carries a stamp or a page number over a scan: no reference."""


@dataclass(frozen=True, slots=True)
class TextLayer:
    """A page's text layer: its words, and whether it can serve as ground truth.

    ``state``: ``usable``; ``none`` (no text: a scan, an image); ``garbage`` (a poor OCR layer,
    see :mod:`.garbage`); ``scan`` (a few words over a page-sized image).
    """

    words: tuple[LayerWord, ...]
    state: LayerState

    @property
    def usable(self) -> bool:
        return self.state == "usable"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as flat tuples: a page's layer crosses from the render worker to the
        pipeline, and hundreds of small objects pickle several times slower."""
        flat = tuple(v for w in self.words for v in w.bbox)
        texts = tuple(w.text for w in self.words)
        return _rebuild, (self.state, texts, flat, tuple(w.line for w in self.words))


def _rebuild(
    state: LayerState, texts: tuple[str, ...], flat: tuple[float, ...], lines: tuple[int, ...]
) -> TextLayer:
    words = tuple(
        LayerWord(t, (flat[4 * i], flat[4 * i + 1], flat[4 * i + 2], flat[4 * i + 3]), lines[i])
        for i, t in enumerate(texts)
    )
    return TextLayer(words, state)


NO_LAYER = TextLayer((), "none")


def _image_coverage(page: Any) -> float:
    """Share of the page covered by its largest image."""
    area = max(float(page.rect.width * page.rect.height), 1e-6)
    best = 0.0
    for info in page.get_image_info():
        x0, y0, x1, y1 = info["bbox"]
        best = max(best, max(0.0, x1 - x0) * max(0.0, y1 - y0))
    return min(1.0, best / area)


def read_text_layer(page: Any, displayed: Any = None) -> TextLayer:
    """The words of an open ``pymupdf.Page`` in the displayed frame, and their verdict.

    ``displayed``: a ``pymupdf.TextPage`` of the page's display list, whose words are in the
    displayed frame already (the renderer's); without it the page's text is read here and
    turned by the page's ``/Rotate``. Words are read with
    :func:`.._mupdf_setup.uncorrected_quads`.
    """
    import pymupdf

    with uncorrected_quads():
        if displayed is None:
            m = page.rotation_matrix
            raw = page.get_textpage(flags=pymupdf.TEXT_MEDIABOX_CLIP).extractWORDS()
        else:
            m = pymupdf.Identity
            raw = displayed.extractWORDS()
    a, b, c, d, e, f = m.a, m.b, m.c, m.d, m.e, m.f
    turned = (a, b, c, d, e, f) != (1, 0, 0, 1, 0, 0)
    width, height = float(page.rect.width), float(page.rect.height)
    words: list[LayerWord] = []
    lines: dict[tuple[int, int], int] = {}
    for x0, y0, x1, y1, text, block, line, _n in raw:
        if turned:  # /Rotate: map both corners
            xa, ya = a * x0 + c * y0 + e, b * x0 + d * y0 + f
            xb, yb = a * x1 + c * y1 + e, b * x1 + d * y1 + f
            x0, x1, y0, y1 = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
        box = (max(0.0, x0), max(0.0, y0), min(width, x1), min(height, y1))
        number = lines.setdefault((block, line), len(lines))
        words.append(LayerWord(str(text), box, number))
    if not any(tokens(w.text) for w in words):
        return NO_LAYER
    if layer_quality(w.text for w in words).garbage:
        return TextLayer(tuple(words), "garbage")
    if len(words) < SCAN_MIN_WORDS and _image_coverage(page) >= SCAN_COVERAGE:
        return TextLayer(tuple(words), "scan")
    return TextLayer(tuple(words), "usable")


def layer_to_json(layer: TextLayer) -> dict[str, Any]:
    """A compact JSON form of a text layer (for the page cache)."""
    return {
        "state": layer.state,
        "words": [[w.text, *(round(v, 2) for v in w.bbox), w.line] for w in layer.words],
    }


def layer_from_json(data: Any) -> TextLayer | None:
    """The inverse of :func:`layer_to_json`; ``None`` for anything else."""
    if not isinstance(data, dict) or data.get("state") not in ("usable", "none", "garbage", "scan"):
        return None
    words = tuple(
        LayerWord(str(t), (float(x0), float(y0), float(x1), float(y1)), int(line))
        for t, x0, y0, x1, y1, line in data.get("words", [])
    )
    return TextLayer(words, data["state"])
