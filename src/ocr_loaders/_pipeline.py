"""Orchestration: documents in, page results out, in order, with bounded work in flight.

One async core serves every entry point (the sync ones run it on a private event loop, see
:mod:`ocr_loaders._sync`). Documents open lazily, one after another; their pages render in a
:mod:`~ocr_loaders._rendering` renderer (PyMuPDF is not thread-safe) while up to
``concurrency`` requests are in flight, so rendering overlaps with OCR. Results come out in page
order while later pages are still being processed; memory is bounded by the pages in flight
(``concurrency`` plus a small render-ahead window), never by document length. This module only
schedules: pages assemble in :mod:`~ocr_loaders._assemble`, the cache is
:mod:`~ocr_loaders._cache`.

Events, in order: :class:`DocumentStarted`, one :class:`~ocr_loaders._model.PageResult` per
selected page, :class:`DocumentFinished` (with the document's totals); or
:class:`DocumentFailed` for an input that cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from ._assemble import failed_answer, failed_page_image, page_result
from ._cache import PageCache, page_key
from ._config import LoaderOptions
from ._engines.base import Engine
from ._engines.select import make_engine
from ._errors import (
    ConfigError,
    EngineError,
    InputError,
    OCRLoadersError,
    PageFailedError,
    PageRenderError,
)
from ._model import PageImage, PageResult, RawPage, SourceInfo
from ._passwords import password_for
from ._rendering import OpenDocument, Renderer, make_renderer
from ._sources import DocumentSource, Input, describe, resolve_inputs
from ._stats import Failure, StatsAccumulator, Totals

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DocumentStarted:
    info: SourceInfo
    pages: tuple[int, ...]
    """The selected 1-based page numbers, in order."""


@dataclass(frozen=True, slots=True)
class DocumentFinished:
    info: SourceInfo
    totals: Totals


@dataclass(frozen=True, slots=True)
class DocumentFailed:
    source: str
    error: OCRLoadersError


Event = DocumentStarted | PageResult | DocumentFinished | DocumentFailed

Inputs = Input | Sequence[Input] | Sequence[DocumentSource]
"""What a load takes: paths, folders, globs, bytes, file objects, or resolved sources."""


def as_sources(inputs: Inputs) -> list[DocumentSource]:
    """The documents of a load, in order (raises for a missing path, see ``resolve_inputs``)."""
    if (
        isinstance(inputs, (list, tuple))
        and inputs
        and all(isinstance(i, DocumentSource) for i in inputs)
    ):
        return list(cast(Sequence[DocumentSource], inputs))
    return resolve_inputs(cast(Input | Sequence[Input], inputs))


def file_failure(event: DocumentFailed) -> Failure:
    """The :class:`~ocr_loaders._stats.Failure` of an input that could not be read."""
    error = event.error
    reason = error.reason if isinstance(error, InputError) else str(error)
    return Failure(event.source, None, reason, type(error).__name__)


RESULT_BYTES_BUDGET = 64 * 2**20
"""Finished results waiting for an earlier page, at most (an estimate of their size)."""

WINDOW_PAGES = 4096
"""Pages started but not yet handed out, at most: a started page that is not rendered yet is
only a suspended task (a few KB), so this bounds bookkeeping, not images."""


class _Window:
    """The reorder window: pages started but not yet handed to the consumer, in order.

    Bounded by what it costs in memory, not by a small page count: a page waiting for a render
    slot costs nothing, and a finished result is small text (its size is estimated by
    :func:`_result_bytes`). So a slow or retried page at the head, which holds back the pages
    after it, stops new pages from being started only once the finished results behind it
    reach ``max_bytes``; images stay bounded by ``prepared`` (see :class:`_Limits`). The next
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


def _result_bytes(result: PageResult) -> int:
    """A rough size of a finished page in memory: its markdown, the blocks' text (about as
    much again) and a fixed overhead for the objects."""
    return 2 * len(result.markdown) + 4096


@dataclass(frozen=True)
class _Limits:
    """The bounds on work in flight.

    ``requests``: requests at the engine (``concurrency``). ``prepared``: pages rendered or at
    the engine, so rendering runs a little ahead and no further (images are the big objects).
    ``window``: pages started but not yet handed to the consumer (:class:`_Window`), bounded by
    the memory of finished results, so a slow page at the head does not stop the pages behind
    it being sent while they wait their turn to come out in order.
    """

    requests: asyncio.Semaphore
    prepared: asyncio.Semaphore
    window: _Window

    @classmethod
    def for_concurrency(cls, concurrency: int) -> _Limits:
        ahead = max(2, concurrency // 4)
        return cls(
            asyncio.Semaphore(concurrency),
            asyncio.Semaphore(concurrency + ahead),
            _Window(
                max(WINDOW_PAGES, 4 * concurrency + ahead),
                RESULT_BYTES_BUDGET,
                open_below=4 * concurrency + ahead,
            ),
        )


@dataclass
class _Tail:
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


# --- what the producer queues for the consumer, in order -------------------------------------


@dataclass(frozen=True, slots=True)
class _DocEnd:
    """Every page of ``doc`` has been queued."""

    doc: OpenDocument


@dataclass(frozen=True, slots=True)
class _Crashed:
    """The producer failed unexpectedly; the consumer re-raises ``error``."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class _Done:
    """Every input has been queued."""


_Queued = DocumentStarted | DocumentFailed | asyncio.Task[PageResult] | _DocEnd | _Crashed | _Done


@dataclass
class _Run:
    """What one call of :meth:`Pipeline.events` works with."""

    engine: Engine
    renderer: Renderer
    limits: _Limits
    tail: _Tail
    out: asyncio.Queue[_Queued]
    opened: OpenDocument | None = None
    """The document being queued: open, its :class:`_DocEnd` not queued yet."""


class Pipeline:
    """Runs a load. ``stats`` holds the run's running totals (see :meth:`run_totals`)."""

    def __init__(self, options: LoaderOptions) -> None:
        self.options = options
        self.stats = StatsAccumulator(model=options.model)
        self._cache: PageCache | None = None
        if options.cache:
            self._cache = PageCache(options.cache_dir, max_bytes=options.cache_max_bytes)

    def run_totals(self) -> Totals:
        """Totals of everything processed so far by this pipeline."""
        return self.stats.totals()

    async def events(self, inputs: Inputs) -> AsyncGenerator[Event, None]:
        """Process inputs; yield events in document and page order."""
        sources = as_sources(inputs)
        engine = make_engine(self.options)
        self.stats.engine = engine.name
        self.stats.model = engine.model
        run = _Run(
            engine,
            make_renderer(self.options),
            _Limits.for_concurrency(self.options.concurrency),
            _Tail(engine),
            asyncio.Queue(),
        )
        producer = asyncio.create_task(self._produce(sources, run))
        current = StatsAccumulator(engine=engine.name, model=engine.model)
        try:
            while True:
                item = await run.out.get()
                if isinstance(item, _Done):
                    break
                if isinstance(item, asyncio.Task):
                    size = 0
                    try:
                        result = await item
                        size = _result_bytes(result)
                    finally:
                        run.limits.window.leave(size)
                    self.stats.add(result.stats)
                    current.add(result.stats)
                    if result.page.status == "failed":
                        page = result.page
                        failure = Failure(result.doc.source, page.number, page.error)
                        self.stats.failures.append(failure)
                        current.failures.append(failure)
                        if self.options.on_error == "raise":
                            raise PageFailedError(page.error, path=failure.source, page=page.number)
                    yield result
                elif isinstance(item, DocumentStarted):
                    current = StatsAccumulator(engine=engine.name, model=engine.model)
                    yield item
                elif isinstance(item, _DocEnd):
                    await item.doc.close()
                    self.stats.documents += 1
                    yield DocumentFinished(item.doc.outline.info, current.totals())
                elif isinstance(item, DocumentFailed):
                    self.stats.documents_failed += 1
                    self.stats.failures.append(file_failure(item))
                    yield item
                else:
                    raise item.error
        finally:
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer
            await _discard(run.out)
            if run.opened is not None:  # stopped mid-document: nothing queued closes it
                with contextlib.suppress(BaseException):
                    await run.opened.close()
            run.renderer.shutdown()
            if self.options.engine is None or self.options.engine == "vllm":  # made here
                await engine.aclose()

    async def _produce(self, sources: list[DocumentSource], run: _Run) -> None:
        try:
            for src in sources:
                await run.limits.window.ready_to_open()
                try:
                    doc = run.opened = await self._open(run.renderer, src)
                except (InputError, ConfigError) as exc:
                    await run.out.put(DocumentFailed(src.name, exc))
                    continue
                try:
                    numbers = doc.outline.page_numbers(self.options.pages)
                except ConfigError as exc:
                    run.opened = None
                    await doc.close()
                    await run.out.put(DocumentFailed(src.name, exc))
                    continue
                await run.out.put(DocumentStarted(doc.outline.info, tuple(numbers)))
                for number in numbers:
                    await run.limits.window.enter()
                    task = asyncio.create_task(self._page(run, doc, number, run.tail.add()))
                    task.add_done_callback(functools.partial(_count_finished, run.limits.window))
                    await run.out.put(task)
                await run.out.put(_DocEnd(doc))
                run.opened = None
            run.tail.close()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surface unexpected errors to the consumer
            await run.out.put(_Crashed(exc))
            return
        await run.out.put(_Done())

    def _manifests(self, password: str | None) -> PageCache | None:
        """The cache, where document manifests may be used: never with a password, so an
        encrypted PDF is always opened and a wrong password still fails."""
        return self._cache if password is None else None

    def page_count(self, src: DocumentSource) -> int:
        """Selected pages of one input (0 if it cannot be read), for progress bars."""
        try:
            password = password_for(self.options.password, src)
            manifests = self._manifests(password)
            outline = manifests.document(src) if manifests is not None else None
            if outline is None:
                outline = describe(src, password)
        except OCRLoadersError:
            return 0
        return len(self.options.pages.numbers(outline.page_count))

    async def _open(self, renderer: Renderer, src: DocumentSource) -> OpenDocument:
        """Open an input in the renderer; a cached document's outline comes from the cache."""
        password = password_for(self.options.password, src)
        manifests = self._manifests(password)
        if manifests is not None:
            outline = await asyncio.to_thread(manifests.document, src)
            if outline is not None:
                return await renderer.adopt(src, password, outline)
        doc = await renderer.open(src, password)
        if manifests is not None:
            await asyncio.to_thread(manifests.remember_document, doc.outline)
        return doc

    async def _page(
        self, run: _Run, doc: OpenDocument, number: int, handed: Callable[[], None]
    ) -> PageResult:
        """One page; ``handed`` is called when it reaches the engine, or when it ends
        without needing to (cached, unrenderable, cancelled)."""
        try:
            return await self._process(run, doc, number, handed)
        finally:
            handed()

    async def _process(
        self, run: _Run, doc: OpenDocument, number: int, handed: Callable[[], None]
    ) -> PageResult:
        """Render, OCR, parse and account for one page; a failure becomes a failed page."""
        engine, info = run.engine, doc.outline.info
        cache_key = None
        if self._cache is not None:
            cache_key = page_key(info.doc_hash, number, self.options.render, engine.cache_identity)
            hit = await asyncio.to_thread(self._cache.get, cache_key)
            if hit is not None:
                image, raw = hit
                return self._result(info, replace(image, source=info), raw, engine, cached=True)
        async with run.limits.prepared:  # rendered pages waiting for a request slot are few
            try:
                image = await doc.render(number, self.options.render, engine.page_hook)
            except PageRenderError as exc:  # logged with the other failed pages (ocr_loaders._run)
                image = failed_page_image(doc.outline, number)
                raw = failed_answer(engine, exc.reason)
                return self._result(info, image, raw, engine, cached=False)
            async with run.limits.requests:
                handed()
                try:
                    raw = await engine.recognize(image)
                except EngineError:
                    raise
                except Exception as exc:  # an engine bug must not lose the page silently
                    log.exception("%s page %d: engine failed", info.source, number)
                    raw = failed_answer(engine, f"{type(exc).__name__}: {exc}")
        result = self._result(info, image, raw, engine, cached=False)
        if self._cache is not None and cache_key is not None and result.page.status != "failed":
            await asyncio.to_thread(self._cache.put, cache_key, _geometry(image), raw)
        return result

    def _result(
        self, info: SourceInfo, image: PageImage, raw: RawPage, engine: Engine, *, cached: bool
    ) -> PageResult:
        return page_result(
            info,
            image,
            raw,
            engine,
            model=self.options.model,
            tables=self.options.chunk.tables,
            cached=cached,
        )


def _count_finished(window: _Window, task: asyncio.Task[PageResult]) -> None:
    """Count a finished page's result in the window until the consumer takes it."""
    if not task.cancelled() and task.exception() is None:
        window.finished(_result_bytes(task.result()))


def _geometry(image: PageImage) -> PageImage:
    """What the cache keeps of a page image: its geometry, not its pixels."""
    return replace(image, image=b"", hint=None)


async def _discard(out: asyncio.Queue[_Queued]) -> None:
    """Cancel the pages and close the documents still queued when a run stops early."""
    while not out.empty():
        leftover = out.get_nowait()
        if isinstance(leftover, asyncio.Task):
            leftover.cancel()
            with contextlib.suppress(BaseException):
                await leftover
        elif isinstance(leftover, _DocEnd):
            with contextlib.suppress(BaseException):
                await leftover.doc.close()
