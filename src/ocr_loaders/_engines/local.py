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
  it is the text of the page, already recognised, and reading it is exact and fast.

A usable page with a few unmapped glyphs (math symbols in a font without a Unicode map) is
written as PyMuPDF's ``get_text()`` writes it, with the glyph code as the character.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._grounding import format_grounded
from .._model import BBox, Block, PageImage, RawPage, model_box
from .base import PageHook
from .local_layout import LayoutBlock, TextLine, dominant_direction, layout_page
from .local_ocr import (
    DET_MODEL,
    MIN_SCORE,
    REC_MODEL,
    decode_image,
    ocr_lines,
    rapidocr_version,
    scale_lines,
)
from .local_onnx import DET_MAX_SIDE
from .local_scan_tables import erase_rules, find_ruled_grids, grid_tables
from .local_tables import TableRegion, find_tables

log = logging.getLogger(__name__)

ENGINE_VERSION = "3"
"""Bump when the output for the same input changes (part of the cache identity)."""

OCR_DPI = 300.0
"""Render resolution for OCR when the page has no dominant image to take it from."""
OCR_MIN_DPI, OCR_MAX_DPI = 150.0, 600.0
OCR_MAX_SIDE_PX = 4000
OCR_MAX_PIXELS = 12_000_000
"""Pixel budget of the OCR render, so a poster-sized page cannot exhaust memory."""

BAD_CHAR_SHARE = 0.10
SCAN_COVERAGE = 0.5
SCAN_MIN_CHARS = 200
MIN_IMAGE_SIDE = 8.0
"""Images smaller than this (points) are decoration (bullets, rules, icons), not figures."""
BACKGROUND_COVERAGE = 0.8
"""On a page read from its text layer, an image covering this much is a background."""


# --- what the page hook hands to the engine -------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalPageData:
    """Everything the engine needs from one PDF page, picklable, in the displayed frame.

    ``ocr_image`` is set (PNG, ``ocr_width`` x ``ocr_height`` pixels covering the whole page)
    when the text layer is not usable; then ``lines`` and ``tables`` are empty.
    """

    width: float
    height: float
    lines: tuple[TextLine, ...] = ()
    tables: tuple[TableRegion, ...] = ()
    images: tuple[BBox, ...] = ()
    source: str = "text"
    """``text`` (read from the text layer), ``ocr`` (render below) or ``blank``."""
    reason: str = ""
    """Why the text layer was or was not used, for logs and debugging."""
    ocr_image: bytes | None = None
    ocr_width: int = 0
    ocr_height: int = 0
    ocr_dpi: float = 0.0
    invisible_text: bool = False
    """The text used was invisible (an OCR layer over a scan)."""


# --- the page hook --------------------------------------------------------------------------


def _is_bad_char(ch: str) -> bool:
    if ch == "\ufffd":
        return True
    cat = unicodedata.category(ch)
    return cat in ("Co", "Cs", "Cn") or (cat == "Cc" and ch not in "\t\n\r")


def _snap_angle(dx: float, dy: float) -> int:
    angle = math.degrees(math.atan2(dy, dx)) % 360
    nearest = round(angle / 90.0) * 90 % 360
    diff = min(abs(angle - nearest), 360 - abs(angle - nearest))
    return nearest if diff <= 5 else -1


def _font_bold(span: dict[str, Any]) -> bool:
    font = str(span.get("font", "")).lower()
    return bool(int(span.get("flags", 0)) & 16) or any(
        k in font for k in ("bold", "black", "heavy", "semibold", "demibold")
    )


@dataclass(slots=True)
class _TextStats:
    chars: int = 0
    bad: int = 0
    invisible: int = 0


def _text_lines(page: Any, glyph_codes: bool = False) -> tuple[list[TextLine], _TextStats]:
    """Lines of the text layer in the displayed frame, and character statistics.

    Unmapped glyphs come out as U+FFFD (so they can be counted), or with ``glyph_codes`` as
    their glyph code, as PyMuPDF's own ``get_text()`` writes them. Ligatures are expanded.
    """
    import pymupdf

    flags = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
    if glyph_codes:
        flags |= pymupdf.TEXT_CID_FOR_UNKNOWN_UNICODE
    data = page.get_text("dict", flags=flags)
    rot = page.rotation_matrix
    width, height = page.rect.width, page.rect.height
    stats = _TextStats()
    lines: list[TextLine] = []
    for block in data.get("blocks", []):
        for line in block.get("lines", []):
            all_spans = line.get("spans", [])
            text = "".join(str(s.get("text", "")) for s in all_spans)
            spans = [s for s in all_spans if str(s.get("text", "")).strip()]
            if not spans:
                continue
            weights = [len(str(s["text"]).strip()) for s in spans]
            total = sum(weights) or 1
            for s, w in zip(spans, weights, strict=True):
                stats.chars += w
                stats.bad += sum(1 for ch in str(s["text"]) if _is_bad_char(ch))
                if int(s.get("alpha", 255)) == 0:
                    stats.invisible += w
            size = max(zip(weights, [float(s["size"]) for s in spans], strict=True))[1]
            bold_chars = sum(w for s, w in zip(spans, weights, strict=True) if _font_bold(s))
            bold = bold_chars >= 0.8 * total
            dx, dy = line.get("dir", (1.0, 0.0))
            ddx = dx * rot.a + dy * rot.c
            ddy = dx * rot.b + dy * rot.d
            r = pymupdf.Rect(line["bbox"]) * rot
            x0, y0 = max(0.0, r.x0), max(0.0, r.y0)
            x1, y1 = min(width, r.x1), min(height, r.y1)
            if x1 <= x0 or y1 <= y0:
                continue
            lines.append(
                TextLine(
                    (x0, y0, x1, y1), text, size=size, bold=bold, direction=_snap_angle(ddx, ddy)
                )
            )
    return lines, stats


@dataclass(frozen=True, slots=True)
class _PageImageInfo:
    bbox: BBox
    px_width: int
    px_height: int

    @property
    def area(self) -> float:
        return max(0.0, self.bbox[2] - self.bbox[0]) * max(0.0, self.bbox[3] - self.bbox[1])


def _page_images(page: Any) -> list[_PageImageInfo]:
    """Images drawn on the page, clipped to it, in the displayed frame."""
    import pymupdf

    rot = page.rotation_matrix
    width, height = page.rect.width, page.rect.height
    out: list[_PageImageInfo] = []
    seen: set[tuple[int, int, int, int]] = set()
    for info in page.get_image_info():
        r = pymupdf.Rect(info["bbox"]) * rot
        box = (max(0.0, r.x0), max(0.0, r.y0), min(width, r.x1), min(height, r.y1))
        if box[2] - box[0] < MIN_IMAGE_SIDE or box[3] - box[1] < MIN_IMAGE_SIDE:
            continue
        key = (round(box[0]), round(box[1]), round(box[2]), round(box[3]))
        if key in seen:
            continue
        seen.add(key)
        out.append(_PageImageInfo(box, int(info.get("width", 0)), int(info.get("height", 0))))
    return out


def _has_drawings(page: Any) -> bool:
    try:
        return bool(page.get_cdrawings())
    except Exception:
        return True


def text_layer_verdict(chars: int, bad: int, scan_coverage: float) -> tuple[bool, str]:
    """Whether a text layer is usable, and why (see the module docstring)."""
    if chars == 0:
        return False, "no text layer"
    if bad > BAD_CHAR_SHARE * chars:
        return False, f"unreadable text layer ({bad} of {chars} characters)"
    if scan_coverage >= SCAN_COVERAGE and chars < SCAN_MIN_CHARS:
        return False, f"scanned page with a tiny text layer ({chars} characters)"
    return True, "text layer"


def ocr_render_zoom(width: float, height: float, images: list[_PageImageInfo]) -> float:
    """Zoom (pixels per point) for the OCR render: the dominant image's own resolution, else
    300 dpi; kept within 150..600 dpi and the pixel budget."""
    page_area = max(width * height, 1e-6)
    dominant = max(images, key=lambda im: im.area, default=None)
    dpi = OCR_DPI
    if (
        dominant is not None
        and dominant.area >= SCAN_COVERAGE * page_area
        and dominant.px_width > 0
        and dominant.px_height > 0
    ):
        dpi = 72.0 * math.sqrt(dominant.px_width * dominant.px_height / dominant.area)
    dpi = min(max(dpi, OCR_MIN_DPI), OCR_MAX_DPI)
    zoom = dpi / 72.0
    w_px, h_px = width * zoom, height * zoom
    scale = min(
        1.0,
        OCR_MAX_SIDE_PX / max(w_px, h_px, 1.0),
        math.sqrt(OCR_MAX_PIXELS / max(w_px * h_px, 1.0)),
    )
    return zoom * scale


def extract_page(page: Any) -> LocalPageData:
    """The engine's page hook: read what the local engine needs from an open PyMuPDF page.

    Runs where the document is open (PyMuPDF is not thread-safe). Text lines, tables and
    image boxes come back in the displayed frame (``page.rect``, after ``/Rotate``); a page
    whose text layer is not usable comes back with a PNG rendered for OCR instead.
    """
    import pymupdf

    width, height = float(page.rect.width), float(page.rect.height)
    try:
        lines, stats = _text_lines(page)
    except Exception as exc:  # a broken content stream: let OCR read the rendered page
        log.warning("local engine: cannot read the text layer (%s); using OCR", exc)
        lines, stats = [], _TextStats()
    try:
        images = _page_images(page)
    except Exception as exc:
        log.warning("local engine: cannot list page images (%s)", exc)
        images = []
    page_area = max(width * height, 1e-6)
    coverage = max((im.area for im in images), default=0.0) / page_area
    usable, reason = text_layer_verdict(stats.chars, stats.bad, coverage)
    if usable and stats.bad:
        # A few unmapped glyphs (math symbols in a font without a Unicode map): write them as
        # PyMuPDF's get_text() does rather than as U+FFFD.
        try:
            lines = _text_lines(page, glyph_codes=True)[0]
        except Exception:
            log.debug("local engine: glyph-code extraction failed", exc_info=True)
    if usable:
        try:
            tables = find_tables(page, dominant_direction(lines))
        except Exception as exc:
            log.warning("local engine: table finder failed (%s); tables read as text", exc)
            tables = []
        figure_boxes = tuple(im.bbox for im in images if im.area < BACKGROUND_COVERAGE * page_area)
        return LocalPageData(
            width,
            height,
            tuple(lines),
            tuple(tables),
            figure_boxes,
            source="text",
            reason=reason,
            invisible_text=stats.invisible > 0.5 * stats.chars,
        )
    if not images and stats.chars == 0 and not _has_drawings(page):
        return LocalPageData(width, height, source="blank", reason="nothing on the page")
    zoom = ocr_render_zoom(width, height, images)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csGRAY, alpha=False)
    png = pix.tobytes("png")
    return LocalPageData(
        width,
        height,
        source="ocr",
        reason=reason,
        ocr_image=png,
        ocr_width=pix.width,
        ocr_height=pix.height,
        ocr_dpi=zoom * 72.0,
    )


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
    grids = find_ruled_grids(arr.min(axis=2))
    lines, direction = ocr_lines(erase_rules(arr, grids) if grids else arr)
    # Ruled tables on a page read sideways would come out transposed: read as text there.
    tables = grid_tables(grids, lines) if direction == 0 else []
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
    if data.ocr_image is not None:
        return ocr_image_grounded(data.ocr_image)
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

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    @property
    def page_hook(self) -> PageHook | None:
        """:func:`extract_page`, called by the renderer where the document is open."""
        return extract_page

    @property
    def cache_identity(self) -> str:
        """Engine version, model files and settings that change the output."""
        try:
            import pymupdf

            mupdf = str(pymupdf.VersionBind)
        except Exception:  # pragma: no cover
            mupdf = "unknown"
        return (
            f"local/v{ENGINE_VERSION}/pymupdf-{mupdf}/rapidocr-{rapidocr_version()}"
            f"/{DET_MODEL}+{REC_MODEL}/side{DET_MAX_SIDE}/score{MIN_SCORE}"
            f"/dpi{OCR_DPI:g}-{OCR_MAX_SIDE_PX}px"
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
