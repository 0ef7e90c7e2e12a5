"""Rasterization and encoding: one page in, the exact image sent to the model out.

PDF pages render with PyMuPDF at ``dpi`` (144 by default, like DeepSeek's own PDF script) in
the orientation a viewer shows (``/Rotate`` applied), RGB, no alpha. Image files keep their
native resolution. Either way the render is capped at ``max_pixels``: a bigger page is scaled
down to fit and :attr:`~ocr_loaders.model.PageImage.downscaled` says so. The image always
covers the whole page, so model boxes map back with ``v / 999 * size`` at any resolution.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from .errors import ConfigError, PageRenderError
from .model import PageImage

if TYPE_CHECKING:
    from .sources import OpenDocument

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


_PIXEL_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def lifted_pixel_limit() -> Iterator[None]:
    """Lift Pillow's decompression-bomb check for one open or decode, then restore it.

    The project enforces its own pixel budget (huge images are decoded once and scaled down),
    so Pillow's process-wide limit is only suspended here, never changed for the caller.
    """
    from PIL import Image

    with _PIXEL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


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
    doc: OpenDocument, pdoc: Any, number: int, settings: RenderSettings, hook: Any = None
) -> PageImage:
    """Render one PDF page (1-based ``number``) and run the engine's page hook on it."""
    import pymupdf

    try:
        page = pdoc[number - 1]
        rect = page.rect  # the displayed frame: rotation applied, origin at top-left
        width, height = max(rect.width, 1.0), max(rect.height, 1.0)
        zoom, downscaled = fit_scale(width, height, settings.dpi / 72.0, settings.max_pixels)
        pix = page.get_pixmap(
            matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csRGB
        )
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
            f"cannot render ({type(exc).__name__}: {exc})", path=doc.info.source, page=number
        ) from exc
    return PageImage(
        source=doc.info,
        number=number,
        label=doc.label(number),
        width=width,
        height=height,
        image=data,
        mime=settings.mime,
        image_width=size[0],
        image_height=size[1],
        downscaled=downscaled,
        hint=hint,
    )


def _to_rgb(img: Any) -> Any:
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


def encode_image(img: Any, settings: RenderSettings) -> bytes:
    """Encode a Pillow RGB image as the configured format (fast PNG compression)."""
    if settings.image_format == "png":
        return png_bytes(img.tobytes(), img.width, img.height, 3)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=settings.jpeg_quality)
    return buf.getvalue()


def downscale(img: Any, target: tuple[int, int]) -> Any:
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
    doc: OpenDocument, img: Any, number: int, settings: RenderSettings
) -> PageImage:
    """One frame (1-based) of an image file at native resolution, capped at the pixel budget.

    Regions of image files are in the image's own pixels, so the page frame is the frame's
    pixel size even when the sent image was scaled down.
    """
    try:
        with lifted_pixel_limit():
            return _frame_image(doc, img, number, settings)
    except Exception as exc:
        raise PageRenderError(
            f"cannot decode image frame ({type(exc).__name__}: {exc})",
            path=doc.info.source,
            page=number,
        ) from exc


def _frame_image(doc: OpenDocument, img: Any, number: int, settings: RenderSettings) -> PageImage:
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
        source=doc.info,
        number=number,
        label=doc.label(number),
        width=float(width),
        height=float(height),
        image=encode_image(rgb, settings),
        mime=settings.mime,
        image_width=rgb.size[0],
        image_height=rgb.size[1],
        downscaled=downscaled,
    )
