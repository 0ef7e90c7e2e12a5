"""Run the async core from sync code, even inside a running event loop (Jupyter).

The async generator runs on a private event loop in a helper thread; items cross to the caller
through a queue with a small credit window, so a slow consumer applies back-pressure without
ever blocking the loop that keeps requests in flight. No ``nest_asyncio``: the caller's loop,
if any, is never touched. Closing the sync iterator early cancels the async work.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def iterate(make: Callable[[], AsyncIterator[T]], window: int = 4) -> Iterator[T]:
    """Iterate an async generator from sync code; items arrive as they are produced."""
    items: queue.Queue[Any] = queue.Queue()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def pump() -> None:
        credits = asyncio.Semaphore(window)
        state["credits"] = credits
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        agen = make()
        try:
            async for item in agen:
                await credits.acquire()
                items.put(item)
        except BaseException as exc:  # forwarded to the consumer, re-raised there
            items.put(_Failure(exc))
        else:
            items.put(_DONE)
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):  # the first error was forwarded
                    await aclose()

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(pump())
            state["task"] = task
            loop.run_until_complete(task)
        except BaseException as exc:
            items.put(_Failure(exc))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                ready.set()

    thread = threading.Thread(target=run, name="ocr-loaders-loop", daemon=True)
    thread.start()
    ready.wait()
    finished = False
    try:
        while True:
            item = items.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, _Failure):
                finished = True
                if isinstance(item.exc, asyncio.CancelledError):
                    return
                raise item.exc
            loop = state.get("loop")
            credits = state.get("credits")
            if loop is not None and credits is not None and not loop.is_closed():
                loop.call_soon_threadsafe(credits.release)
            yield item
    finally:
        if not finished:
            loop = state.get("loop")
            task = state.get("task")
            if loop is not None and task is not None and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        thread.join()
