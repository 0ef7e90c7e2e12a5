"""A dry run: what converting some inputs would cost, worked out from the inputs alone.

:func:`estimate` opens each input, counts its selected pages and the vision tokens each page
would cost (:func:`~ocr_loaders.vision_tokens` of the image size the renderer would send, worked
out from the page's size and the options' ``dpi`` and ``max_pixels`` without rendering), and
prices the run at an assumed GPU throughput. Nothing is rendered and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._config import LoaderOptions
from ._errors import ConfigError, InputError, InputNotFoundError, OCRLoadersError
from ._passwords import password_for
from ._rendering.raster import RenderSettings, fit_scale
from ._sources import DocumentSource, Input, OpenedInput, open_input, resolve_inputs
from ._tokens import vision_tokens

DEFAULT_PAGES_PER_SECOND = 2.3
"""DeepSeek's own figure for DeepSeek-OCR: "200k+ pages per day on one A100-40G" (200,000 /
86,400 s = 2.3 pages/s). A guess for other GPUs, servers and page mixes: measure yours."""


@dataclass(frozen=True, slots=True)
class DocumentEstimate:
    """One input's share: its selected pages and what they would cost in vision tokens."""

    source: str
    pages: int
    vision_tokens: int


@dataclass(frozen=True, slots=True)
class SkippedInput:
    """An input the run would skip, and why (missing, not a PDF, wrong password, ...)."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a run would cost. ``requests`` counts one per page: retries come on top."""

    documents: tuple[DocumentEstimate, ...]
    skipped: tuple[SkippedInput, ...]
    pages_per_second: float
    """The throughput assumed for :attr:`gpu_seconds`."""
    model: str
    dpi: int

    @property
    def pages(self) -> int:
        return sum(d.pages for d in self.documents)

    @property
    def requests(self) -> int:
        return self.pages

    @property
    def vision_tokens(self) -> int:
        return sum(d.vision_tokens for d in self.documents)

    @property
    def gpu_seconds(self) -> float:
        return self.pages / self.pages_per_second

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures."""
        return {
            "documents": [
                {"source": d.source, "pages": d.pages, "vision_tokens": d.vision_tokens}
                for d in self.documents
            ],
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "pages": self.pages,
            "requests": self.requests,
            "vision_tokens": self.vision_tokens,
            "assumed_pages_per_second": self.pages_per_second,
            "gpu_seconds": round(self.gpu_seconds, 1),
            "model": self.model,
            "dpi": self.dpi,
        }


def pdf_pixel_size(width: float, height: float, render: RenderSettings) -> tuple[int, int]:
    """The pixel size PyMuPDF renders a ``width`` x ``height`` pt page at: the page frame
    scaled as the renderer scales it, rounded outward as MuPDF rounds a pixmap's bounds."""
    import pymupdf

    w, h = max(width, 1.0), max(height, 1.0)
    zoom, _ = fit_scale(w, h, render.dpi / 72.0, render.max_pixels)
    bounds = (pymupdf.Rect(0, 0, w, h) * pymupdf.Matrix(zoom, zoom)).irect
    return int(bounds.width), int(bounds.height)


def image_pixel_size(width: int, height: int, render: RenderSettings) -> tuple[int, int]:
    """The pixel size an image frame is sent at: native, or scaled into the pixel budget."""
    scale, downscaled = fit_scale(width, height, 1.0, render.max_pixels)
    if not downscaled:
        return width, height
    return max(1, int(width * scale)), max(1, int(height * scale))


def _page_sizes(
    opened: OpenedInput, numbers: Sequence[int], render: RenderSettings
) -> list[tuple[int, int]]:
    """Sent-image sizes of the selected pages of an opened input."""
    handle = opened.handle
    if opened.outline.info.kind == "pdf":
        sizes = []
        for n in numbers:
            rect = handle[n - 1].rect
            sizes.append(pdf_pixel_size(rect.width, rect.height, render))
        return sizes
    out = []
    for n in numbers:
        handle.seek(n - 1)
        out.append(image_pixel_size(handle.width, handle.height, render))
    return out


def _one_by_one(inputs: Input | Sequence[Input]) -> list[Input]:
    """The inputs as a list, so each one is resolved (and may be missing) on its own."""
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]  # type: ignore[list-item]  # a str / bytes / path / file object


def resolve_each(
    inputs: Input | Sequence[Input],
) -> tuple[list[DocumentSource], list[SkippedInput]]:
    """Documents of every input that exists, and the inputs that matched nothing."""
    sources: list[DocumentSource] = []
    missing: list[SkippedInput] = []
    for item in _one_by_one(inputs):
        try:
            sources.extend(resolve_inputs(item))
        except InputNotFoundError as exc:
            missing.append(SkippedInput(exc.path or str(item), exc.reason))
    return sources, missing


def estimate_options(
    options: LoaderOptions,
    inputs: Input | Sequence[Input],
    *,
    pages_per_second: float = DEFAULT_PAGES_PER_SECOND,
) -> Estimate:
    """:func:`estimate` with options already built (the command line's way in)."""
    if pages_per_second <= 0:
        raise ConfigError(f"the assumed pages/s must be > 0, got {pages_per_second}")
    sources, skipped = resolve_each(inputs)
    documents: list[DocumentEstimate] = []
    for src in sources:
        try:
            opened = open_input(src, password_for(options.password, src))
        except OCRLoadersError as exc:
            skipped.append(SkippedInput(src.name, _reason(exc)))
            continue
        try:
            numbers = opened.outline.page_numbers(options.pages)
            sizes = _page_sizes(opened, numbers, options.render)
        except OCRLoadersError as exc:
            skipped.append(SkippedInput(src.name, _reason(exc)))
            continue
        finally:
            opened.close()
        tokens = sum(vision_tokens(w, h, options.model) for w, h in sizes)
        documents.append(DocumentEstimate(opened.outline.info.source, len(numbers), tokens))
    return Estimate(
        documents=tuple(documents),
        skipped=tuple(skipped),
        pages_per_second=pages_per_second,
        model=options.model,
        dpi=options.render.dpi,
    )


def estimate(
    inputs: Input | Sequence[Input],
    *,
    assume_pages_per_s: float = DEFAULT_PAGES_PER_SECOND,
    **options: Any,
) -> Estimate:
    """What converting ``inputs`` would cost, sending nothing (see the module docstring).

    ``options`` are the loaders' (``model``, ``pages``, ``password``, ``dpi``, ``max_pixels``
    matter here); ``assume_pages_per_s`` prices :attr:`Estimate.gpu_seconds` (default: DeepSeek's
    published 2.3 pages/s on one A100-40G). Inputs that cannot be read are listed in
    :attr:`Estimate.skipped`, not raised.
    """
    return estimate_options(
        LoaderOptions.from_kwargs(**options), inputs, pages_per_second=assume_pages_per_s
    )


def _reason(exc: OCRLoadersError) -> str:
    """The why without the file name (the report names the file itself)."""
    return exc.reason if isinstance(exc, InputError) else str(exc)
