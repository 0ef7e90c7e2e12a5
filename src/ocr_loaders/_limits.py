"""The bounds on a run's work in flight: requests at the engine, pages rendered ahead, and the
reorder window of pages started but not handed out yet; and the count of pages not yet handed
to the engine, which tells the engine when every page is in flight (``drain``)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ._engines.base import Engine
from ._model import PageResult

RESULT_BYTES_BUDGET = 64 * 2**20
"""Finished results waiting for an earlier page, at most (an estimate of their size)."""

WINDOW_PAGES = 4096
"""Pages started but not yet handed out, at most: a started page that is not rendered yet is
only a suspended task (a few KB), so this bounds bookkeeping, not images."""


class Window:
    """The reorder window: pages started but not yet handed to the consumer, in order.

    Bounded by what it costs in memory, not by a small page count: a page waiting for a render
    slot costs nothing, and a finished result is small text (its size is estimated by
    :func:`result_bytes`). So a slow or retried page at the head, which holds back the pages
    after it, stops new pages from being started only once the finished results behind it
    reach ``max_bytes``; images stay bounded by ``prepared`` (see :class:`Limits`). The next
    document opens only once fewer than ``open_below`` pages are in the window, so a folder of
    small files does not hold thousands of documents open ahead of the consumer.
    """

    def __init__(self, max_pages: int, max_bytes: int, open_below: int) -> None:
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self.open_below = open_below
        self.pages = 0
        self.held = 0
        """Estimated bytes of finished results not handed out yet."""
        self._room = asyncio.Event()

    def _full(self) -> bool:
        return self.pages >= self.max_pages or self.held >= self.max_bytes

    async def enter(self) -> None:
        """Wait for room, then count one more page started."""
        while self._full():
            self._room.clear()
            await self._room.wait()
        self.pages += 1

    async def ready_to_open(self) -> None:
        """Wait until fewer than ``open_below`` pages are in the window."""
        while self.pages >= self.open_below:
            self._room.clear()
            await self._room.wait()

    def finished(self, size: int) -> None:
        """A page in the window has a result of about ``size`` bytes, not handed out yet."""
        self.held += size

    def leave(self, size: int) -> None:
        """A page was handed out (``size``: what :meth:`finished` counted, or 0)."""
        self.pages -= 1
        self.held -= size
        self._room.set()


Key = tuple[int, ...]
"""Admission order of a waiter in :class:`Slots`: lowest first."""
FINISHING: Key = (-(2**62),)
"""The key of a page that has its answer and needs its image again (crops): before any other."""


class Slots:
    """A semaphore that admits its waiters by key, lowest first, instead of in arrival order.

    The pipeline starts every page of the reorder window at once and they wait here for a
    render slot; keyed by ``(-weight, order)`` the heaviest pages go first
    (``_page_weights``), so a dense page is not sent last and the run does not end on it.
    Pages of equal weight (all of them when weights are unknown) go in page order.
    """

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiting: list[tuple[Key, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        """Wait for a slot in key order, hold it for the block."""
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, key: Key) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (key, next(self._arrivals), admitted))
        try:
            await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled():
                self.release()  # admitted, then cancelled before it could run: pass it on
            raise

    def release(self) -> None:
        """Free a slot: the lowest-keyed waiter still waiting gets it."""
        while self._waiting:
            _key, _n, admitted = heapq.heappop(self._waiting)
            if not admitted.done():  # a cancelled waiter's future is done: skip it
                admitted.set_result(None)
                return
        self._free += 1


def result_bytes(result: PageResult) -> int:
    """A rough size of a finished page in memory: its markdown, the blocks' text (about as
    much again), its crops and a fixed overhead for the objects."""
    return 2 * len(result.markdown) + sum(len(c.data) for c in result.crops) + 4096


@dataclass(frozen=True)
class Limits:
    """The bounds on work in flight.

    ``requests``: requests at the engine (``concurrency``). ``prepared``: pages rendered or at
    the engine, so rendering runs a little ahead and no further (images are the big objects);
    it admits the heaviest waiting pages first (:class:`Slots`).
    ``window``: pages started but not yet handed to the consumer (:class:`Window`), bounded by
    the memory of finished results, so a slow page at the head does not stop the pages behind
    it being sent while they wait their turn to come out in order.
    """

    requests: asyncio.Semaphore
    prepared: Slots
    window: Window

    @classmethod
    def for_concurrency(cls, concurrency: int) -> Limits:
        ahead = max(2, concurrency // 4)
        return cls(
            asyncio.Semaphore(concurrency),
            Slots(concurrency + ahead),
            Window(
                max(WINDOW_PAGES, 4 * concurrency + ahead),
                RESULT_BYTES_BUDGET,
                open_below=4 * concurrency + ahead,
            ),
        )


@dataclass
class Tail:
    """Counts pages not yet handed to the engine. Once the producer is done and none are left,
    it calls the engine's ``drain()``, so the last pages can use capacity that would
    otherwise sit idle."""

    engine: Engine
    pending: int = 0
    closed: bool = False

    def add(self) -> Callable[[], None]:
        """Count one page; the returned function marks it handed over (later calls do nothing)."""
        self.pending += 1
        handed = False

        def settle() -> None:
            nonlocal handed
            if not handed:
                handed = True
                self.pending -= 1
                self._check()

        return settle

    def close(self) -> None:
        self.closed = True
        self._check()

    def _check(self) -> None:
        if self.closed and self.pending == 0:
            self.engine.drain()


def count_finished(window: Window, task: asyncio.Task[PageResult]) -> None:
    """Count a finished page's result in the window until the consumer takes it."""
    if not task.cancelled() and task.exception() is None:
        window.finished(result_bytes(task.result()))
