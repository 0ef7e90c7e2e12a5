"""One page's result: an engine's answer parsed into blocks, its markdown and its accounting.

Pure functions of the page image and the answer, so a page assembles the same whether it was
just recognized, came from the cache or could not be rendered at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ._grounding import ImageLink, parse_page, to_markdown
from ._model import (
    Page,
    PageImage,
    PageResult,
    PageStats,
    PageStatus,
    PageVerification,
    RawPage,
    SourceInfo,
)
from ._sources import DocumentOutline
from ._stats import page_stats


class AnsweredBy(Protocol):
    """What assembling a page needs of the engine that answered it: its names, not the engine
    itself (every :class:`~ocr_loaders._engines.base.Engine` has them), so a page assembles
    the same away from the engine, e.g. on another machine of a Ray cluster."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def prompt(self) -> str: ...


def build_page(image: PageImage, raw: RawPage, filled: tuple[int, ...] = ()) -> Page:
    """Parse an engine's answer into a :class:`Page` and decide how the page ended; the
    blocks numbered in ``filled`` came from the PDF's text layer (verification's repair)."""
    parsed = parse_page(raw.text, raw.finish_reason)
    blocks = parsed.blocks
    if filled:
        blocks = tuple(
            replace(b, source="text_layer") if b.index in filled else b for b in parsed.blocks
        )
    status: PageStatus = "ok"
    error = raw.error
    if raw.error and not parsed.blocks:
        status = "failed"
    elif parsed.loop is not None or raw.finish_reason == "length":
        status = "truncated"
        if not error:
            error = "repetition loop cut" if parsed.loop is not None else "output hit max_tokens"
    return Page(
        number=image.number,
        label=image.label,
        width=image.width,
        height=image.height,
        image_width=image.image_width,
        image_height=image.image_height,
        blocks=blocks,
        raw_text=raw.text,
        status=status,
        error=error if status != "ok" else "",
        loop_cut=parsed.loop is not None,
        downscaled=image.downscaled,
    )


def failed_page_image(outline: DocumentOutline, number: int) -> PageImage:
    """A placeholder for a page that could not be rendered: no pixels, no vision tokens."""
    return PageImage(
        source=outline.info,
        number=number,
        label=outline.label(number),
        width=0.0,
        height=0.0,
        image=b"",
        mime="",
        image_width=0,
        image_height=0,
    )


def failed_answer(engine: AnsweredBy, error: str) -> RawPage:
    """The answer of a page the engine never produced text for (unrenderable, engine bug)."""
    return RawPage(
        text="",
        finish_reason=None,
        engine=engine.name,
        model=engine.model,
        prompt=engine.prompt,
        error=error,
    )


def page_result(
    info: SourceInfo,
    image: PageImage,
    raw: RawPage,
    engine: AnsweredBy,
    *,
    model: str,
    tables: str,
    cached: bool,
    verification: PageVerification | None = None,
    judge: Callable[[PageImage, Page], PageVerification] | None = None,
) -> PageResult:
    """Page, clean markdown and stats of one page. ``model`` picks the vision-token formula;
    ``tables`` is the markdown table format (``html`` or ``markdown``); ``verification`` is
    the text-layer cross-check's outcome (docs/verification.md), else ``judge`` works it
    out from the parsed page."""
    page = build_page(image, raw, verification.filled if verification is not None else ())
    v = verification or (judge(image, page) if judge is not None else PageVerification())
    markdown = page_markdown(page, tables)
    stats = (
        page_stats(image, raw, page, markdown, model, cached=cached)
        if image.image_width
        else no_pixels_stats(page, raw)
    )
    stats = replace(
        stats,
        verification=v.status,
        text_coverage=v.coverage,
        unsupported=v.unsupported,
        repair_method=v.method,
        extra_requests=v.extra_requests,
        coverage_gain=v.gain,
    )
    return PageResult(
        doc=info,
        page=page,
        stats=stats,
        engine=engine.name,
        model=engine.model,
        markdown=markdown,
    )


def page_markdown(page: Page, tables: str, links: ImageLink | None = None) -> str:
    """A page's clean markdown; figures link through ``links`` (none: no figure links)."""
    return to_markdown(page.blocks, image_link=links, loop_cut=page.loop_cut, tables=tables)


def no_pixels_stats(page: Page, raw: RawPage) -> PageStats:
    """Stats of a page sent as no image: no vision tokens, so no ratio either."""
    return PageStats(
        page=page.number,
        status=page.status,
        vision_tokens=0,
        text_tokens=0,
        compression_ratio=0.0,
        risk="fine",
        output_tokens=raw.completion_tokens,
        latency_s=raw.latency_s,
        attempts=raw.attempts,
    )
