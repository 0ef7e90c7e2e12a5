"""Orchestration: documents in, page results out, in order, with bounded work in flight.

One async core serves every entry point (the sync ones run it on a private event loop, see
:mod:`ocr_loaders._sync`). Documents open lazily, one after another; their pages render in a
dedicated worker (PyMuPDF is not thread-safe) while up to ``concurrency`` requests are in
flight, so rendering overlaps with OCR. Results come out in page order while later pages are
still being processed; memory is bounded by the pages in flight (``concurrency`` plus a small
render-ahead window), never by document length.

Events, in order: :class:`DocumentStarted`, one :class:`~ocr_loaders.model.PageResult` per
selected page, :class:`DocumentFinished` (with the document's totals); or
:class:`DocumentFailed` for an input that cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, cast

from .cache import PageCache, page_key
from .config import LoaderOptions
from .engines.base import Engine, PageHook
from .engines.select import make_engine
from .errors import (
    ConfigError,
    EngineError,
    InputError,
    OCRLoadersError,
    PageFailedError,
    PageRenderError,
)
from .grounding import default_image_link, parse_page, to_markdown
from .model import Page, PageImage, PageResult, PageStats, PageStatus, RawPage, SourceInfo
from .render import RenderSettings
from .sources import (
    DocumentSource,
    Input,
    OpenDocument,
    hash_source,
    open_document,
    resolve_inputs,
    source_info,
)
from .stats import StatsAccumulator, Totals, page_stats

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


class ThreadRenderer:
    """Owns open documents and renders their pages on one dedicated thread (no timeout)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocr-loaders-render")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self, src: DocumentSource, password: str | None) -> OpenDocument:
        doc: OpenDocument = await self._run(open_document, src, password)
        return doc

    async def render(
        self, doc: OpenDocument, number: int, settings: RenderSettings, hook: PageHook | None
    ) -> PageImage:
        image: PageImage = await self._run(doc.render, number, settings, hook)
        return image

    async def close(self, doc: OpenDocument) -> None:
        await self._run(doc.close)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


Renderer = Any
"""``ThreadRenderer`` or :class:`~ocr_loaders.workers.ProcessRenderer` (same methods)."""


def make_renderer(options: LoaderOptions) -> Renderer:
    """Render in worker processes (default) or on a thread when ``render_workers == 0``."""
    if options.render_workers == 0:
        return ThreadRenderer()
    from .workers import ProcessRenderer, shared_pool

    return ProcessRenderer(shared_pool(options.render_workers), options.render_timeout)


def build_page(image: PageImage, raw: RawPage) -> Page:
    """Parse an engine's answer into a :class:`Page` and decide how the page ended."""
    parsed = parse_page(raw.text, raw.finish_reason)
    status: PageStatus = "ok"
    error = raw.error
    if raw.error and not parsed.blocks:
        status = "failed"
    elif parsed.loop is not None or raw.finish_reason == "length":
        status = "truncated"
        if not error:
            error = "repetition loop cut" if parsed.loop is not None else "output hit max_tokens"
    return Page(
        number=image.number,
        label=image.label,
        width=image.width,
        height=image.height,
        image_width=image.image_width,
        image_height=image.image_height,
        blocks=parsed.blocks,
        raw_text=raw.text,
        status=status,
        error=error if status != "ok" else "",
        loop_cut=parsed.loop is not None,
        downscaled=image.downscaled,
    )


def failed_page_image(doc: Any, number: int) -> PageImage:
    """A placeholder for a page that could not be rendered: no pixels, no vision tokens."""
    return PageImage(
        source=doc.info,
        number=number,
        label=doc.label(number),
        width=0.0,
        height=0.0,
        image=b"",
        mime="",
        image_width=0,
        image_height=0,
    )


@dataclass(frozen=True)
class _Limits:
    """The three bounds on work in flight.

    ``requests``: requests at the engine (``concurrency``). ``prepared``: pages rendered or at
    the engine, so rendering runs a little ahead and no further (images are the big objects).
    ``window``: pages started but not yet handed to the consumer; finished pages are small, so
    it is generous, and a slow page does not stall the requests behind it while the pages
    that finished after it wait their turn to come out in order.
    """

    requests: asyncio.Semaphore
    prepared: asyncio.Semaphore
    window: asyncio.Semaphore

    @classmethod
    def for_concurrency(cls, concurrency: int) -> _Limits:
        ahead = max(2, concurrency // 4)
        return cls(
            asyncio.Semaphore(concurrency),
            asyncio.Semaphore(concurrency + ahead),
            asyncio.Semaphore(4 * concurrency + ahead),
        )


@dataclass
class _Tail:
    """Counts pages not yet handed to the engine. Once the producer is done and none are left,
    it calls the engine's ``drain()`` (see :mod:`ocr_loaders.engines.base`), so the
    last pages can use capacity that would otherwise sit idle."""

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


@dataclass(frozen=True, slots=True)
class _DocEnd:
    """Marker: every page of ``doc`` has been queued."""

    doc: Any


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

    async def events(
        self, inputs: Input | Sequence[Input] | Sequence[DocumentSource]
    ) -> AsyncIterator[Event]:
        """Process inputs; yield events in document and page order."""
        if (
            isinstance(inputs, (list, tuple))
            and inputs
            and all(isinstance(i, DocumentSource) for i in inputs)
        ):
            sources: list[DocumentSource] = list(cast(Sequence[DocumentSource], inputs))
        else:
            sources = resolve_inputs(cast(Input | Sequence[Input], inputs))
        engine = make_engine(self.options)
        self.stats.engine = engine.name
        self.stats.model = engine.model
        worker = make_renderer(self.options)
        out: asyncio.Queue[Any] = asyncio.Queue()
        limits = _Limits.for_concurrency(self.options.concurrency)
        slots = limits.window
        tail = _Tail(engine)
        producer = asyncio.create_task(self._produce(sources, engine, worker, out, limits, tail))
        current = StatsAccumulator(engine=engine.name, model=engine.model)
        try:
            while True:
                item = await out.get()
                if item is None:
                    break
                if isinstance(item, asyncio.Future):
                    try:
                        result: PageResult = await item
                    finally:
                        slots.release()
                    self.stats.add(result.stats)
                    current.add(result.stats)
                    if result.page.status == "failed" and self.options.on_error == "raise":
                        raise PageFailedError(
                            result.page.error, path=result.doc.source, page=result.page.number
                        )
                    yield result
                elif isinstance(item, DocumentStarted):
                    current = StatsAccumulator(engine=engine.name, model=engine.model)
                    yield item
                elif isinstance(item, _DocEnd):
                    await worker.close(item.doc)
                    self.stats.documents += 1
                    yield DocumentFinished(item.doc.info, current.totals())
                elif isinstance(item, DocumentFailed):
                    self.stats.documents_failed += 1
                    yield item
                elif isinstance(item, BaseException):
                    raise item
        finally:
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer
            while not out.empty():
                leftover = out.get_nowait()
                if isinstance(leftover, asyncio.Future):
                    leftover.cancel()
                    with contextlib.suppress(BaseException):
                        await leftover
                elif isinstance(leftover, _DocEnd):
                    with contextlib.suppress(BaseException):
                        await worker.close(leftover.doc)
            worker.shutdown()
            if self.options.engine is None:
                await engine.aclose()

    async def _produce(
        self,
        sources: list[DocumentSource],
        engine: Engine,
        worker: Renderer,
        out: asyncio.Queue[Any],
        limits: _Limits,
        tail: _Tail,
    ) -> None:
        try:
            for src in sources:
                try:
                    doc = await self._open(worker, src)
                except InputError as exc:
                    await out.put(DocumentFailed(src.name, exc))
                    continue
                try:
                    numbers = doc.page_numbers(self.options.pages)
                except ConfigError as exc:
                    await worker.close(doc)
                    await out.put(DocumentFailed(src.name, exc))
                    continue
                await out.put(DocumentStarted(doc.info, tuple(numbers)))
                for number in numbers:
                    await limits.window.acquire()
                    task = asyncio.ensure_future(
                        self._page(doc, number, engine, worker, limits, tail.add())
                    )
                    await out.put(task)
                await out.put(_DocEnd(doc))
            tail.close()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surface unexpected errors to the consumer
            await out.put(exc)
            return
        await out.put(None)

    def known(self, src: DocumentSource) -> tuple[SourceInfo, tuple[str, ...]] | None:
        """Info and labels of an input from the cache's manifest, without opening it.

        Only for documents opened before without a password: an encrypted PDF is always
        opened, so a wrong password still fails.
        """
        if self._cache is None or self.options.password is not None:
            return None
        try:
            doc_hash = hash_source(src)
        except OSError:
            return None  # opening will say what is wrong with the file
        manifest = self._cache.get_manifest(doc_hash)
        if not manifest:
            return None
        try:
            info = source_info(src, doc_hash, manifest["kind"], int(manifest["total_pages"]))
            return info, tuple(str(label) for label in manifest["labels"])
        except (KeyError, TypeError, ValueError):
            return None

    def page_count(self, src: DocumentSource) -> int:
        """Selected pages of one input (0 if it cannot be read), for progress bars."""
        known = self.known(src)
        if known is not None:
            return len(self.options.pages.numbers(known[0].total_pages))
        try:
            doc = open_document(src, self.options.password)
        except OCRLoadersError:
            return 0
        try:
            return len(self.options.pages.numbers(doc.page_count))
        finally:
            doc.close()

    async def _open(self, worker: Renderer, src: DocumentSource) -> Any:
        """Open an input in the renderer; a cached document's info comes from the cache."""
        known = await asyncio.to_thread(self.known, src) if hasattr(worker, "adopt") else None
        if known is not None:
            return worker.adopt(src, self.options.password, *known)
        doc = await worker.open(src, self.options.password)
        if self._cache is not None and self.options.password is None:
            labels = [doc.label(n) for n in range(1, doc.info.total_pages + 1)]
            await asyncio.to_thread(
                self._cache.put_manifest,
                doc.info.doc_hash,
                {"kind": doc.info.kind, "total_pages": doc.info.total_pages, "labels": labels},
            )
        return doc

    async def _page(
        self,
        doc: Any,
        number: int,
        engine: Engine,
        worker: Renderer,
        limits: _Limits,
        handed: Callable[[], None],
    ) -> PageResult:
        """One page; ``handed`` is called when it reaches the engine, or when it ends
        without needing to (cached, unrenderable, cancelled)."""
        try:
            return await self._process(doc, number, engine, worker, limits, handed)
        finally:
            handed()

    async def _process(
        self,
        doc: Any,
        number: int,
        engine: Engine,
        worker: Renderer,
        limits: _Limits,
        handed: Callable[[], None],
    ) -> PageResult:
        """Render, OCR, parse and account for one page; a failure becomes a failed page."""
        cache_key = None
        if self._cache is not None:
            cache_key = page_key(
                doc.info.doc_hash, number, self.options.render, engine.cache_identity
            )
            hit = await asyncio.to_thread(self._cache.get, cache_key)
            if hit is not None:
                image, raw = hit
                image = _rebind(image, doc.info)
                return self._result(doc.info, image, raw, engine, cached=True)
        async with limits.prepared:  # rendered pages waiting for a request slot are few
            try:
                image = await worker.render(doc, number, self.options.render, engine.page_hook)
            except PageRenderError as exc:
                log.warning("%s", exc)
                image = failed_page_image(doc, number)
                raw = RawPage(
                    text="",
                    finish_reason=None,
                    engine=engine.name,
                    model=engine.model,
                    prompt=engine.prompt,
                    error=exc.reason,
                )
                return self._result(doc.info, image, raw, engine, cached=False)
            async with limits.requests:
                handed()
                try:
                    raw = await engine.recognize(image)
                except EngineError:
                    raise
                except Exception as exc:  # an engine bug must not lose the page silently
                    log.exception("%s page %d: engine failed", doc.info.source, number)
                    raw = RawPage(
                        text="",
                        finish_reason=None,
                        engine=engine.name,
                        model=engine.model,
                        prompt=engine.prompt,
                        error=f"{type(exc).__name__}: {exc}",
                    )
        result = self._result(doc.info, image, raw, engine, cached=False)
        if self._cache is not None and cache_key is not None and result.page.status != "failed":
            await asyncio.to_thread(self._cache.put, cache_key, _strip_image(image), raw)
        return result

    def _result(
        self, info: SourceInfo, image: PageImage, raw: RawPage, engine: Engine, *, cached: bool
    ) -> PageResult:
        page = build_page(image, raw)
        markdown = to_markdown(
            page.blocks,
            image_link=default_image_link(page.number),
            loop_cut=page.loop_cut,
            tables=self.options.chunk.tables,
        )
        stats = (
            page_stats(image, raw, page, markdown, self.options.model, cached=cached)
            if image.image_width
            else _no_pixels_stats(page, raw)
        )
        return PageResult(
            doc=info,
            page=page,
            stats=stats,
            engine=engine.name,
            model=engine.model,
            markdown=markdown,
        )


def _strip_image(image: PageImage) -> PageImage:
    """What the cache keeps of a page image: its geometry, not its pixels."""
    return replace(image, image=b"", hint=None)


def _rebind(image: PageImage, info: SourceInfo) -> PageImage:
    return replace(image, source=info)


def _no_pixels_stats(page: Page, raw: RawPage) -> PageStats:
    return PageStats(
        page=page.number,
        status=page.status,
        vision_tokens=0,
        text_tokens=0,
        compression_ratio=0.0,
        risk="fine",
        output_tokens=raw.completion_tokens,
        latency_s=raw.latency_s,
        attempts=raw.attempts,
    )
