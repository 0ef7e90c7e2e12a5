"""Crops of layout blocks: figures, and on request tables and equations.

Each crop is the block's box, mapped exactly as ``regions`` are
(:func:`~ocr_loaders._model.scale_box`, in the frame a viewer shows):

* PDF pages: just the box rendered from the PDF (:func:`clip_pdf`) where the document is
  already open (the render worker; no document is opened again per figure), at the resolution
  the page was sent at, or at ``figure_dpi`` (sharper). A page answered from the cache is
  cropped the same way, without rendering the whole page again.
* Image inputs (PNG, JPEG, TIFF): cut from the image the engine saw (:func:`cut_image`); their
  pixels are all there is, so ``figure_dpi`` does not apply and nothing is upscaled.

Crops are PNG (no row filters, fast deflate, like the pages sent) or JPEG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ConfigError, PageRenderError
from .._model import Box, Crop, Page, scale_box
from .raster import fit_scale, png_bytes

if TYPE_CHECKING:
    from .raster import RasterDocument

CropFormat = Literal["png", "jpeg"]
CROP_FORMATS: tuple[CropFormat, ...] = ("png", "jpeg")
CROP_BLOCKS = ("image", "table", "equation")
"""The block labels that can be cropped."""

CropTarget = tuple[int, Box]
"""A block to crop: its index in ``Page.blocks`` and its (first) box in model units."""


@dataclass(frozen=True, slots=True)
class CropSettings:
    """What is cropped and how: block labels, resolution, format."""

    blocks: tuple[str, ...] = ("image",)
    """Labels of the blocks cropped, from :data:`CROP_BLOCKS`."""
    dpi: int | None = None
    """PDF pages: render each box at this resolution; ``None``: the resolution sent."""
    image_format: CropFormat = "png"
    jpeg_quality: int = 90
    max_pixels: int = 16_000_000
    """Pixel budget of one crop; a bigger one is rendered at a lower resolution to fit."""

    def __post_init__(self) -> None:
        unknown = [b for b in self.blocks if b not in CROP_BLOCKS]
        if unknown or not self.blocks:
            raise ConfigError(
                f"crop_blocks must name some of {', '.join(CROP_BLOCKS)}, got {self.blocks!r}"
            )
        if self.dpi is not None and not 18 <= self.dpi <= 1200:
            raise ConfigError(f"figure_dpi must be between 18 and 1200, got {self.dpi}")
        if self.image_format not in CROP_FORMATS:
            raise ConfigError(f"figure_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")

    @property
    def mime(self) -> str:
        return "image/png" if self.image_format == "png" else "image/jpeg"

    @property
    def extension(self) -> str:
        return "png" if self.image_format == "png" else "jpg"


def page_targets(page: Page, settings: CropSettings | None) -> tuple[CropTarget, ...]:
    """What a finished page needs cropped under ``settings`` (nothing when crops are off or
    the page failed), the one rule the pipeline and the Ray document stage share."""
    if settings is None or page.status == "failed":
        return ()
    return crop_targets(page, settings.blocks)


def crop_targets(page: Page, labels: Sequence[str]) -> tuple[CropTarget, ...]:
    """The blocks of ``page`` to crop: those labelled one of ``labels`` that have a box."""
    return tuple(
        (i, block.boxes[0])
        for i, block in enumerate(page.blocks)
        if block.label in labels and block.boxes
    )


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """A model box on a ``width`` x ``height`` image, rounded, clamped, at least 1 px."""
    x0, y0, x1, y1 = scale_box(box, width, height)
    left = min(max(0, round(x0)), width - 1)
    top = min(max(0, round(y0)), height - 1)
    right = min(max(left + 1, round(x1)), width)
    bottom = min(max(top + 1, round(y1)), height)
    return left, top, right, bottom


def encode_rgb(
    samples: bytes | memoryview, width: int, height: int, settings: CropSettings
) -> bytes:
    """RGB samples as the configured crop format."""
    if settings.image_format == "png":
        return png_bytes(samples, width, height, 3)
    from PIL import Image

    picture = Image.frombytes("RGB", (width, height), bytes(samples))
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=settings.jpeg_quality)
    return buf.getvalue()


def cut_image(
    image: bytes, targets: Sequence[CropTarget], settings: CropSettings
) -> tuple[Crop, ...]:
    """Each target cut from ``image`` (the encoded page image the engine saw)."""
    from PIL import Image

    if not targets or not image:
        return ()
    with Image.open(io.BytesIO(image)) as opened:
        opened.load()
        picture = opened if opened.mode == "RGB" else opened.convert("RGB")  # no copy
    out = []
    for index, box in targets:
        piece = picture.crop(pixel_box(box, picture.width, picture.height))
        data = encode_rgb(piece.tobytes(), piece.width, piece.height, settings)
        out.append(Crop(index, data, piece.width, piece.height))
    return tuple(out)


def clip_pdf(
    doc: RasterDocument,
    number: int,
    targets: Sequence[CropTarget],
    settings: CropSettings,
    zoom: float,
) -> tuple[Crop, ...]:
    """Each target rendered from page ``number`` of an open PDF at ``zoom`` pixels per point
    (``figure_dpi / 72``, or the zoom the page was sent at)."""
    try:
        return _clips(doc.pdf_page(number), targets, zoom, settings)
    except PageRenderError:
        raise
    except Exception as exc:
        raise PageRenderError(
            f"cannot render a crop ({type(exc).__name__}: {exc})", path=doc.info.source, page=number
        ) from exc


def crop_zoom(settings: CropSettings, page: Page) -> float:
    """Pixels per point of a PDF page's crops: ``figure_dpi``, else the page's as sent."""
    if settings.dpi is not None:
        return settings.dpi / 72.0
    return page.image_width / page.width if page.width > 0 else 2.0


def _clips(
    page: Any, targets: Sequence[CropTarget], scale: float, settings: CropSettings
) -> tuple[Crop, ...]:
    import pymupdf

    frame = page.rect  # the displayed frame: ``clip`` is given in it, rotation applied
    out = []
    for index, box in targets:
        clip = pymupdf.Rect(*scale_box(box, frame.width, frame.height)) & frame
        if clip.is_empty:
            continue
        zoom, _ = fit_scale(clip.width, clip.height, scale, settings.max_pixels)
        pix = page.get_pixmap(
            matrix=pymupdf.Matrix(zoom, zoom), clip=clip, alpha=False, colorspace=pymupdf.csRGB
        )
        if pix.width and pix.height:  # a box thinner than a pixel has no crop
            data = encode_rgb(pix.samples_mv, pix.width, pix.height, settings)
            out.append(Crop(index, data, pix.width, pix.height))
        del pix
    return tuple(out)
