"""The typed data that flows through the pipeline: small frozen dataclasses, no I/O.

The flow is ``PageImage -> RawPage -> Page -> Chunk`` (see docs/architecture.md). Boxes live in
DeepSeek-OCR's own units: integer bins 0..999 on each axis of the image that was sent, top-left
origin. :func:`scale_box` maps them onto a page with DeepSeek's ``v / 999 * size`` convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the cross-check's types sit above the data model
    from ._verify.textlayer import TextLayer

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in model units, 0..999, relative to the image that was sent."""

BBox = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in page units (PDF points or image pixels), top-left origin."""

PageStatus = Literal["ok", "truncated", "failed"]
"""``ok``; ``truncated`` (finish_reason ``length`` or a cut repetition loop); ``failed``."""

MODEL_UNITS = 999
"""The largest box coordinate DeepSeek-OCR emits; also the divisor of its own drawing code."""


def scale_box(box: Box, width: float, height: float) -> BBox:
    """Map a 0..999 box onto a ``width`` x ``height`` frame (``v / 999 * size``).

    This is the convention of DeepSeek-OCR's own drawing code; dividing by 1000 instead (as
    some converters do) shifts boxes by up to 0.1 %.
    """
    x0, y0, x1, y1 = box
    return (
        x0 / MODEL_UNITS * width,
        y0 / MODEL_UNITS * height,
        x1 / MODEL_UNITS * width,
        y1 / MODEL_UNITS * height,
    )


def model_box(bbox: BBox, width: float, height: float) -> Box:
    """Inverse of :func:`scale_box`: page units to 0..999 bins, rounded, clamped and ordered."""

    def unit(v: float, size: float) -> int:
        return min(MODEL_UNITS, max(0, round(v / size * MODEL_UNITS))) if size > 0 else 0

    x0, y0, x1, y1 = (
        unit(bbox[0], width),
        unit(bbox[1], height),
        unit(bbox[2], width),
        unit(bbox[3], height),
    )
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@dataclass(frozen=True, slots=True)
class Block:
    """One layout block of a page: a label, its boxes, its content, its reading-order index.

    ``label`` is kept verbatim (unknown and hallucinated labels included); ``text`` is the
    block's content as the model wrote it (markdown, HTML tables or LaTeX).
    """

    label: str
    boxes: tuple[Box, ...]
    text: str
    index: int
    source: str = "model"
    """``model``; ``text_layer`` for a block filled in from the PDF's text layer (repair)."""

    def scaled_boxes(self, width: float, height: float) -> tuple[BBox, ...]:
        """The boxes on a ``width`` x ``height`` frame (sent-image pixels or PDF points)."""
        return tuple(scale_box(b, width, height) for b in self.boxes)


@dataclass(frozen=True, slots=True)
class Region:
    """A box on a page, for citations: 1-based page number, block label, page-unit bbox."""

    page: int
    label: str
    bbox: BBox
    source: str = "model"
    """``text_layer`` when the block was filled in from the PDF's text layer."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, bbox rounded to 0.01 of a unit; ``source`` only when not the model."""
        out: dict[str, Any] = {
            "page": self.page,
            "label": self.label,
            "bbox": [round(v, 2) for v in self.bbox],
        }
        if self.source != "model":
            out["source"] = self.source
        return out


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a document came from. ``doc_hash`` is the sha256 of the input bytes."""

    source: str
    file_name: str
    file_path: str
    doc_hash: str
    kind: Literal["pdf", "image"]
    total_pages: int
    """Pages (or image frames) in the whole file, whatever the page selection."""
    extra: tuple[tuple[str, str | int | float | bool], ...] = ()
    """Caller-supplied flat metadata (e.g. LlamaIndex ``extra_info``), copied onto chunks."""


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page rendered for an engine: the exact image sent, and the page frame it covers.

    ``width``/``height`` are the page as a viewer shows it (after ``/Rotate``): PDF points for
    PDF pages, pixels for image files. The image covers that whole frame, so a 0..999 box maps
    to the page with :func:`scale_box` whatever the render resolution.
    """

    source: SourceInfo
    number: int
    """1-based page number in the file (true number, whatever the page selection)."""
    label: str
    width: float
    height: float
    image: bytes
    mime: str
    image_width: int
    image_height: int
    downscaled: bool = False
    """True when the pixel budget made the render smaller than the requested DPI."""
    hint: Any = None
    """Engine-specific data prepared where the document is open (the local engine's text layer)."""
    text_layer: TextLayer | None = None
    """The PDF's own words, for the cross-check (``verify``); ``None``: not read."""


@dataclass(frozen=True, slots=True)
class RawPage:
    """What an engine answered for one page, before parsing."""

    text: str
    finish_reason: str | None
    engine: str
    model: str
    prompt: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1
    error: str = ""
    """Non-empty when the page failed; ``text`` then holds the best output kept (may be empty)."""


@dataclass(frozen=True, slots=True)
class Page:
    """A parsed page: its blocks in reading order, its frame and how it ended."""

    number: int
    label: str
    width: float
    height: float
    image_width: int
    image_height: int
    blocks: tuple[Block, ...]
    raw_text: str
    status: PageStatus = "ok"
    error: str = ""
    loop_cut: bool = False
    """True when a repetition loop at the end was cut to one copy."""
    downscaled: bool = False

    def regions(self, labels: frozenset[str] | None = None) -> tuple[Region, ...]:
        """Every box of every block, in page units (see :class:`PageImage` for the frame)."""
        out: list[Region] = []
        for block in self.blocks:
            if labels is not None and block.label not in labels:
                continue
            for bbox in block.scaled_boxes(self.width, self.height):
                out.append(Region(self.number, block.label, bbox, block.source))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class PageStats:
    """Accounting for one page (see docs/stats.md)."""

    page: int
    status: PageStatus
    vision_tokens: int
    text_tokens: int
    compression_ratio: float
    risk: Literal["fine", "at_risk", "lossy"]
    output_tokens: int | None = None
    server_vision_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1
    cached: bool = False
    image_width: int = 0
    image_height: int = 0
    finished_at: float = 0.0
    """``time.perf_counter()`` when the page was done (0: unknown); with ``latency_s`` it
    places the page's engine work in time, for the run's seconds and pages/s."""
    verification: VerificationStatus = "unverified"
    """The text-layer cross-check (docs/verification.md); see :class:`PageVerification`."""
    text_coverage: float = -1.0
    unsupported: float = -1.0
    repair_method: str = ""
    extra_requests: int = 0
    coverage_gain: float = 0.0


VerificationStatus = Literal["unverified", "ok", "flagged", "repaired"]


@dataclass(frozen=True, slots=True)
class PageVerification:
    """A page's OCR text checked against the PDF's own text layer (docs/verification.md).

    ``coverage``: share of text-layer words found in the final OCR text; ``unsupported``:
    share of OCR words the layer does not hold; both ``-1.0`` when ``unverified`` (no usable
    layer: a scan, an image, a garbage layer, or ``verify="off"``).
    """

    status: VerificationStatus = "unverified"
    coverage: float = -1.0
    unsupported: float = -1.0
    layer: str = "none"
    """``usable``, ``none``, ``garbage``, ``scan`` or ``off``."""
    missed_words: int = 0
    """Text-layer words outside every block's box (after any repair)."""
    method: str = ""
    """How the page was repaired: ``tiles``, ``gap_fill``, ``tiles+gap_fill``; else empty."""
    extra_requests: int = 0
    coverage_before: float = -1.0
    """Coverage of the first reading, before any repair."""
    filled: tuple[int, ...] = ()
    """Indices of the blocks filled in from the text layer."""
    reasons: tuple[str, ...] = ()
    """Why the page was at risk: ``coverage``, ``unsupported``, ``loop``, ``truncated``,
    ``at_risk``, ``lossy``."""

    @property
    def gain(self) -> float:
        if self.coverage < 0 or self.coverage_before < 0:
            return 0.0
        return round(self.coverage - self.coverage_before, 4)


@dataclass(frozen=True, slots=True)
class Crop:
    """One block cut out of a page (a figure; on request a table or an equation), encoded."""

    block: int
    """Index of the block in ``Page.blocks``."""
    data: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class PageResult:
    """One finished page as the pipeline yields it: parsed page, accounting, provenance."""

    doc: SourceInfo
    page: Page
    stats: PageStats
    engine: str
    model: str
    markdown: str
    crops: tuple[Crop, ...] = ()
    """The page's crops, when the load asked for them (``images="files"`` or ``"inline"``)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrieval unit: text plus where it sits (pages, regions, heading path)."""

    text: str
    index: int
    page_start: int
    page_end: int
    labels: tuple[str, ...]
    heading: str
    regions: tuple[Region, ...] = field(default_factory=tuple)
    page_header: str = ""
    """Running headers (and page numbers at the top) of the chunk's pages, kept out of ``text``."""
    page_footer: str = ""
    """Running footers (and page numbers at the bottom) of the chunk's pages."""
    joins: tuple[str, ...] = ()
    """Page breaks joined inside the chunk, e.g. ``("table 4-5", "text 7-8")``."""
