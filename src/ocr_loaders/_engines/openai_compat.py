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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .._defaults import FREE_PROMPT, GROUNDING_PROMPT, ServerDialect
from .._errors import ConfigError
from .._model import PageImage, RawPage
from .balancer import Balancer
from .base import PageHook
from .dialect import ServerInfo, detect_dialect, probe_server
from .output_policy import Answer, Guard, best_of_tries, output_plan
from .settings import EndpointSettings, split_base_urls
from .wire import (
    ContextTooLong,
    PageFailure,
    Retryable,
    Sizing,
    build_request,
    max_tokens_for,
    normalize_base_url,
    parse_completion,
    sizing_for,
)

log = logging.getLogger(__name__)


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
        self._probed = False
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
        dialect = await self._ensure_dialect()
        s = self.settings
        plan = output_plan(s.prompt, s.ngram_size, s.window_size, s.output_retries)

        async def attempt(prompt: str, guard: Guard) -> tuple[Answer, int]:
            return await self._request(page, dialect, prompt, guard)

        return await best_of_tries(plan, attempt, engine=self.name, model=self.model)

    # -- one request, with transport retries ------------------------------------------------

    async def _request(
        self, page: PageImage, dialect: ServerDialect, prompt: str, guard: Guard
    ) -> tuple[Answer, int]:
        s = self.settings
        label = f"{page.source.source} page {page.number}"
        sizing = sizing_for(page, s, prompt)
        last_error = ""
        only_connection_faults = True
        for attempt in range(1, s.max_attempts + 1):
            request = build_request(
                page, s, dialect, prompt, guard, sizing.max_tokens(s.max_model_len)
            )
            try:
                answer = await self._balancer.send(request, label, sizing)
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
                resized = _resize(sizing, exc)
                if resized is None or attempt == s.max_attempts:
                    raise PageFailure(str(exc), attempt) from None
                log.debug("%s: %s; retry with a smaller max_tokens", label, exc)
                sizing = resized
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
        """Probe every endpoint once (its dialect and listed context); until one answers,
        use the OpenAI request shape and ask again on the next page."""
        if self._probed:
            return self._dialect or "vllm"
        async with self._detect_lock:
            if not self._probed:
                await self._probe()
        return self._dialect or "vllm"

    async def _probe(self) -> None:
        s = self.settings
        infos: list[ServerInfo | None] = list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(
                        probe_server, url, s.api_key, s.connect_timeout, s.model, self._dialect
                    )
                    for url in s.base_urls
                )
            )
        )
        answered = [
            (url, info) for url, info in zip(s.base_urls, infos, strict=True) if info is not None
        ]
        if not answered and self._dialect is None:
            return  # unreachable for now: use the OpenAI shape, ask again later
        self._probed = True
        for url, info in answered:
            if info.max_model_len is not None:
                self._balancer.set_listed(url, info.max_model_len)
        if self._dialect is None:
            self._dialect = answered[0][1].dialect
            log.info(
                "ocr_loaders: %s is a %s server",
                answered[0][0],
                "vLLM" if self._dialect == "vllm" else "SGLang",
            )
        for url, info in answered:
            listed = info.max_model_len
            log.info(
                "ocr_loaders: %s: context %d tokens (%s)",
                url,
                self._balancer.max_model_len(url),
                "listed by /v1/models" if listed else "not listed; assumed until refused",
            )


def _resize(sizing: Sizing, exc: ContextTooLong) -> Sizing | None:
    """The sizing after a context refusal, or ``None`` if no smaller request can fit. The
    balancer has learned the context the message named; a prompt size that counts the image
    raises the reserve; and the next ``max_tokens`` is always below the refused one."""
    if exc.prompt_alone or (exc.limit is None and exc.prompt_tokens is None):
        return None
    reserve = sizing.reserve
    if exc.prompt_tokens is not None:
        reserve = max(reserve, exc.prompt_tokens + 1)  # SGLang refuses prompt + n == limit
    cap = sizing.cap
    if exc.sent is not None:
        if exc.sent <= 16:
            return None
        cap = exc.sent - 1 if cap is None else min(cap, exc.sent - 1)
    return Sizing(reserve, cap)


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
