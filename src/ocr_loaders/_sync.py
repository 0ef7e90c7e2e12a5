"""Run the async core from sync code (even inside a running event loop, e.g. Jupyter), and
from async code without leaving its clean-up to the event loop's finalizer.

:func:`iterate`: the async generator runs on a private event loop in a helper thread; items
cross to the caller through a queue with a small credit window, so a slow consumer applies
back-pressure without ever blocking the loop that keeps requests in flight. No
``nest_asyncio``: the caller's loop, if any, is never touched. Closing the sync iterator early
cancels the async work.

:func:`detached`: the async generator runs in a task of its own on the caller's loop, behind a
thin reader. A caller that abandons the reader without closing it (``break`` out of
``async for``) leaves the loop only that reader to finalize, which just cancels the task; the
task's clean-up (requests in flight, open documents, the HTTP client) then runs as an ordinary
task, which ``asyncio.run`` waits for, instead of a half-closed generator the loop drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
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


async def detached(
    make: Callable[[], AsyncGenerator[T, None]], window: int = 4
) -> AsyncGenerator[T, None]:
    """Iterate ``make()`` run in its own task on this loop; errors re-raise here, in order."""
    items: asyncio.Queue[Any] = asyncio.Queue(maxsize=window)

    async def pump() -> None:
        try:
            async with contextlib.aclosing(make()) as agen:
                async for item in agen:
                    await items.put(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # forwarded to the reader, re-raised there
            await items.put(_Failure(exc))
        else:
            await items.put(_DONE)

    task = asyncio.create_task(pump(), name="ocr-loaders-load")
    try:
        while True:
            item = await items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
