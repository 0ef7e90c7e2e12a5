"""DeepSeek-OCR behind one or several OpenAI-compatible servers (vLLM or SGLang).

The engine's own policy, per page: transport faults (429 honouring ``Retry-After``, 5xx,
connection errors, timeouts, invalid JSON, 200-with-error bodies) retry with exponential backoff
and jitter; a server that stays unreachable raises :class:`EndpointUnavailableError` quickly;
answers that hit ``max_tokens`` or come back empty retry with a tighter repetition guard, then
``Free OCR.``, keeping the best.

The rest lives beside it: the request and answer format in :mod:`.wire`, spreading requests
over several base URLs (with backup copies at the end of a run) in :mod:`.balancer`, asking the
server what it is in :mod:`.dialect`, the settings in :mod:`.settings`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .._defaults import FREE_PROMPT, GROUNDING_PROMPT, ServerDialect
from .._errors import ConfigError
from .._grounding import cut_repetition_loop
from .._model import PageImage, RawPage
from .balancer import Balancer
from .base import PageHook
from .dialect import detect_dialect
from .settings import EndpointSettings, split_base_urls
from .wire import (
    Answer,
    ContextTooLong,
    Guard,
    PageFailure,
    Retryable,
    build_request,
    max_tokens_for,
    normalize_base_url,
    parse_completion,
)

log = logging.getLogger(__name__)

_NO_ANSWER = Answer(text="", finish_reason=None, prompt_tokens=None, completion_tokens=None)


class OpenAICompatEngine:
    """OCR through DeepSeek-OCR on one or several OpenAI-compatible endpoints."""

    name = "openai"

    def __init__(self, settings: EndpointSettings) -> None:
        if not settings.base_urls:
            raise ConfigError("an endpoint needs at least one base_url")
        self.settings = replace(
            settings, base_urls=tuple(normalize_base_url(u) for u in settings.base_urls)
        )
        self.model = self.settings.model
        self.prompt = self.settings.prompt
        self._dialect: ServerDialect | None = (
            None if self.settings.dialect == "auto" else self.settings.dialect
        )
        self._detect_lock = asyncio.Lock()
        self._balancer = Balancer(self.settings)

    # -- Engine protocol --------------------------------------------------------------------

    @property
    def page_hook(self) -> PageHook | None:
        return None

    @property
    def cache_identity(self) -> str:
        s = self.settings
        return (
            f"openai|{s.model}|{s.prompt}|{s.dialect}|{s.ngram_size}/{s.window_size}"
            f"|{s.max_model_len}"
        )

    @property
    def dialect(self) -> ServerDialect | None:
        """The dialect in use (``None`` until detected)."""
        return self._dialect

    @property
    def backups_sent(self) -> int:
        """Backup copies sent so far (see :meth:`drain`)."""
        return self._balancer.backups_sent

    async def aclose(self) -> None:
        await self._balancer.aclose()

    def drain(self) -> None:
        """Every page of the run is in flight: spare endpoints take backup copies of requests
        queued on busier ones (:meth:`.balancer.Balancer.drain`)."""
        self._balancer.drain()

    async def recognize(self, page: PageImage) -> RawPage:
        """OCR one page, retrying faults; see the module docstring for the policy."""
        started = time.perf_counter()
        dialect = await self._ensure_dialect()
        best: tuple[tuple[int, int, int], Answer, str] | None = None
        attempts = 0
        error = ""
        for prompt, guard in _output_plan(self.settings):
            try:
                answer, tries = await self._request(page, dialect, prompt, guard)
            except PageFailure as exc:
                attempts += exc.attempts
                error = str(exc)
                break
            attempts += tries
            score = _quality(answer, prompt)
            if best is None or score > best[0]:
                best = (score, answer, prompt)
            if score[0] == 1 and score[1] == 1:
                break
        _score, answer, prompt = best or ((0, 0, 0), _NO_ANSWER, self.settings.prompt)
        empty = not answer.text.strip()
        return RawPage(
            text=answer.text,
            finish_reason=answer.finish_reason,
            error=(error or "the model returned no text") if empty else "",
            prompt=prompt,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            attempts=attempts,
            latency_s=time.perf_counter() - started,
            engine=self.name,
            model=self.model,
        )

    # -- one request, with transport retries ------------------------------------------------

    async def _request(
        self, page: PageImage, dialect: ServerDialect, prompt: str, guard: Guard
    ) -> tuple[Answer, int]:
        s = self.settings
        label = f"{page.source.source} page {page.number}"
        max_tokens = max_tokens_for(page, s, prompt)
        last_error = ""
        only_connection_faults = True
        for attempt in range(1, s.max_attempts + 1):
            request = build_request(page, s, dialect, prompt, guard, max_tokens)
            try:
                answer = await self._balancer.send(request, label)
            except Retryable as exc:
                only_connection_faults &= exc.connection
                last_error = str(exc)
                if exc.connection:
                    self._balancer.check_unavailable()
                if attempt == s.max_attempts:
                    break
                delay = (
                    exc.delay
                    if exc.delay is not None
                    else _backoff(attempt, s.backoff_base, s.backoff_max)
                )
                log.debug("%s: %s; retry %d in %.1fs", label, exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            except ContextTooLong as exc:
                if exc.prompt_tokens is None or attempt == s.max_attempts:
                    raise PageFailure(str(exc), attempt) from None
                max_tokens = max(16, s.max_model_len - exc.prompt_tokens - 8)
                continue
            except PageFailure as exc:
                exc.attempts = attempt
                raise
            return answer, attempt
        if only_connection_faults:
            raise self._balancer.unreachable(s.max_attempts, last_error)
        raise PageFailure(f"gave up after {s.max_attempts} tries: {last_error}", s.max_attempts)

    # -- dialect detection ----------------------------------------------------------------

    async def _ensure_dialect(self) -> ServerDialect:
        if self._dialect is not None:
            return self._dialect
        async with self._detect_lock:
            if self._dialect is None:
                found = await asyncio.to_thread(
                    detect_dialect,
                    self.settings.base_urls[0],
                    self.settings.api_key,
                    self.settings.connect_timeout,
                )
                if found is None:  # unreachable for now: use the OpenAI shape, ask again later
                    return "vllm"
                self._dialect = found
                log.info(
                    "ocr_loaders: %s is a %s server",
                    self.settings.base_urls[0],
                    "vLLM" if found == "vllm" else "SGLang",
                )
        return self._dialect


def _output_plan(s: EndpointSettings) -> list[tuple[str, Guard]]:
    """The prompt and guard of each try at a page's output: as configured; then a tighter
    guard over a wider window; then ``Free OCR.`` (``output_retries`` says how far to go)."""
    tighter = Guard(max(10, s.ngram_size * 2 // 3), s.window_size * 2)
    plan = [(s.prompt, Guard(s.ngram_size, s.window_size))]
    if s.output_retries >= 1:
        plan.append((s.prompt, tighter))
    if s.output_retries >= 2 and s.prompt != FREE_PROMPT:
        plan.append((FREE_PROMPT, tighter))
    return plan


def _has_tags(text: str) -> bool:
    return "<|ref|>" in text or "<|det|>" in text


def _quality(answer: Answer, prompt: str) -> tuple[int, int, int]:
    """Rank answers: ended cleanly first, then grounded, then the most text kept."""
    kept, loop = cut_repetition_loop(answer.text)
    clean = answer.finish_reason == "stop" and loop is None and bool(answer.text.strip())
    grounded = _has_tags(answer.text) or not prompt.startswith("<|grounding|>")
    return (int(clean), int(grounded), len(kept.strip()))


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the step."""
    return float(min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + random.random()))


def make_endpoint_engine(base_url: str | Sequence[str], **options: Any) -> OpenAICompatEngine:
    """An engine for one URL, a list of URLs, or a comma-separated string of URLs; ``options``
    are :class:`EndpointSettings` fields."""
    return OpenAICompatEngine(EndpointSettings(base_urls=split_base_urls(base_url), **options))


__all__ = [
    "FREE_PROMPT",
    "GROUNDING_PROMPT",
    "EndpointSettings",
    "Guard",
    "OpenAICompatEngine",
    "build_request",
    "detect_dialect",
    "make_endpoint_engine",
    "max_tokens_for",
    "normalize_base_url",
    "parse_completion",
]
