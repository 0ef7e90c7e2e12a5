"""Capacity simulation of the fake server: a GPU's slots, a first-come first-served queue,
service times with jitter, and waits that end when the server stops or the client leaves
(vLLM and SGLang abort the requests of clients that went away)."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .plumbing import Dropped


class SlotPool:
    """At most ``n`` requests in service at once; the rest wait in arrival order (FCFS)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self.busy = 0
        self.max_busy = 0
        self.max_waiting = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, stop: threading.Event, gone: Callable[[], bool] = bool) -> bool:
        """Take a slot (``True``), or give up (``False``) because the server is stopping or
        the client went away while queued (``gone()``: vLLM aborts such requests)."""
        with self._lock:
            if self.busy < self.n and not self._waiters:
                self.busy += 1
                self.max_busy = max(self.max_busy, self.busy)
                return True
            ticket = threading.Event()
            self._waiters.append(ticket)
            self.max_waiting = max(self.max_waiting, len(self._waiters))
        while not ticket.wait(0.05):
            if stop.is_set() or gone():
                break
        with self._lock:
            if ticket.is_set():  # the slot was handed over by release()
                if stop.is_set():
                    self._release_locked()
                    return False
                return True
            self._waiters.remove(ticket)
            return False

    def _release_locked(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # hand the slot over; busy is unchanged
        else:
            self.busy -= 1

    def release(self) -> None:
        with self._lock:
            self._release_locked()

    def reset_stats(self) -> None:
        with self._lock:
            self.max_busy = self.busy
            self.max_waiting = len(self._waiters)


class Capacity:
    """The simulated GPU: ``slots`` requests in service at once (``None``: unlimited), and
    the clock requests are served by. ``stopping`` is the server's stop signal."""

    def __init__(self, slots: int | None, stopping: threading.Event, seed: int) -> None:
        self.pool = SlotPool(slots) if slots is not None else None
        self._stopping = stopping
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def jittered(self, seconds: float, jitter: float) -> float:
        """``seconds`` drawn uniformly from ``seconds * (1 +/- jitter)`` (same mean)."""
        if not jitter:
            return seconds
        with self._lock:
            return seconds * (1 + self._rng.uniform(-jitter, jitter))

    def wait(self, seconds: float, gone: Callable[[], bool] | None = None) -> None:
        """Sleep, but wake up and drop the request if the server stops or, when ``gone`` is
        given, if the client disconnects (checked every 50 ms)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._stopping.wait(left if gone is None else min(left, 0.05)):
                raise Dropped("server stopping")
            if gone is not None and gone():
                raise Dropped("client disconnected")

    @contextmanager
    def slot(self, gone: Callable[[], bool]) -> Iterator[None]:
        """Hold a slot for the block, queued first if none is free; a client that leaves
        while queued, or a server that stops, drops the request."""
        pool = self.pool
        if pool is not None and not pool.acquire(self._stopping, gone):
            raise Dropped("server stopping" if self._stopping.is_set() else "client disconnected")
        try:
            yield
        finally:
            if pool is not None:
                pool.release()

    @property
    def busy(self) -> int:
        """Slots held now (0 without slots)."""
        return self.pool.busy if self.pool else 0

    @property
    def max_busy(self) -> int:
        return self.pool.max_busy if self.pool else 0

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return self.pool.waiting if self.pool else 0

    @property
    def max_waiting(self) -> int:
        return self.pool.max_waiting if self.pool else 0

    def reset_stats(self) -> None:
        if self.pool:
            self.pool.reset_stats()
