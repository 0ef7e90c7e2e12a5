"""DeepSeek-OCR behind an OpenAI-compatible server (vLLM or SGLang), over ``AsyncOpenAI``.

One request per page, exactly as the servers want it (docs/usage.md): the image part first, the
grounding prompt, ``temperature=0``, ``skip_special_tokens=False`` so the layout tags survive,
and ``max_tokens`` = the context left after the page's prompt. Dialects differ only in the
repetition guard (``vllm_xargs`` vs SGLang's ``custom_params``) and where ``<image>`` goes.

Faults are handled here, per request: 429 (honouring ``Retry-After``), 5xx, connection errors,
timeouts, invalid JSON and 200-with-error bodies retry with exponential backoff and jitter; a
server that stays unreachable raises :class:`EndpointUnavailableError` quickly; answers that hit
``max_tokens`` or come back empty retry with a tighter repetition guard, then ``Free OCR.``,
keeping the best.

Several base URLs share the load: each request goes to the live endpoint with the fewest
outstanding requests, and a failing one is backed off while the others carry on. Once the
pipeline says every page is in flight (:meth:`OpenAICompatEngine.drain`), an endpoint left with
spare capacity takes backup copies of the newest requests waiting on a busier one, and whichever
answer comes first is kept: the end of a run is not held up by one endpoint's queue (the
classic backup-task fix for stragglers; vLLM and SGLang abort the losing copy when its
connection closes).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import random
import re
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import ConfigError, EndpointError, EndpointUnavailableError
from ..grounding import cut_repetition_loop
from ..model import PageImage, RawPage
from ..tokens import count_tokens, vision_tokens
from .base import PageHook

log = logging.getLogger(__name__)

Dialect = Literal["vllm", "sglang", "auto"]

GROUNDING_PROMPT = "<|grounding|>Convert the document to markdown."
FREE_PROMPT = "Free OCR."
TD_TOKEN_IDS = (128821, 128822)
"""``<td>`` and ``</td>``: table cells repeat legitimately, so the n-gram guard ignores them."""


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """Everything about talking to the server. Defaults follow DeepSeek's recipes."""

    base_urls: tuple[str, ...]
    model: str = "deepseek-ai/DeepSeek-OCR"
    api_key: str | None = None
    dialect: Dialect = "auto"
    prompt: str = GROUNDING_PROMPT
    timeout: float = 300.0
    """Seconds for one whole request (a dense page can generate ~7000 tokens)."""
    connect_timeout: float = 10.0
    max_attempts: int = 6
    """Tries per request for transport faults (429, 5xx, resets, timeouts, bad bodies)."""
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    unavailable_after: float = 45.0
    """Seconds of nothing but connection failures after which the run stops."""
    backup_requests: bool = True
    """Once every page is in flight, copy requests waiting on a busy endpoint to an idle one
    (first answer wins). Off: each request is sent once."""
    output_retries: int = 2
    """Extra tries for a page that hit max_tokens or came back empty: tighter guard, then
    ``Free OCR.``."""
    max_model_len: int = 8192
    ngram_size: int = 30
    window_size: int = 90
    whitelist_token_ids: tuple[int, ...] = TD_TOKEN_IDS
    sglang_logit_processor: str | None = None
    """SGLang only: the serialized ``DeepseekOCRNoRepeatNGramLogitProcessor`` (the server must
    run with ``--enable-custom-logit-processor``). Without it no guard is sent to SGLang."""

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise ConfigError("an endpoint needs at least one base_url")
        if self.dialect not in ("vllm", "sglang", "auto"):
            raise ConfigError(f"dialect must be 'vllm', 'sglang' or 'auto', got {self.dialect!r}")
        if self.max_attempts < 1 or self.timeout <= 0:
            raise ConfigError("max_attempts must be >= 1 and timeout > 0")


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1`` (the OpenAI routes' prefix)."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ConfigError(f"base_url must start with http:// or https://, got {url!r}")
    return url if re.search(r"/v\d+$", url) else url + "/v1"


def prompt_token_bound(prompt: str) -> int:
    """A safe upper bound of the prompt's text tokens on DeepSeek's tokenizer (+ template)."""
    return 2 * count_tokens(prompt) + 64


def max_tokens_for(page: PageImage, settings: EndpointSettings, prompt: str) -> int:
    """Output budget: the context left after the image and the prompt, never more."""
    budget = (
        settings.max_model_len
        - vision_tokens(page.image_width, page.image_height, settings.model)
        - prompt_token_bound(prompt)
    )
    return max(16, budget)


@dataclass(frozen=True, slots=True)
class Guard:
    """The repetition guard of one attempt (``None`` values: no guard)."""

    ngram_size: int | None
    window_size: int | None


def build_request(
    page: PageImage,
    settings: EndpointSettings,
    dialect: str,
    prompt: str,
    guard: Guard,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``chat.completions.create`` for one page (a pure function)."""
    data_uri = f"data:{page.mime};base64,{base64.b64encode(page.image).decode('ascii')}"
    text = prompt if dialect == "vllm" else f"<image>\n{prompt}"
    extra: dict[str, Any] = {"skip_special_tokens": False}
    if guard.ngram_size is not None and guard.window_size is not None:
        params = {
            "ngram_size": guard.ngram_size,
            "window_size": guard.window_size,
            "whitelist_token_ids": list(settings.whitelist_token_ids),
        }
        if dialect == "vllm":
            extra["vllm_xargs"] = params
        elif settings.sglang_logit_processor:
            extra["custom_logit_processor"] = settings.sglang_logit_processor
            extra["custom_params"] = params
    return {
        "model": settings.model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri}},
                    {"type": "text", "text": text},
                ],
            }
        ],
        "temperature": 0,
        "max_tokens": max_tokens
        if max_tokens is not None
        else max_tokens_for(page, settings, prompt),
        "extra_body": extra,
    }


_CONTEXT_RES = (
    re.compile(r"has (\d+) input tokens"),
    re.compile(r"\((\d+) in the messages"),
    re.compile(r"prompt \(length (\d+)\)"),
)


def _prompt_tokens_from_error(message: str) -> int | None:
    for pattern in _CONTEXT_RES:
        m = pattern.search(message)
        if m:
            return int(m.group(1))
    return None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(str(value)))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(str(value))
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class _Retryable(Exception):
    """A fault worth another try; ``delay`` overrides the backoff (Retry-After)."""

    def __init__(
        self, message: str, *, connection: bool = False, delay: float | None = None
    ) -> None:
        super().__init__(message)
        self.connection = connection
        self.delay = delay


@dataclass(eq=False)
class _Endpoint:
    url: str
    client: Any
    outstanding: int = 0
    sent: int = 0
    failures: int = 0
    down_until: float = 0.0
    served: int = 0
    moved: int = 0
    """Outstanding requests with a backup copy on another endpoint."""
    incoming: int = 0
    """Backup copies assigned here that have not been sent yet."""

    @property
    def load(self) -> int:
        """Requests this endpoint is expected to answer."""
        return self.outstanding - self.moved + self.incoming


@dataclass(eq=False)
class _Flight:
    """A request waiting for its answer, which may still get a backup copy elsewhere."""

    endpoint: _Endpoint
    started: float
    backup: _Endpoint | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def parse_completion(body: bytes) -> _Answer:
    """Read a chat.completion JSON body; raise :class:`_Retryable` for bodies that are faults."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _Retryable(f"invalid JSON in the response ({exc})") from exc
    if not isinstance(data, dict):
        raise _Retryable("response is not a JSON object")
    if "error" in data and not data.get("choices"):
        err = data["error"]
        message = err.get("message", err) if isinstance(err, dict) else err
        raise _Retryable(f"server returned an error body: {message}")
    if data.get("object") == "error":
        raise _Retryable(f"server returned an error body: {data.get('message')}")
    choices = data.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        raise _Retryable("response has no choices")
    message = choices[0].get("message") or {}
    content = message.get("content") or ""
    usage = data.get("usage") or {}
    return _Answer(
        text=content if isinstance(content, str) else str(content),
        finish_reason=choices[0].get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
    )


def _has_tags(text: str) -> bool:
    return "<|ref|>" in text or "<|det|>" in text


def _quality(answer: _Answer, prompt: str) -> tuple[int, int, int]:
    """Rank answers: ended cleanly first, then grounded, then the most text kept."""
    kept, loop = cut_repetition_loop(answer.text)
    clean = answer.finish_reason == "stop" and loop is None and bool(answer.text.strip())
    grounded = _has_tags(answer.text) or not prompt.startswith("<|grounding|>")
    return (int(clean), int(grounded), len(kept.strip()))


class OpenAICompatEngine:
    """OCR through DeepSeek-OCR on one or several OpenAI-compatible endpoints."""

    name = "openai"

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = replace(
            settings, base_urls=tuple(normalize_base_url(u) for u in settings.base_urls)
        )
        self.model = self.settings.model
        self.prompt = self.settings.prompt
        self._dialect: str | None = (
            None if self.settings.dialect == "auto" else self.settings.dialect
        )
        self._detect_lock = asyncio.Lock()
        self._endpoints: list[_Endpoint] = []
        self._failing_since: float | None = None
        self._flights: set[_Flight] = set()
        self._draining = False
        self.backups_sent = 0
        """Backup copies sent so far (see :meth:`drain`)."""

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
    def dialect(self) -> str | None:
        """The dialect in use (``None`` until detected)."""
        return self._dialect

    async def aclose(self) -> None:
        for ep in self._endpoints:
            try:
                await ep.client.close()
            except Exception:  # closing must not mask the run's outcome
                log.debug("closing client for %s failed", ep.url, exc_info=True)
        self._endpoints = []

    def drain(self) -> None:
        """Every page of the run is now in flight: from here on, an endpoint with spare
        capacity takes backup copies of requests waiting on a busier one. Ends by itself when
        nothing is outstanding, so the next run starts without backups."""
        self._draining = self.settings.backup_requests and any(
            e.outstanding for e in self._endpoints
        )
        self._rebalance()

    async def recognize(self, page: PageImage) -> RawPage:
        """OCR one page, retrying faults; see the module docstring for the policy."""
        started = time.perf_counter()
        dialect = await self._ensure_dialect()
        s = self.settings
        plan: list[tuple[str, Guard]] = [(s.prompt, Guard(s.ngram_size, s.window_size))]
        if s.output_retries >= 1:
            plan.append((s.prompt, Guard(max(10, s.ngram_size * 2 // 3), s.window_size * 2)))
        if s.output_retries >= 2 and s.prompt != FREE_PROMPT:
            plan.append((FREE_PROMPT, Guard(max(10, s.ngram_size * 2 // 3), s.window_size * 2)))
        best: tuple[tuple[int, int, int], _Answer, str] | None = None
        attempts = 0
        error = ""
        for prompt, guard in plan:
            try:
                answer, tries = await self._request(page, dialect, prompt, guard)
            except _PageFailure as exc:
                attempts += exc.attempts
                error = str(exc)
                break
            attempts += tries
            score = _quality(answer, prompt)
            if best is None or score > best[0]:
                best = (score, answer, prompt)
            if score[0] == 1 and score[1] == 1:
                break
        latency = time.perf_counter() - started
        if best is None:
            return RawPage(
                text="",
                finish_reason=None,
                engine=self.name,
                model=self.model,
                prompt=s.prompt,
                latency_s=latency,
                attempts=attempts,
                error=error,
            )
        _score, answer, prompt = best
        if not answer.text.strip() and not error:
            error = "the model returned no text"
        return RawPage(
            text=answer.text,
            finish_reason=answer.finish_reason,
            engine=self.name,
            model=self.model,
            prompt=prompt,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_s=latency,
            attempts=attempts,
            error=error if not answer.text.strip() else "",
        )

    # -- endpoints ----------------------------------------------------------------------------

    def _make_clients(self) -> None:
        if self._endpoints:
            return
        from openai import AsyncOpenAI

        s = self.settings
        for url in s.base_urls:
            client = AsyncOpenAI(
                base_url=url,
                api_key=s.api_key or "EMPTY",
                max_retries=0,
                timeout=_timeout(s.timeout, s.connect_timeout),
            )
            self._endpoints.append(_Endpoint(url=url, client=client))

    async def _pick(self) -> _Endpoint:
        """The live endpoint with the fewest outstanding requests; on a tie, the one sent the
        fewest requests so far, which keeps the totals even across equal servers.

        When every endpoint is backed off, the one that comes back first is used: the request's
        own backoff already paces the retries.
        """
        self._make_clients()
        now = time.monotonic()
        live = [e for e in self._endpoints if e.down_until <= now] or [
            min(self._endpoints, key=lambda e: e.down_until)
        ]
        return min(live, key=lambda e: (e.load, e.sent))

    def _check_unavailable(self) -> None:
        if (
            self._failing_since is not None
            and time.monotonic() - self._failing_since > self.settings.unavailable_after
        ):
            urls = ", ".join(e.url for e in self._endpoints)
            raise EndpointUnavailableError(
                f"cannot reach the OCR server at {urls} (no answer for "
                f"{self.settings.unavailable_after:.0f} s); is it running?"
            )

    def _mark(self, ep: _Endpoint, ok: bool, connection_fault: bool = False) -> None:
        now = time.monotonic()
        if ok:
            ep.failures = 0
            ep.down_until = 0.0
            ep.served += 1
            self._failing_since = None
            return
        if connection_fault:
            ep.failures += 1
            ep.down_until = now + min(
                self.settings.backoff_max, self.settings.backoff_base * 2.0 ** min(ep.failures, 10)
            )
            if self._failing_since is None:
                self._failing_since = now

    # -- one request, with transport retries ------------------------------------------------

    async def _request(
        self, page: PageImage, dialect: str, prompt: str, guard: Guard
    ) -> tuple[_Answer, int]:
        s = self.settings
        max_tokens = max_tokens_for(page, s, prompt)
        last_error = ""
        only_connection_faults = True
        for attempt in range(1, s.max_attempts + 1):
            ep = await self._pick()
            kwargs = build_request(page, s, dialect, prompt, guard, max_tokens)
            try:
                answer = await self._send(ep, kwargs, page)
            except _Retryable as exc:
                only_connection_faults &= exc.connection
                last_error = str(exc)
                if exc.connection:
                    self._check_unavailable()
                if attempt == s.max_attempts:
                    break
                delay = (
                    exc.delay
                    if exc.delay is not None
                    else _backoff(attempt, s.backoff_base, s.backoff_max)
                )
                log.debug(
                    "%s page %d: %s; retry %d in %.1fs",
                    page.source.source,
                    page.number,
                    exc,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except _ContextTooLong as exc:
                if exc.prompt_tokens is None or attempt == s.max_attempts:
                    raise _PageFailure(str(exc), attempt) from None
                max_tokens = max(16, s.max_model_len - exc.prompt_tokens - 8)
                continue
            except _PageFailure as exc:
                exc.attempts = attempt
                raise
            return answer, attempt
        if only_connection_faults:
            self._failing_since = self._failing_since or time.monotonic()
            urls = ", ".join(e.url for e in self._endpoints)
            raise EndpointUnavailableError(
                f"cannot reach the OCR server at {urls} after {s.max_attempts} tries "
                f"({last_error}); is it running?"
            )
        raise _PageFailure(f"gave up after {s.max_attempts} tries: {last_error}", s.max_attempts)

    async def _send(self, ep: _Endpoint, kwargs: dict[str, Any], page: PageImage) -> _Answer:
        """One request to ``ep``; if it gets a backup copy (:meth:`_rebalance`) while
        waiting, the first good answer of the two wins and the other is cancelled."""
        flight = _Flight(ep, time.monotonic())
        primary = self._start(ep, kwargs)
        woken = asyncio.ensure_future(flight.wake.wait())
        self._flights.add(flight)
        tasks = [primary]
        try:
            await asyncio.wait((primary, woken), return_when=asyncio.FIRST_COMPLETED)
            self._flights.discard(flight)
            if primary.done() or flight.backup is None:
                return await primary
            target = flight.backup
            target.incoming -= 1
            self.backups_sent += 1
            log.debug(
                "%s page %d: backup copy sent to %s", page.source.source, page.number, target.url
            )
            tasks.append(self._start(target, kwargs))
            return await _first_answer(tasks)
        finally:
            self._flights.discard(flight)
            woken.cancel()
            if flight.backup is not None:
                ep.moved -= 1
                if len(tasks) == 1:  # a backup was assigned but the answer came first
                    flight.backup.incoming -= 1
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, ep: _Endpoint, kwargs: dict[str, Any]) -> asyncio.Task[_Answer]:
        """Count the request against ``ep`` now, so the next pick sees it, and send it."""
        ep.outstanding += 1
        ep.sent += 1
        return asyncio.ensure_future(self._attempt(ep, kwargs))

    async def _attempt(self, ep: _Endpoint, kwargs: dict[str, Any]) -> _Answer:
        """One HTTP request (counted by :meth:`_start`), then the endpoint's bookkeeping."""
        try:
            answer = await self._call(ep, kwargs)
        except _Retryable as exc:
            self._mark(ep, ok=False, connection_fault=exc.connection)
            raise
        except (_ContextTooLong, _PageFailure):
            self._mark(ep, ok=True)  # the server answered: it is healthy
            raise
        finally:
            ep.outstanding -= 1
            if not any(e.outstanding for e in self._endpoints):
                self._draining = False
            else:
                self._rebalance()
        self._mark(ep, ok=True)
        return answer

    def _rebalance(self) -> None:
        """While draining, give the least loaded live endpoint backup copies of the newest
        requests on the most loaded one until their loads differ by at most one, and an idle
        endpoint a copy of any request still waiting elsewhere. The newest requests are the
        likeliest to be still queued rather than being decoded."""
        if not self._draining or len(self._endpoints) < 2:
            return
        now = time.monotonic()
        while True:
            live = [e for e in self._endpoints if e.down_until <= now]
            if not live:
                return
            idle = min(live, key=lambda e: e.load)
            busiest = max(self._endpoints, key=lambda e: e.load)
            gap = busiest.load - idle.load
            if gap < 1 or (gap == 1 and idle.load > 0):
                return
            waiting = [f for f in self._flights if f.endpoint is busiest and f.backup is None]
            if not waiting:
                return
            flight = max(waiting, key=lambda f: f.started)
            flight.backup = idle
            busiest.moved += 1
            idle.incoming += 1
            flight.wake.set()

    async def _call(self, ep: _Endpoint, kwargs: dict[str, Any]) -> _Answer:
        import openai

        try:
            raw = await ep.client.chat.completions.with_raw_response.create(**kwargs)
            body = raw.http_response.content
        except openai.APITimeoutError as exc:
            raise _Retryable(f"timed out after {self.settings.timeout:.0f} s") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection failed: {_cause(exc)}", connection=True) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = _error_message(exc)
            if status == 429 or status >= 500 or status == 408:
                raise _Retryable(
                    f"HTTP {status}: {message}", delay=_retry_after(exc.response.headers)
                ) from exc
            if status == 400:
                tokens = _prompt_tokens_from_error(message)
                if "context length" in message or "max_tokens" in message or tokens:
                    raise _ContextTooLong(message, tokens) from exc
                raise _PageFailure(f"HTTP 400: {message}", 1) from exc
            raise EndpointError(f"{ep.url} rejected the request: HTTP {status}: {message}") from exc
        except openai.APIError as exc:  # unreadable bodies and other protocol faults
            raise _Retryable(f"bad response ({exc})") from exc
        return parse_completion(body)

    # -- dialect detection ----------------------------------------------------------------

    async def _ensure_dialect(self) -> str:
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


class _ContextTooLong(Exception):
    def __init__(self, message: str, prompt_tokens: int | None) -> None:
        super().__init__(f"context too long: {message}")
        self.prompt_tokens = prompt_tokens


class _PageFailure(Exception):
    """This page cannot succeed (bad request for this image, retries exhausted)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


async def _first_answer(tasks: Sequence[asyncio.Future[_Answer]]) -> _Answer:
    """The first of ``tasks`` to succeed; if all fail, the first one's error."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is None:
                return task.result()
    return await tasks[0]


def _timeout(total: float, connect: float) -> Any:
    """An httpx timeout from whichever httpx the installed openai package uses."""
    import openai

    timeout_cls = getattr(openai, "Timeout", None)
    if timeout_cls is None:
        return total
    return timeout_cls(total, connect=connect)


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the step."""
    return float(min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + random.random()))


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner else str(exc)


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(exc, "message", exc))


def _get_json(url: str, api_key: str | None, timeout: float) -> Any:
    headers = {"Authorization": f"Bearer {api_key or 'EMPTY'}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def detect_dialect(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> str | None:
    """``vllm`` or ``sglang``, from what the server says about itself; ``None`` if unreachable.

    Both list their models with ``owned_by`` set to their own name; failing that, SGLang
    answers ``/get_model_info`` and vLLM ``/version``. A server that answers none of these is
    treated as vLLM (whose request shape is the OpenAI one).
    """
    root = re.sub(r"/v\d+$", "", base_url.rstrip("/"))
    reached = False
    try:
        models = _get_json(f"{base_url.rstrip('/')}/models", api_key, timeout)
        reached = True
        owners = {
            str(m.get("owned_by", "")).lower()
            for m in models.get("data", [])
            if isinstance(m, dict)
        }
        if "sglang" in owners:
            return "sglang"
        if "vllm" in owners:
            return "vllm"
    except Exception as exc:
        reached = reached or _answered(exc)
        log.debug("dialect probe /models failed: %s", exc)
    for path, dialect in (("/get_model_info", "sglang"), ("/version", "vllm")):
        try:
            _get_json(root + path, api_key, timeout)
            return dialect
        except Exception as exc:
            reached = reached or _answered(exc)
            log.debug("dialect probe %s failed: %s", path, exc)
    if not reached:
        return None
    log.warning(
        "could not tell whether %s is vLLM or SGLang; using the vLLM request shape", base_url
    )
    return "vllm"


def _answered(exc: BaseException) -> bool:
    """The server answered (an HTTP error or a bad body), as opposed to being unreachable."""
    import urllib.error

    return isinstance(exc, (urllib.error.HTTPError, ValueError))


def make_endpoint_engine(base_url: str | Sequence[str], **options: Any) -> OpenAICompatEngine:
    """An engine for one URL, a list of URLs, or a comma-separated string of URLs."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    flat = tuple(u.strip() for url in urls for u in url.split(",") if u.strip())
    return OpenAICompatEngine(EndpointSettings(base_urls=flat, **options))


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
