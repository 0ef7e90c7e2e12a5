"""The bounds on a run's work in flight: requests at the engine, pages rendered ahead, and the
reorder window of pages started but not handed out yet; and the count of pages not yet handed
to the engine, which tells the engine when every page is in flight (``drain``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


def result_bytes(result: PageResult) -> int:
    """A rough size of a finished page in memory: its markdown, the blocks' text (about as
    much again), its crops and a fixed overhead for the objects."""
    return 2 * len(result.markdown) + sum(len(c.data) for c in result.crops) + 4096


@dataclass(frozen=True)
class Limits:
    """The bounds on work in flight.

    ``requests``: requests at the engine (``concurrency``). ``prepared``: pages rendered or at
    the engine, so rendering runs a little ahead and no further (images are the big objects).
    ``window``: pages started but not yet handed to the consumer (:class:`Window`), bounded by
    the memory of finished results, so a slow page at the head does not stop the pages behind
    it being sent while they wait their turn to come out in order.
    """

    requests: asyncio.Semaphore
    prepared: asyncio.Semaphore
    window: Window

    @classmethod
    def for_concurrency(cls, concurrency: int) -> Limits:
        ahead = max(2, concurrency // 4)
        return cls(
            asyncio.Semaphore(concurrency),
            asyncio.Semaphore(concurrency + ahead),
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
