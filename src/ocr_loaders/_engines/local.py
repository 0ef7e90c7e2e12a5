"""The embedded local engine: DeepSeek-OCR's grounded output, made on a CPU without a model.

Digital pages are read from the PDF text layer (PyMuPDF): lines with font size and weight,
tables from PyMuPDF's table finder, image boxes; :mod:`.local_layout` orders them into
columns and labels paragraphs, headings and captions. Pages without a usable text layer, and
image files, are read by rapidocr's PP-OCR ONNX models, which ship inside its wheel
(:mod:`.local_ocr`). Either way the answer is DeepSeek-OCR's grounded markdown with boxes in
0..999 units of the page, so parsing, chunking and statistics downstream are shared.

PyMuPDF is not thread-safe, so all work on the open document happens in :func:`extract_page`,
the engine's *page hook*, which the renderer calls where the document is open; its picklable
:class:`LocalPageData` reaches :meth:`LocalEngine.recognize` as ``PageImage.hint``.

When is a text layer usable? Text is used when it has enough readable characters:

* no text at all -> OCR (unless the page has nothing drawn on it either);
* more than 10 % of characters unreadable (U+FFFD from unmapped glyphs, private-use,
  control or unassigned code points) -> OCR;
* a page covered by a scanned image with under 200 characters of text (a page number or a
  stamp over a scan, a sparse OCR layer over a chart) -> OCR;
* invisible text (render mode 3, alpha 0), as OCRmyPDF and scanners lay over a scan, IS used:
  it is the text of the page, already recognised, and reading it is exact and fast;
* unless it is garbage (too many implausible words, :mod:`ocr_loaders._verify.garbage`): a
  poor OCR layer baked into a scan -> OCR;
* ``force_ocr=True`` OCRs every page that has anything on it.

A usable page with a few unmapped glyphs (math symbols in a font without a Unicode map) is
written as PyMuPDF's ``get_text()`` writes it, with the glyph code as the character.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .._grounding import format_grounded
from .._model import Block, PageImage, RawPage, model_box
from .base import PageHook
from .local_borderless import borderless_tables
from .local_layout import LayoutBlock, layout_page
from .local_ocr import (
    DET_MODEL,
    MIN_SCORE,
    REC_MODEL,
    decode_image,
    ocr_lines,
    rapidocr_version,
    scale_lines,
)
from .local_onnx import DET_MAX_SIDE, gray_of
from .local_quant import int8_levels, int8_recipe
from .local_scan_tables import erase_rules, find_ruled_grids, grid_tables
from .local_tables import TableRegion
from .local_textlayer import OCR_DPI, OCR_MAX_SIDE_PX, LocalPageData, extract_page

log = logging.getLogger(__name__)

ENGINE_VERSION = "6"
"""Bump when the output for the same input changes (part of the cache identity; 5 was used
by a change taken back, so it is skipped)."""

# --- from layout blocks to grounded text ----------------------------------------------------


def blocks_to_grounded(blocks: list[LayoutBlock], width: float, height: float) -> str:
    """Grounded DeepSeek-OCR text for layout blocks on a ``width`` x ``height`` frame."""
    out = [
        Block(b.label, tuple(model_box(box, width, height) for box in b.boxes), b.text, i)
        for i, b in enumerate(blocks)
    ]
    return format_grounded(out)


def ocr_image_grounded(image: bytes) -> str:
    """OCR encoded image bytes (PNG, JPEG, TIFF, WebP...) into grounded text.

    Boxes are 0..999 units of that image. Used for image inputs and by the fake
    OpenAI-compatible server to answer requests with real text. Blocking and CPU-bound.
    """
    arr, width, height = decode_image(image)
    return ocr_array_grounded(arr, width, height)


def ocr_array_grounded(arr: np.ndarray, width: int, height: int) -> str:
    """OCR a decoded page (grayscale, or BGR) into grounded text, boxes in 0..999 units of a
    ``width`` x ``height`` frame (the image's size before any scaling on decoding)."""
    grids = find_ruled_grids(gray_of(arr))
    lines, direction = ocr_lines(erase_rules(arr, grids) if grids else arr)
    # Ruled tables on a page read sideways would come out transposed: read as text there.
    tables = grid_tables(grids, lines) if direction == 0 else []
    if direction == 0:  # then tables without rules, among the lines no ruled table holds
        tables += borderless_tables(lines, [t.bbox for t in tables])
    sx, sy = width / arr.shape[1], height / arr.shape[0]
    lines = scale_lines(lines, sx, sy)
    tables = [
        TableRegion((t.bbox[0] * sx, t.bbox[1] * sy, t.bbox[2] * sx, t.bbox[3] * sy), t.html)
        for t in tables
    ]
    blocks = layout_page(lines, tables, (), float(width), float(height), ocr=True)
    return blocks_to_grounded(blocks, float(width), float(height))


def recognize_page_data(data: LocalPageData) -> str:
    """Grounded text for one page's :class:`LocalPageData` (blocking, CPU-bound)."""
    if data.ocr_pixels is not None:
        w, h = data.ocr_width, data.ocr_height
        pixels = np.frombuffer(zlib.decompress(data.ocr_pixels), np.uint8).reshape(h, w)
        return ocr_array_grounded(pixels, w, h)
    if data.source == "blank":
        return ""
    blocks = layout_page(data.lines, data.tables, data.images, data.width, data.height)
    return blocks_to_grounded(blocks, data.width, data.height)


# --- the engine -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One page's reading on the worker: text or error, and the seconds it took there."""

    text: str
    error: str
    seconds: float


class LocalEngine:
    """The embedded CPU engine (see the module docstring); implements ``Engine``.

    Pages are handled one at a time on a private worker thread, off the event loop:
    onnxruntime already uses every core, so more OCR jobs at once would only compete.
    """

    name = "local"
    model = "local:pymupdf+rapidocr"
    prompt = "local"

    def __init__(self, *, force_ocr: bool = False) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self.force_ocr = force_ocr
        """OCR every page, even one with a good text layer."""

    @property
    def page_hook(self) -> PageHook | None:
        """:func:`extract_page`, called by the renderer where the document is open."""
        if self.force_ocr:
            return functools.partial(extract_page, force_ocr=True)
        return extract_page

    @property
    def cache_identity(self) -> str:
        """Engine version, model files, their int8 recipe and settings that change the
        output."""
        try:
            import pymupdf

            mupdf = str(pymupdf.VersionBind)
        except Exception:  # pragma: no cover
            mupdf = "unknown"
        return (
            f"local/v{ENGINE_VERSION}/pymupdf-{mupdf}/rapidocr-{rapidocr_version()}"
            f"/{DET_MODEL}+{REC_MODEL}"
            + (f"-{int8_recipe(levels)}" if (levels := int8_levels()) is not None else "")
            + f"/side{DET_MAX_SIDE}/score{MIN_SCORE}"
            f"/dpi{OCR_DPI:g}-{OCR_MAX_SIDE_PX}px" + ("/force-ocr" if self.force_ocr else "")
        )

    def _work(self, page: PageImage) -> str:
        hint = page.hint
        if isinstance(hint, LocalPageData):
            return recognize_page_data(hint)
        return ocr_image_grounded(page.image)

    def _timed_work(self, page: PageImage) -> _Outcome:
        """:meth:`_work` on the worker thread, timed there: pages wait their turn for the one
        worker, and that wait is queueing, not the engine's work on this page."""
        start = time.perf_counter()
        try:
            text, error = self._work(page), ""
        except Exception as exc:
            log.warning("local engine failed on page %s: %s", page.number, exc)
            text, error = "", f"{type(exc).__name__}: {exc}"
        return _Outcome(text, error, time.perf_counter() - start)

    async def recognize(self, page: PageImage) -> RawPage:
        """Read one page; a failure comes back as ``RawPage.error``, never as an exception.

        ``latency_s`` is the time spent reading this page on the worker, not the wait for it.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocr-local")
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(self._executor, self._timed_work, page)
        return RawPage(
            text=outcome.text,
            finish_reason=None if outcome.error else "stop",
            engine=self.name,
            model=self.model,
            prompt=self.prompt,
            latency_s=outcome.seconds,
            error=outcome.error,
        )

    def drain(self) -> None:
        """Nothing to rebalance: one worker reads the pages in order."""

    async def aclose(self) -> None:
        """Stop the worker thread (a page being read finishes in the background)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
