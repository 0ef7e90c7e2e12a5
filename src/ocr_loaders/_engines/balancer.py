"""Several base URLs sharing one run's requests.

Each request goes to the live endpoint with the fewest outstanding requests, and a failing one
is backed off while the others carry on; when nothing but connection failures has come back for
``unavailable_after`` seconds, the run stops with :class:`EndpointUnavailableError`.

Once the pipeline says every page is in flight (:meth:`Balancer.drain`), an endpoint left with
spare capacity takes backup copies of the newest requests waiting on a busier one, and whichever
answer comes first is kept: the end of a run is not held up by one endpoint's queue (the
classic backup-task fix for stragglers; vLLM and SGLang abort the losing copy when its
connection closes).

Each endpoint keeps what it taught the run: its context length (listed by ``/v1/models``, or
learned from a refusal; every request's ``max_tokens`` is sized for the endpoint it goes to),
and, for SGLang without ``--enable-custom-logit-processor``, that it takes no n-gram guard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import EndpointUnavailableError
from .settings import EndpointSettings
from .wire import Answer, ContextTooLong, GuardRefused, PageFailure, Retryable, Sizing, complete

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Endpoint:
    url: str
    client: AsyncOpenAI
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


class Balancer:
    """The endpoints of one engine: their clients, loads and health.

    Clients are made on first use, on the loop that runs the requests, and dropped by
    :meth:`aclose`, so the next run makes fresh ones.
    """

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self._endpoints: list[_Endpoint] = []
        self._failing_since: float | None = None
        self._flights: set[_Flight] = set()
        self._draining = False
        self._limits: dict[str, int] = {}
        """Context length per URL, when listed or learned (else the settings' assumption)."""
        self._unguarded: set[str] = set()
        """URLs that refused the SGLang n-gram guard: it is no longer sent there."""
        self.backups_sent = 0
        """Backup copies sent so far (see :meth:`drain`)."""

    def set_listed(self, url: str, max_model_len: int) -> None:
        """The context ``url`` lists in ``/v1/models`` (the settings' value if smaller)."""
        self._limits[url] = min(self.settings.max_model_len, max_model_len)

    def max_model_len(self, url: str) -> int:
        """The context assumed for ``url``: listed, learned, or the settings' (8192)."""
        return self._limits.get(url, self.settings.max_model_len)

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

    async def send(self, request: dict[str, Any], label: str, sizing: Sizing) -> Answer:
        """One try of ``request`` on the least loaded endpoint, its ``max_tokens`` set by
        ``sizing`` for that endpoint's context. If it gets a backup copy (:meth:`_rebalance`)
        while waiting, the first good answer of the two wins and the other is cancelled.
        ``label`` names the page in logs."""
        ep = self._pick()
        flight = _Flight(ep, time.monotonic())
        primary = self._start(ep, request, sizing)
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
            log.debug("%s: backup copy sent to %s", label, target.url)
            tasks.append(self._start(target, request, sizing))
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

    def check_unavailable(self) -> None:
        """Raise :class:`EndpointUnavailableError` once connection failures alone have lasted
        longer than ``unavailable_after``."""
        if (
            self._failing_since is not None
            and time.monotonic() - self._failing_since > self.settings.unavailable_after
        ):
            raise EndpointUnavailableError(
                f"cannot reach the OCR server at {self._urls()} (no answer for "
                f"{self.settings.unavailable_after:.0f} s); is it running?"
            )

    def unreachable(self, tries: int, last_error: str) -> EndpointUnavailableError:
        """The error for a request whose every try failed to connect (counted as failing)."""
        self._failing_since = self._failing_since or time.monotonic()
        return EndpointUnavailableError(
            f"cannot reach the OCR server at {self._urls()} after {tries} tries "
            f"({last_error}); is it running?"
        )

    # -- picking and bookkeeping ---------------------------------------------------------

    def _urls(self) -> str:
        return ", ".join(self.settings.base_urls)

    def _make_clients(self) -> None:
        if self._endpoints:
            return
        import openai

        s = self.settings
        for url in s.base_urls:
            client = openai.AsyncOpenAI(
                base_url=url,
                api_key=s.api_key or "EMPTY",
                max_retries=0,
                timeout=openai.Timeout(s.timeout, connect=s.connect_timeout),
            )
            self._endpoints.append(_Endpoint(url=url, client=client))

    def _pick(self) -> _Endpoint:
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

    def _start(
        self, ep: _Endpoint, request: dict[str, Any], sizing: Sizing
    ) -> asyncio.Task[Answer]:
        """Count the request against ``ep`` now, so the next pick sees it, and send it."""
        ep.outstanding += 1
        ep.sent += 1
        return asyncio.ensure_future(self._attempt(ep, request, sizing))

    def _prepare(self, url: str, request: dict[str, Any], sizing: Sizing) -> dict[str, Any]:
        """``request`` as ``url`` takes it: ``max_tokens`` for its context, and no SGLang
        guard where it was refused."""
        prepared = {**request, "max_tokens": sizing.max_tokens(self.max_model_len(url))}
        extra = request.get("extra_body")
        if url in self._unguarded and isinstance(extra, dict):
            prepared["extra_body"] = {
                k: v
                for k, v in extra.items()
                if k not in ("custom_logit_processor", "custom_params")
            }
        return prepared

    def _learn(self, url: str, exc: ContextTooLong, sent: int) -> None:
        """Remember the context a refusal named (never more than assumed before)."""
        exc.sent = sent
        if exc.limit is not None and exc.limit < self.max_model_len(url):
            self._limits[url] = exc.limit
            log.info(
                "ocr_loaders: %s has a %d-token context (learned from a refusal); "
                "max_tokens is sized for it from now on",
                url,
                exc.limit,
            )

    def _refuse_guard(self, url: str) -> None:
        """Stop sending the SGLang guard to ``url``, with one warning."""
        if url in self._unguarded:
            return
        self._unguarded.add(url)
        log.warning(
            "ocr_loaders: %s (SGLang) refused the n-gram repetition guard: it runs without "
            "--enable-custom-logit-processor. Pages are sent without the guard for the rest "
            "of the run, so a page that loops runs to max_tokens before it is retried; start "
            "the server with --enable-custom-logit-processor to use it",
            url,
        )

    async def _complete(self, ep: _Endpoint, request: dict[str, Any], sizing: Sizing) -> Answer:
        """One request to ``ep``, resent at once without the guard if SGLang refuses it."""
        prepared = self._prepare(ep.url, request, sizing)
        try:
            return await complete(
                ep.client, prepared, ep.url, self.settings.timeout, stream=self.settings.stream
            )
        except GuardRefused:
            self._refuse_guard(ep.url)
        except ContextTooLong as exc:
            self._learn(ep.url, exc, int(prepared["max_tokens"]))
            raise
        prepared = self._prepare(ep.url, request, sizing)
        try:
            return await complete(
                ep.client, prepared, ep.url, self.settings.timeout, stream=self.settings.stream
            )
        except ContextTooLong as exc:
            self._learn(ep.url, exc, int(prepared["max_tokens"]))
            raise
        except GuardRefused as exc:  # no guard was sent: not a fault the client can mend
            raise PageFailure(f"HTTP 400: {exc}", 1) from exc

    async def _attempt(self, ep: _Endpoint, request: dict[str, Any], sizing: Sizing) -> Answer:
        """One HTTP request (counted by :meth:`_start`), then the endpoint's bookkeeping."""
        try:
            answer = await self._complete(ep, request, sizing)
        except Retryable as exc:
            self._mark(ep, ok=False, connection_fault=exc.connection)
            raise
        except (ContextTooLong, PageFailure):
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


async def _first_answer(tasks: Sequence[asyncio.Future[Answer]]) -> Answer:
    """The first of ``tasks`` to succeed; if all fail, the first one's error."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is None:
                return task.result()
    return await tasks[0]


__all__ = ["Balancer"]
