"""Rasterization and encoding: one page in, the exact image sent to the model out.

PDF pages render with PyMuPDF at ``dpi`` (144 by default, like DeepSeek's own PDF script) in
the orientation a viewer shows (``/Rotate`` applied), RGB, no alpha. Image files keep their
native resolution. Either way the render is capped at ``max_pixels``: a bigger page is scaled
down to fit and :attr:`~ocr_loaders._model.PageImage.downscaled` says so. The image always
covers the whole page, so model boxes map back with ``v / 999 * size`` at any resolution.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from .._engines.base import PageHook
from .._errors import ConfigError, InputError, PageRenderError
from .._model import PageImage, SourceInfo
from .._sources import (
    DocumentOutline,
    DocumentSource,
    OpenedInput,
    close_handle,
    lifted_pixel_limit,
    open_input,
)
from .._verify.textlayer import NO_LAYER, TextLayer, read_text_layer

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageFormat = Literal["png", "jpeg"]


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """How pages become images. Part of the cache key: change one, and pages re-run."""

    dpi: int = 144
    image_format: ImageFormat = "png"
    jpeg_quality: int = 90
    max_pixels: int = 4_000_000
    """Pixel budget per page (width x height). DeepSeek-OCR resizes to at most six 640 px
    tiles plus a 1024 px global view, so more pixels only cost encoding and upload time."""
    text_layer: bool = False
    """Also read a PDF page's text layer (``PageImage.text_layer``, for ``verify``), from the
    same interpretation of the page as its pixels. Not in :meth:`key`: the image is the same."""

    def __post_init__(self) -> None:
        if not 18 <= self.dpi <= 1200:
            raise ConfigError(f"dpi must be between 18 and 1200, got {self.dpi}")
        if self.image_format not in ("png", "jpeg"):
            raise ConfigError(f"image_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if self.max_pixels < 64 * 64:
            raise ConfigError(f"max_pixels too small: {self.max_pixels}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")

    @property
    def mime(self) -> str:
        return "image/png" if self.image_format == "png" else "image/jpeg"

    def key(self) -> str:
        """A short stable description for cache keys."""
        q = f"q{self.jpeg_quality}" if self.image_format == "jpeg" else ""
        return f"{self.dpi}dpi-{self.image_format}{q}-{self.max_pixels}px"


def fit_scale(width: float, height: float, scale: float, max_pixels: int) -> tuple[float, bool]:
    """The scale to render at: ``scale``, or less so ``width*height*scale^2 <= max_pixels``."""
    pixels = width * scale * height * scale
    if pixels <= max_pixels:
        return scale, False
    return scale * math.sqrt(max_pixels / pixels) * 0.999, True


def _deflate() -> Callable[[Any, int], bytes]:
    """The fastest zlib-format compressor installed: ISA-L's (``isal``), else the stdlib's.

    Both write standard zlib streams that any PNG decoder reads; ISA-L's level 1 is about
    seven times faster than zlib's on rendered pages (docs/benchmarks.md), and encoding is
    most of a page's client CPU.
    """
    try:
        from isal import isal_zlib
    except ImportError:  # no wheel for this platform: the stdlib is correct, only slower
        return zlib.compress
    return cast(Callable[[Any, int], bytes], isal_zlib.compress)


_compress = _deflate()


def png_bytes(
    samples: bytes | memoryview, width: int, height: int, channels: int = 3, level: int = 1
) -> bytes:
    """A PNG of 8-bit gray (1 channel) or RGB (3) samples: no row filters, fast deflate.

    Lossless like any PNG, and several times cheaper than MuPDF's or Pillow's PNG writers on
    rendered pages, for files of a similar size: row filters and strong compression save
    little on documents, and the bytes cross a LAN once.
    """
    import numpy as np

    stride = width * channels
    rows = np.empty((height, stride + 1), dtype=np.uint8)
    rows[:, 0] = 0  # each row's filter type: 0 (none)
    rows[:, 1:] = np.frombuffer(samples, dtype=np.uint8, count=stride * height).reshape(
        height, stride
    )
    header = struct.pack("!IIBBBBB", width, height, 8, 2 if channels == 3 else 0, 0, 0, 0)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack("!I", len(data))
            + tag
            + data
            + struct.pack("!I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", _compress(rows, level))
        + chunk(b"IEND", b"")
    )


def render_pdf_page(
    pdf: Any,
    outline: DocumentOutline,
    number: int,
    settings: RenderSettings,
    hook: PageHook | None = None,
) -> PageImage:
    """Render page ``number`` (1-based) of the open ``pymupdf.Document`` and run the engine's
    page hook on it; ``outline`` names the page in the image and in errors."""
    import pymupdf

    try:
        page = pdf[number - 1]
        rect = page.rect  # the displayed frame: rotation applied, origin at top-left
        width, height = max(rect.width, 1.0), max(rect.height, 1.0)
        zoom, downscaled = fit_scale(width, height, settings.dpi / 72.0, settings.max_pixels)
        # With the text layer wanted, MuPDF interprets the page once into a display list that
        # draws the pixels and gives the text (a second get_text would interpret it again).
        drawn = page.get_displaylist() if settings.text_layer else page
        pix = drawn.get_pixmap(
            matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csRGB
        )
        layer = _text_layer(page, drawn) if settings.text_layer else None
        if settings.image_format == "png":
            data = png_bytes(pix.samples_mv, pix.width, pix.height, pix.n)
        else:
            data = pix.tobytes("jpg", jpg_quality=settings.jpeg_quality)
        size = (pix.width, pix.height)
        del pix
        hint = hook(page) if hook is not None else None
    except PageRenderError:
        raise
    except Exception as exc:
        raise PageRenderError(
            f"cannot render ({type(exc).__name__}: {exc})", path=outline.info.source, page=number
        ) from exc
    return PageImage(
        source=outline.info,
        number=number,
        label=outline.label(number),
        width=width,
        height=height,
        image=data,
        mime=settings.mime,
        image_width=size[0],
        image_height=size[1],
        downscaled=downscaled,
        hint=hint,
        text_layer=layer,
    )


def image_pixels(page: Any) -> int:
    """Pixels of the images a ``pymupdf.Page`` draws, from its resources (0 if unreadable)."""
    try:
        return sum(int(info[2]) * int(info[3]) for info in page.get_images())
    except Exception:  # a malformed resource dictionary: the page-count rule still holds
        return 0


def empty_store() -> None:
    """Drop what MuPDF has cached process-wide (decoded fonts and images)."""
    import pymupdf

    pymupdf.TOOLS.store_shrink(100)


def _text_layer(page: Any, display: Any) -> TextLayer:
    """The page's words from its display list; a layer that cannot be read is no layer (the
    page is then simply unverified)."""
    import pymupdf

    try:
        textpage = pymupdf.TextPage(display.get_textpage(flags=pymupdf.TEXT_MEDIABOX_CLIP))
        return read_text_layer(page, textpage)
    except Exception:  # a broken content stream: no reference, not a failed page
        return NO_LAYER


def _to_rgb(img: PILImage) -> PILImage:
    """RGB for any Pillow mode: transparency composited on white, 16-bit scaled down."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def encode_image(img: PILImage, settings: RenderSettings) -> bytes:
    """Encode a Pillow RGB image as the configured format (fast PNG compression)."""
    if settings.image_format == "png":
        return png_bytes(img.tobytes(), img.width, img.height, 3)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=settings.jpeg_quality)
    return buf.getvalue()


def downscale(img: PILImage, target: tuple[int, int]) -> PILImage:
    """``img`` resized to ``target`` (RGB), strip by strip so only one full decode is held.

    Converting a huge 1-bit or palette image to RGB first would need four bytes per pixel;
    converting one horizontal strip at a time keeps the extra memory to a strip.
    """
    from PIL import Image

    width, height = img.size
    tw, th = target
    out = Image.new("RGB", (tw, th), (255, 255, 255))
    step = max(1, height // th) * 32
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        t0, t1 = round(y0 * th / height), round(y1 * th / height)
        if t1 <= t0:
            continue
        strip = _to_rgb(img.crop((0, y0, width, y1)))
        out.paste(strip.resize((tw, t1 - t0), Image.Resampling.BOX), (0, t0))
    return out


def render_image_frame(
    img: PILImage, outline: DocumentOutline, number: int, settings: RenderSettings
) -> PageImage:
    """One frame (1-based) of an image file at native resolution, capped at the pixel budget.

    Regions of image files are in the image's own pixels, so the page frame is the frame's
    pixel size even when the sent image was scaled down.
    """
    try:
        with lifted_pixel_limit():
            return _frame_image(img, outline, number, settings)
    except Exception as exc:
        raise PageRenderError(
            f"cannot decode image frame ({type(exc).__name__}: {exc})",
            path=outline.info.source,
            page=number,
        ) from exc


def _frame_image(
    img: PILImage, outline: DocumentOutline, number: int, settings: RenderSettings
) -> PageImage:
    img.seek(number - 1)
    width, height = img.size
    scale, downscaled = fit_scale(width, height, 1.0, settings.max_pixels)
    if downscaled:
        target = (max(1, int(width * scale)), max(1, int(height * scale)))
        if img.format == "JPEG":
            img.draft("RGB", target)  # decode at reduced size: far less memory
        rgb = downscale(img, target)
    else:
        rgb = _to_rgb(img)
    return PageImage(
        source=outline.info,
        number=number,
        label=outline.label(number),
        width=float(width),
        height=float(height),
        image=encode_image(rgb, settings),
        mime=settings.mime,
        image_width=rgb.size[0],
        image_height=rgb.size[1],
        downscaled=downscaled,
    )


# --- a document open in this process --------------------------------------------------------

REOPEN_AFTER_PAGES = 200
"""MuPDF keeps every object it has parsed until the document is closed (tens of KB per page of
a dense PDF), so a PDF is reopened after this many rendered pages: memory stays flat however
long the document is, for the cost of one open per 200 pages."""

EMPTY_STORE_AFTER_PAGES = 64
"""MuPDF also caches decoded fonts and images in a process-wide store of up to 256 MB, which a
long document fills: it is emptied after this many rendered pages (14 MB less after 400 pages
of lecture notes; fonts decoded again once per 64 pages cost no measurable time)..."""
EMPTY_STORE_IMAGE_PIXELS = 1_000_000
"""...and after any page whose images hold more pixels than this: a scan's decoded page image
would stay cached (60 scanned pages: 440 MB -> 163 MB, 5 % more render time)."""


class RasterDocument:
    """An opened input whose pages render one at a time, in this process. Not thread-safe.

    A PDF's handle is swapped for a fresh one every :data:`REOPEN_AFTER_PAGES` pages, and
    MuPDF's cache is emptied as :data:`EMPTY_STORE_AFTER_PAGES` says.
    """

    def __init__(self, opened: OpenedInput) -> None:
        self.outline = opened.outline
        self._handle = opened.handle
        self._reopen = opened.reopen
        self._rendered = 0
        self._stored = 0

    @property
    def info(self) -> SourceInfo:
        return self.outline.info

    @property
    def page_count(self) -> int:
        return self.outline.page_count

    def label(self, number: int) -> str:
        return self.outline.label(number)

    def render(
        self, number: int, settings: RenderSettings, hook: PageHook | None = None
    ) -> PageImage:
        """Page ``number`` (1-based) as the image an engine receives."""
        if self.info.kind == "pdf":
            if self._reopen is not None and self._rendered >= REOPEN_AFTER_PAGES:
                self._refresh(number)
            self._rendered += 1
            image = render_pdf_page(self._handle, self.outline, number, settings, hook)
            self._stored += 1
            if (
                self._stored >= EMPTY_STORE_AFTER_PAGES
                or image_pixels(self._handle[number - 1]) > EMPTY_STORE_IMAGE_PIXELS
            ):
                empty_store()
                self._stored = 0
            return image
        return render_image_frame(self._handle, self.outline, number, settings)

    def pdf_page(self, number: int) -> Any:
        """Page ``number`` (1-based) of an open PDF, as a ``pymupdf.Page``."""
        if self.info.kind != "pdf":
            raise PageRenderError("not a PDF page", path=self.info.source, page=number)
        return self._handle[number - 1]

    def _refresh(self, number: int) -> None:
        """Swap the handle for a fresh one on the same, unchanged document."""
        assert self._reopen is not None
        self.close()
        try:
            handle = self._reopen()
        except InputError as exc:
            raise PageRenderError(
                f"cannot reopen the document ({exc.reason})", path=self.info.source, page=number
            ) from exc
        if handle.page_count != self.info.total_pages:
            handle.close()
            raise PageRenderError(
                "the document changed while it was being read", path=self.info.source, page=number
            )
        self._handle = handle
        self._rendered = 0

    def close(self) -> None:
        close_handle(self._handle, self.info.source)


def open_document(
    src: DocumentSource, password: str | None = None, *, known_hash: str | None = None
) -> RasterDocument:
    """Open and check one input for rendering here (see :func:`.._sources.open_input`)."""
    return RasterDocument(open_input(src, password, known_hash=known_hash))
