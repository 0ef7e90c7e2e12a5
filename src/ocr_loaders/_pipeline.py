"""Orchestration: documents in, page results out, in order, with bounded work in flight.

One async core serves every entry point (the sync ones run it on a private event loop, see
:mod:`ocr_loaders._sync`). Documents open lazily, one after another; their pages render in a
:mod:`~ocr_loaders._rendering` renderer (PyMuPDF is not thread-safe) while up to
``concurrency`` requests are in flight, so rendering overlaps with OCR. The heaviest pages of
the window go first (a guess from the PDF, :mod:`~ocr_loaders._page_weights`), so a dense page
does not end the run; results come out in page order while later pages are still processed.
Memory is bounded by the pages in flight (``concurrency`` plus a small render-ahead window)
and the finished results waiting for their turn, never by document length. This module only
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
import itertools
import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
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
from ._limits import FINISHING, Limits, Tail, count_finished, result_bytes
from ._model import PageImage, PageResult, PageVerification, RawPage, SourceInfo
from ._passwords import password_for
from ._rendering import OpenDocument, Renderer, make_renderer
from ._rendering.crops import CropSettings, crop_zoom, cut_image, page_targets
from ._sources import DocumentSource, Input, describe, resolve_inputs
from ._stats import Failure, StatsAccumulator, Totals
from ._verify import Verifier, flagged_summary

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
    limits: Limits
    tail: Tail
    out: asyncio.Queue[_Queued]
    opened: OpenDocument | None = None
    """The document being queued: open, its :class:`_DocEnd` not queued yet."""
    cutting: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    """One image input's crops cut at a time: each decodes a whole page image (memory)."""
    order: Iterator[int] = field(default_factory=itertools.count)
    """Pages in the order they were started: ties of weight go in page order."""


class Pipeline:
    """Runs a load. ``stats`` holds the run's running totals (see :meth:`run_totals`).

    With ``crops``, each page's blocks of those labels are cropped (``PageResult.crops``),
    pages answered from the cache included (their crops are rendered again; no request).
    ``on_page_done`` (progress bars) is called with each page as soon as it is finished, in
    the order pages finish: heavier pages are sent first, so that order is not page order.
    """

    def __init__(self, options: LoaderOptions, crops: CropSettings | None = None) -> None:
        self.options = options
        self.crops = crops
        self.stats = StatsAccumulator(model=options.model)
        self.verifier = Verifier(
            options.verification, model=options.model, tables=options.chunk.tables
        )
        self._render = replace(options.render, text_layer=self.verifier.reads_layer)
        self._cache: PageCache | None = None
        if options.cache:
            self._cache = PageCache(options.cache_dir, max_bytes=options.cache_max_bytes)
        self.on_page_done: Callable[[PageResult], None] | None = None

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
            Limits.for_concurrency(self.options.concurrency),
            Tail(engine),
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
                        size = result_bytes(result)
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
                    flagged = flagged_summary(item.doc.outline.info.source, current.pages)
                    if flagged:
                        log.warning("%s", flagged)
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
                    task.add_done_callback(functools.partial(count_finished, run.limits.window))
                    task.add_done_callback(self._page_done)
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

    def _page_done(self, task: asyncio.Task[PageResult]) -> None:
        if self.on_page_done is not None and not task.cancelled() and task.exception() is None:
            self.on_page_done(task.result())

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
                image = replace(image, source=info)
                cached = self._result(info, image, raw, engine, cached=True)
                handed()  # no request for this page
                return await self._cropped(run, doc, cached, None)
        key = (-doc.outline.weight(number), next(run.order))  # heaviest first (_page_weights)
        async with run.limits.prepared.hold(key):  # rendered pages waiting for a request are few
            try:
                image = await doc.render(number, self._render, engine.page_hook)
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
                raw, verification = await self.verifier.verify(engine, image, raw)
        result = self._result(info, image, raw, engine, cached=False, verification=verification)
        if self._cache is not None and cache_key is not None and result.page.status != "failed":
            await asyncio.to_thread(self._cache.put, cache_key, _geometry(image), raw)
        return await self._cropped(run, doc, result, image)

    async def _cropped(
        self, run: _Run, doc: OpenDocument, result: PageResult, image: PageImage | None
    ) -> PageResult:
        """``result`` with its crops, when the load wants them. A PDF's are rendered in the
        renderer (just the boxes, at ``figure_dpi`` or the resolution sent), pages from the
        cache too, so a re-run crops exactly as the first; an image input's are cut from the
        image the engine saw (a cached one is decoded again, no request)."""
        settings = self.crops
        targets = page_targets(result.page, settings)
        if settings is None or not targets:
            return result
        number = result.page.number
        try:
            if result.doc.kind == "pdf":
                zoom = crop_zoom(settings, result.page)
                crops = await doc.crop(number, targets, settings, zoom)
            else:
                if image is None:
                    async with run.limits.prepared.hold(FINISHING):
                        image = await doc.render(number, self.options.render, None)
                async with run.cutting:
                    crops = await asyncio.to_thread(cut_image, image.image, targets, settings)
        except PageRenderError as exc:  # the page keeps its text and captions, and no link
            log.warning("%s page %d: figures not cropped (%s)", result.doc.source, number, exc)
            return result
        return replace(result, crops=crops)

    def _result(
        self,
        info: SourceInfo,
        image: PageImage,
        raw: RawPage,
        engine: Engine,
        *,
        cached: bool,
        verification: PageVerification | None = None,
    ) -> PageResult:
        return page_result(
            info,
            image,
            raw,
            engine,
            model=self.options.model,
            tables=self.options.chunk.tables,
            cached=cached,
            verification=verification,
            judge=self.verifier.judge,
        )


def _geometry(image: PageImage) -> PageImage:
    """What the cache keeps of a page image: its geometry and text layer, not its pixels."""
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
