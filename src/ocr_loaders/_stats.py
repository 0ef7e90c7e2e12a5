"""Compression and throughput accounting, per page, per document and per run.

``compression_ratio = text_tokens / vision_tokens``: how many text tokens (tiktoken
``cl100k_base`` of the clean markdown) each vision token had to carry. DeepSeek's papers show
precision near 97 % below 10x, about 90 % at 10-12x and about 60 % at 20x, hence the bands
``fine`` (< 10), ``at_risk`` (10-20) and ``lossy`` (> 20). See docs/stats.md.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ._model import Page, PageImage, PageStats, RawPage
from ._tokens import count_tokens, prompt_text_tokens, text_tokens_method, vision_tokens

log = logging.getLogger(__name__)

Risk = Literal["fine", "at_risk", "lossy"]

AT_RISK_RATIO = 10.0
LOSSY_RATIO = 20.0
USAGE_TOLERANCE = 64
"""Tokens of slack between the formula and the server's count (chat template, tokenizer)."""


def risk_band(ratio: float) -> Risk:
    """``fine`` below 10x, ``at_risk`` from 10x to 20x, ``lossy`` above 20x."""
    if ratio > LOSSY_RATIO:
        return "lossy"
    if ratio >= AT_RISK_RATIO:
        return "at_risk"
    return "fine"


def server_vision_tokens(raw: RawPage) -> int | None:
    """Vision tokens implied by the model's own count (a server's ``usage``, or the prompt
    token ids of in-process vLLM): prompt tokens minus BOS, the ``\\n`` after the image and
    the prompt, counted as DeepSeek-OCR's tokenizer does (:func:`prompt_text_tokens`)."""
    if raw.prompt_tokens is None or raw.engine not in ("openai", "vllm"):
        return None
    return raw.prompt_tokens - 1 - prompt_text_tokens(raw.prompt)


def page_stats(
    image: PageImage, raw: RawPage, page: Page, markdown: str, model: str, *, cached: bool = False
) -> PageStats:
    """Accounting for one page; warns when the server's usage disagrees with the formula."""
    vt = vision_tokens(image.image_width, image.image_height, model)
    server_vt = server_vision_tokens(raw)
    if server_vt is not None and abs(server_vt - vt) > USAGE_TOLERANCE:
        log.warning(
            "%s page %d: server counted ~%d vision tokens, the formula %d for %dx%d px; "
            "is the server running a different model or image mode?",
            image.source.source,
            image.number,
            server_vt,
            vt,
            image.image_width,
            image.image_height,
        )
    text_tokens = count_tokens(markdown)
    ratio = text_tokens / vt if vt else 0.0
    return PageStats(
        page=page.number,
        status=page.status,
        vision_tokens=vt,
        text_tokens=text_tokens,
        compression_ratio=round(ratio, 4),
        risk=risk_band(ratio),
        output_tokens=raw.completion_tokens,
        server_vision_tokens=server_vt,
        latency_s=0.0 if cached else round(raw.latency_s, 4),
        attempts=raw.attempts,
        cached=cached,
        image_width=image.image_width,
        image_height=image.image_height,
        finished_at=time.perf_counter(),
    )


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of per-page compression ratios."""

    min: float
    p50: float
    p90: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        if not values:
            return cls(0.0, 0.0, 0.0, 0.0, 0.0)
        ordered = sorted(values)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

        return cls(
            round(ordered[0], 4),
            round(pct(0.5), 4),
            round(pct(0.9), 4),
            round(ordered[-1], 4),
            round(statistics.fmean(ordered), 4),
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """Something a load could not do: a file that cannot be read (``page`` is ``None``) or a
    page that ended ``failed``. Listed in :attr:`Totals.failures`."""

    source: str
    page: int | None
    """1-based page number; ``None`` when the whole file failed."""
    reason: str
    error: str = ""
    """The exception's class name (``CorruptInputError``, ``PasswordError``...), if any."""


# --- the chunker's document pass (docs/chunking.md, "Clean documents") ----------------------


@dataclass(frozen=True, slots=True)
class CleanupCounts:
    """What the chunker's document pass kept out of the text and joined, for one or more
    documents (``Chunker.counts``)."""

    headers_removed: int = 0
    footers_removed: int = 0
    page_numbers_removed: int = 0
    tables_joined: int = 0
    paragraphs_joined: int = 0
    hyphens_mended: int = 0

    def __add__(self, other: CleanupCounts) -> CleanupCounts:
        mine, theirs = self.as_dict(), other.as_dict()
        return CleanupCounts(**{key: mine[key] + theirs[key] for key in mine})

    def as_dict(self) -> dict[str, int]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class VerificationTotals:
    """The text-layer cross-check over a set of pages (docs/verification.md)."""

    pages_verified: int = 0
    """Pages with a usable text layer (the others are ``unverified``)."""
    pages_unverified: int = 0
    pages_ok: int = 0
    pages_flagged: int = 0
    pages_repaired: int = 0
    repaired_by: tuple[tuple[str, int], ...] = ()
    """``(method, pages)``: ``tiles``, ``gap_fill``, ``tiles+gap_fill``."""
    extra_requests: int = 0
    coverage: Distribution = Distribution(0.0, 0.0, 0.0, 0.0, 0.0)
    """Of the verified pages' final coverage."""
    unsupported: Distribution = Distribution(0.0, 0.0, 0.0, 0.0, 0.0)
    coverage_gain: float = 0.0
    """Sum over the pages of (final coverage - first reading's coverage)."""

    @classmethod
    def of(cls, pages: list[PageStats]) -> VerificationTotals:
        verified = [s for s in pages if s.text_coverage >= 0]
        methods: dict[str, int] = {}
        for s in pages:
            if s.repair_method:
                methods[s.repair_method] = methods.get(s.repair_method, 0) + 1
        return cls(
            pages_verified=len(verified),
            pages_unverified=len(pages) - len(verified),
            pages_ok=sum(s.verification == "ok" for s in pages),
            pages_flagged=sum(s.verification == "flagged" for s in pages),
            pages_repaired=sum(s.verification == "repaired" for s in pages),
            repaired_by=tuple(sorted(methods.items())),
            extra_requests=sum(s.extra_requests for s in pages),
            coverage=Distribution.of([s.text_coverage for s in verified]),
            unsupported=Distribution.of([s.unsupported for s in verified]),
            coverage_gain=round(sum(s.coverage_gain for s in pages), 4),
        )


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums and counts over a set of pages: a document or a whole run. JSON-ready."""

    pages: int
    pages_ok: int
    pages_truncated: int
    pages_failed: int
    pages_cached: int
    vision_tokens: int
    output_tokens: int
    text_tokens: int
    compression_ratio: float
    ratio_distribution: Distribution
    pages_over_10x: int
    pages_over_20x: int
    requests: int
    seconds: float
    pages_per_second: float
    output_tokens_per_second: float
    engine: str
    model: str
    documents: int = 1
    documents_failed: int = 0
    text_tokens_method: str = "cl100k"
    """``cl100k`` (exact, tiktoken) or ``estimate`` (no table offline; docs/stats.md)."""
    failures: tuple[Failure, ...] = ()
    """Files that could not be read and pages that failed, in the order they happened."""
    cleanup: CleanupCounts = CleanupCounts()
    """What the chunker's document pass left out of the text and joined (docs/chunking.md)."""
    verification: VerificationTotals = VerificationTotals()
    """The text-layer cross-check and repair (docs/verification.md)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


@dataclass
class Throughput:
    """The one definition of a set of pages' ``seconds`` and ``pages_per_second``.

    ``seconds`` is wall time from the moment the engine started on the earliest page to the
    moment the last page was done (``PageStats.finished_at - latency_s`` to ``finished_at``):
    the time the pages were being worked on, without the opening of documents before the
    first page or the wait for a consumer after the last. Pages of one document overlap
    with the next document's, so documents' seconds add up to more than the run's. The
    progress bar, the stats table and the JSON all use it.
    """

    pages: int = 0
    first_start: float | None = None
    last_end: float | None = None

    def add(self, stats: PageStats) -> None:
        self.pages += 1
        if stats.finished_at <= 0:  # never reached the engine (e.g. could not be rendered)
            return
        start = stats.finished_at - stats.latency_s
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        if self.last_end is None or stats.finished_at > self.last_end:
            self.last_end = stats.finished_at

    @property
    def seconds(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_start)

    @property
    def pages_per_second(self) -> float:
        seconds = self.seconds
        return round(self.pages / seconds, 3) if seconds > 0 else 0.0


@dataclass
class StatsAccumulator:
    """Mutable running totals; :meth:`totals` freezes a snapshot."""

    engine: str = ""
    model: str = ""
    pages: list[PageStats] = field(default_factory=list)
    documents: int = 0
    documents_failed: int = 0
    throughput: Throughput = field(default_factory=Throughput)
    failures: list[Failure] = field(default_factory=list)

    def add(self, stats: PageStats) -> None:
        self.pages.append(stats)
        self.throughput.add(stats)

    def totals(self) -> Totals:
        """A snapshot; seconds and rates as :class:`Throughput` defines them."""
        elapsed = self.throughput.seconds
        p = self.pages
        vt = sum(s.vision_tokens for s in p)
        tt = sum(s.text_tokens for s in p)
        ot = sum(s.output_tokens or 0 for s in p)
        return Totals(
            pages=len(p),
            pages_ok=sum(s.status == "ok" for s in p),
            pages_truncated=sum(s.status == "truncated" for s in p),
            pages_failed=sum(s.status == "failed" for s in p),
            pages_cached=sum(s.cached for s in p),
            vision_tokens=vt,
            output_tokens=ot,
            text_tokens=tt,
            compression_ratio=round(tt / vt, 4) if vt else 0.0,
            ratio_distribution=Distribution.of([s.compression_ratio for s in p]),
            pages_over_10x=sum(s.compression_ratio >= AT_RISK_RATIO for s in p),
            pages_over_20x=sum(s.compression_ratio > LOSSY_RATIO for s in p),
            requests=sum(s.attempts for s in p if not s.cached),
            seconds=round(elapsed, 3),
            pages_per_second=self.throughput.pages_per_second,
            output_tokens_per_second=round(ot / elapsed, 1) if elapsed > 0 else 0.0,
            engine=self.engine,
            model=self.model,
            documents=max(self.documents, 1 if p else 0),
            documents_failed=self.documents_failed,
            text_tokens_method=text_tokens_method(),
            failures=tuple(self.failures),
            verification=VerificationTotals.of(p),
        )
