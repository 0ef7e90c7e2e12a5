"""The local engine's page hook: what it reads from an open PDF page, in the render worker.

The text layer (lines with font size and weight, rotation, unreadable glyphs), the images on
the page, PyMuPDF's tables, and the verdict on whether the text layer is usable or the page
must be OCR'd (see :mod:`.local`'s docstring for the rules), plus the resolution to OCR it at.
The result is a picklable :class:`LocalPageData`, which reaches the engine as
``PageImage.hint``.
"""

from __future__ import annotations

import logging
import math
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any

from .._model import BBox
from .._mupdf_setup import uncorrected_quads
from .._verify.garbage import layer_quality
from .local_layout import TextLine, dominant_direction
from .local_tables import TableRegion, find_tables

log = logging.getLogger(__name__)

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

    ``ocr_pixels`` is set when the text layer is not usable (the page rendered in 8-bit
    grayscale, ``ocr_width`` x ``ocr_height`` pixels row by row, zlib-compressed at level 1:
    a tenth of the time of a PNG's encoding and decoding, and a few hundred KB for a
    Letter page at 300 dpi); then ``lines`` and ``tables`` are empty.
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
    ocr_pixels: bytes | None = None
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


def extract_page(page: Any, force_ocr: bool = False) -> LocalPageData:
    """The engine's page hook: read what the local engine needs from an open PyMuPDF page.

    Runs where the document is open (PyMuPDF is not thread-safe). Text lines, tables and
    image boxes come back in the displayed frame (``page.rect``, after ``/Rotate``); a page
    whose text layer is not usable (or every page, with ``force_ocr``) comes back with the
    page rendered for OCR instead. Text is read with :func:`.._mupdf_setup.uncorrected_quads`.
    """
    with uncorrected_quads():
        return _extract_page(page, force_ocr)


def _extract_page(page: Any, force_ocr: bool) -> LocalPageData:
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
    if usable and layer_quality(" ".join(line.text for line in lines).split()).garbage:
        usable, reason = False, "garbage text layer (implausible words)"
    if force_ocr and stats.chars:
        usable, reason = False, "force_ocr"
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
    pixels = zlib.compress(pix.samples, 1)
    return LocalPageData(
        width,
        height,
        source="ocr",
        reason=reason,
        ocr_pixels=pixels,
        ocr_width=pix.width,
        ocr_height=pix.height,
        ocr_dpi=zoom * 72.0,
    )
