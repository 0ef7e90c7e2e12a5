"""One page through the policy: check it against its text layer, repair it when at risk.

``flag`` compares the answer with the layer and reports. ``repair`` also re-reads a page at
risk (compression band ``at_risk`` or ``lossy``, a loop cut, a truncated answer, low coverage,
many unsupported words) as tiles through the same engine, keeps whichever reading covers more
of the layer (with no layer: the tiles when the page showed signs of loss and no tile does),
and with ``gap_fill`` adds the layer's words that no block covers. Extra requests are bounded
per page (``repair_max_requests``) and per run (:class:`~.policy.RepairBudget`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from .._assemble import build_page, page_markdown
from .._engines.base import Engine
from .._grounding import format_grounded, parse_page
from .._model import Block, Page, PageImage, PageStats, PageVerification, RawPage
from .._stats import risk_band
from .._tokens import count_tokens, vision_tokens
from .gapfill import fill_gaps
from .matching import PageCheck, check_page
from .policy import RepairBudget, VerifySettings, risk_reasons, verdict
from .textlayer import TextLayer
from .tiling import choose_tiles, stitch, tile_image, to_page
from .words import LayerToken, layer_tokens

log = logging.getLogger(__name__)

OFF = PageVerification(layer="off")


def _round(value: float) -> float:
    return round(value, 4)


class Verifier:
    """The cross-check and repair of one run (one :class:`RepairBudget`)."""

    def __init__(self, settings: VerifySettings, *, model: str, tables: str) -> None:
        self.settings = settings
        self.budget = RepairBudget(settings.repair_budget)
        self.model = model
        self.tables = tables

    @property
    def reads_layer(self) -> bool:
        """Whether pages must be rendered with their text layer (``RenderSettings.text_layer``):
        unless ``off``."""
        return self.settings.verify != "off"

    def judge(self, image: PageImage, page: Page) -> PageVerification:
        """The ``flag`` verdict of a parsed page (also for cached pages and after repair)."""
        if self.settings.verify == "off":
            return OFF
        layer = image.text_layer
        if layer is None or not layer.usable:
            return PageVerification(layer=layer.state if layer is not None else "none")
        found = check_page(layer.words, page.blocks, image.width, image.height, geometry=False)
        status = verdict(found, self.settings)
        result = PageVerification(
            status=status,
            coverage=_round(found.coverage),
            unsupported=_round(found.unsupported),
            layer="usable",
            coverage_before=_round(found.coverage),
        )
        if status == "flagged" and self.settings.verify == "flag":
            _warn(image, result)
        return result

    async def verify(
        self, engine: Engine, image: PageImage, raw: RawPage
    ) -> tuple[RawPage, PageVerification | None]:
        """The page's final answer, and its verification when a repair was considered
        (``None``: :meth:`judge` the page as it is)."""
        self.budget.page_started()
        if self.settings.verify != "repair" or raw.error or not image.image_width:
            return raw, None
        page = build_page(image, raw)
        first = self.judge(image, page)
        ratio = self._ratio(image, page)
        risk = risk_band(ratio)
        layer = image.text_layer if first.layer == "usable" else None
        lt = layer_tokens(layer.words) if layer is not None else None
        found = (
            check_page(layer.words, page.blocks, image.width, image.height, layer=lt)
            if layer is not None and lt is not None
            else None
        )
        reasons = risk_reasons(page, risk, found, self.settings)
        if not reasons:
            return raw, first
        blocks: Sequence[Block] = page.blocks
        method: list[str] = []
        extra, seconds = 0, 0.0
        # the page's text: the answer's, scaled up by the share of the layer it missed
        text_tokens = ratio * vision_tokens(image.image_width, image.image_height, self.model)
        if found is not None:
            text_tokens /= max(found.coverage, 0.3)
        s = self.settings
        tiles = await asyncio.to_thread(
            choose_tiles, image, text_tokens, s.repair_tile_ratio, s.repair_max_requests, self.model
        )
        if len(tiles) > self.settings.repair_max_requests or not self.budget.take(len(tiles)):
            log.info(
                "%s page %d: at risk (%s), no tiles: %d requests needed, %d left to the page, "
                "%d to the run (repair_budget)",
                image.source.source,
                image.number,
                ", ".join(reasons),
                len(tiles),
                self.settings.repair_max_requests,
                self.budget.left,
            )
        else:
            extra = len(tiles)
            parts = [tile_image(image, t) for t in tiles]
            answers = await asyncio.gather(*(engine.recognize(p) for p in parts))
            seconds = sum(a.latency_s for a in answers)
            if not any(a.error for a in answers):
                parsed = [parse_page(a.text, a.finish_reason) for a in answers]
                stitched = stitch(
                    [to_page(p.blocks, image, t) for p, t in zip(parsed, tiles, strict=True)]
                )
                clean = all(p.loop is None for p in parsed) and all(
                    a.finish_reason != "length" for a in answers
                )
                if self._better(image, layer, lt, found, stitched, clean):
                    blocks = stitched
                    method.append("tiles")
        filled: tuple[int, ...] = ()
        if self.settings.gap_fill and layer is not None and lt is not None:
            now = check_page(layer.words, blocks, image.width, image.height, layer=lt)
            if now.missed_words:
                missed = [layer.words[i] for i in now.missed_words]
                blocks, filled = fill_gaps(blocks, missed, image.width, image.height)
                method.append("gap_fill")
        final = raw
        if method:
            final = replace(
                raw,
                text=format_grounded(list(blocks)),
                finish_reason="stop",
                prompt_tokens=None,
                completion_tokens=None,
            )
        final = replace(final, attempts=raw.attempts + extra, latency_s=raw.latency_s + seconds)
        return final, self._outcome(image, final, first, reasons, method, extra, filled, layer)

    def _outcome(
        self,
        image: PageImage,
        final: RawPage,
        first: PageVerification,
        reasons: tuple[str, ...],
        method: list[str],
        extra: int,
        filled: tuple[int, ...],
        layer: TextLayer | None,
    ) -> PageVerification:
        page = build_page(image, final, filled)
        status = first.status
        coverage, unsupported, missed = first.coverage, first.unsupported, first.missed_words
        if layer is not None:
            found = check_page(layer.words, page.blocks, image.width, image.height)
            coverage, unsupported = _round(found.coverage), _round(found.unsupported)
            missed = len(found.missed_words)
            status = verdict(found, self.settings)
        if method and status != "flagged":
            status = "repaired"
        result = PageVerification(
            status=status,
            coverage=coverage,
            unsupported=unsupported,
            layer=first.layer,
            missed_words=missed,
            method="+".join(method),
            extra_requests=extra,
            coverage_before=first.coverage,
            filled=filled,
            reasons=reasons,
        )
        if status == "flagged":
            _warn(image, result)
        return result

    def _ratio(self, image: PageImage, page: Page) -> float:
        vt = vision_tokens(image.image_width, image.image_height, self.model)
        return count_tokens(page_markdown(page, self.tables)) / vt if vt else 0.0

    @staticmethod
    def _better(
        image: PageImage,
        layer: TextLayer | None,
        lt: list[LayerToken] | None,
        before: PageCheck | None,
        stitched: list[Block],
        clean: bool,
    ) -> bool:
        """Do the tiles read the page better than the whole page did?"""
        if layer is None or lt is None or before is None:
            return clean and bool(stitched)
        after = check_page(layer.words, stitched, image.width, image.height, layer=lt)
        return after.coverage > before.coverage


def flagged_summary(source: str, pages: Sequence[PageStats]) -> str:
    """One line naming a document's flagged pages (empty when none), for a warning."""
    flagged = [s for s in pages if s.verification == "flagged"]
    if not flagged:
        return ""
    shown = ", ".join(
        f"{s.page} ({100 * s.text_coverage:.0f}% covered, {100 * s.unsupported:.0f}% unsupported)"
        for s in flagged[:10]
    )
    more = f" and {len(flagged) - 10} more" if len(flagged) > 10 else ""
    return (
        f"{source}: {len(flagged)} of {len(pages)} page(s) flagged by the text-layer check "
        f"(OCR text vs the PDF's own text): {shown}{more}"
    )


def _warn(image: PageImage, v: PageVerification) -> None:
    log.info(
        "%s page %d: the OCR text holds %.0f%% of the PDF's text layer and %.0f%% of its "
        "words are not in it; flagged (verification)",
        image.source.source,
        image.number,
        100 * v.coverage,
        100 * v.unsupported,
    )
