"""One load, as the adapters and the CLI run it: pipeline events in, chunk records out.

:class:`Run` chunks each document as its pages arrive (only the pages a coming chunk may still
span are kept), records every finished document's totals and keeps the run's. The CLI reads
:meth:`Run.items` (pages, records and document events, in order); the adapters read
:meth:`Run.records` through :class:`Adapter`, which applies the Python API's failure policy
(docs/reliability.md). Everything is async; the sync entry points wrap it with
:func:`ocr_loaders._sync.iterate`.

Failed pages yield no chunk (no empty text reaches a vector index): they are logged, one
warning each, and listed in the totals' ``failures``. Every nested async generator is closed
explicitly (``aclosing``), so a load that raises or is abandoned shuts down before control
returns, instead of leaving generators for the event loop to finalize.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from . import _sync
from ._assemble import page_markdown
from ._chunking import Chunker, ChunkOptions
from ._config import LoaderOptions
from ._errors import OCRLoadersError
from ._figures import Figure, FigureFolder, FigureOptions, StemNames, crop_figures
from ._model import Block, Chunk, Crop, Page, PageResult, SourceInfo
from ._pipeline import (
    DocumentFailed,
    DocumentFinished,
    DocumentStarted,
    Inputs,
    Pipeline,
    as_sources,
)
from ._progress import PageProgress
from ._records import Record, figure_record, make_record
from ._sources import DocumentSource
from ._stats import CleanupCounts, Totals

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_FIGURES = FigureOptions()

RunItem = DocumentStarted | PageResult | Record | DocumentFinished | DocumentFailed
"""What :meth:`Run.items` yields: a page's records come right after the page."""


class _DocumentChunks:
    """The chunker of one document and the pages its next chunks may still span."""

    def __init__(self, info: SourceInfo, options: ChunkOptions) -> None:
        self.info = info
        self._chunker = Chunker(options, image_target=self._link)
        self._pages: dict[int, PageResult] = {}
        self._links: dict[tuple[int, int], str] = {}
        self._pending: list[Record] = []
        self.figures = 0

    def _link(self, page: Page, _block: Block, k: int) -> str:
        """The link of figure ``k`` of ``page``: only to a crop that was written."""
        return self._links.get((page.number, k), "")

    def add(self, result: PageResult, figures: Sequence[Figure] = ()) -> list[Record]:
        """Records of the chunks this page completes, each followed by its page's figures."""
        self._pages[result.page.number] = result
        for f in figures:
            if f.link:
                self._links[(f.page, f.index)] = f.link
        self._pending.extend(
            self._figure(f, inline=inline) for f, inline in figures_inline(figures)
        )
        return self._with_figures(self._records(self._chunker.add(result.page)))

    def _figure(self, figure: Figure, *, inline: bool) -> Record:
        self.figures += 1
        return figure_record(figure, self._pages, inline=inline, index=self.figures - 1)

    def finish(self) -> list[Record]:
        """Records of the chunks still open at the document's end, and the last figures."""
        out = self._with_figures(self._records(self._chunker.finish()))
        out.extend(self._pending)
        self._pending = []
        return out

    def _with_figures(self, records: list[Record]) -> list[Record]:
        """Each figure right after the chunk that shows it (its link or caption), which it
        names in ``chunk_id`` and whose ``heading`` it takes; a figure whose page no coming
        chunk can still hold goes out as it is."""
        out: list[Record] = []
        for record in records:
            at = len(out)
            out.append(record)
            chunk, waiting = record.chunk, []
            for fig in self._pending:
                assert fig.figure is not None
                if chunk.page_start <= fig.figure.page <= chunk.page_end and _shows(record, fig):
                    meta = {**fig.metadata, "chunk_id": record.id, "heading": chunk.heading}
                    out.append(dataclasses.replace(fig, metadata=meta))
                    if fig.figure.label != "image" and fig.figure.path:
                        out[at] = record = _with_crop(record, fig.figure.path)
                elif chunk.page_start > fig.figure.page:
                    out.append(fig)
                else:
                    waiting.append(fig)
            self._pending = waiting
        return out

    @property
    def counts(self) -> CleanupCounts:
        """What the chunker's document pass removed and joined so far."""
        return self._chunker.counts

    def _records(self, chunks: list[Chunk]) -> list[Record]:
        out = [make_record(self.info, c, self._pages) for c in chunks]
        if chunks:  # pages before the last emitted chunk's start are no longer needed (the
            # next chunk may start on that page too: the next part of a table split in rows)
            keep_from = max(c.page_start for c in chunks)
            for n in [n for n in self._pages if n < keep_from]:
                del self._pages[n]
        return out


class Run:
    """One load: records out, totals kept.

    ``totals()`` is the run's (available even after an error); ``documents`` holds one
    ``Totals`` per finished document, in order.
    """

    def __init__(
        self,
        options: LoaderOptions,
        figures: FigureOptions = NO_FIGURES,
        place: Callable[[SourceInfo], FigureFolder | None] | None = None,
    ) -> None:
        """``figures`` says what to do with ``image`` blocks; ``place`` where a document's
        crops are written with ``images="files"`` (default: ``figures.folder``)."""
        self.options = options
        self.figures = figures
        self._place = place or figures.place
        self._stems = StemNames()
        self.pipeline = Pipeline(options, figures.wanted)
        self.documents: list[Totals] = []
        self._cleanup = CleanupCounts()

    def page_count(self, sources: Sequence[DocumentSource]) -> int:
        """Selected pages of the inputs, for a progress bar (blocking: run it in a thread)."""
        return sum(self.pipeline.page_count(s) for s in sources)

    async def items(self, inputs: Inputs) -> AsyncGenerator[RunItem, None]:
        """Every event of the load, with each page's records right after the page.

        A failed page is logged (one warning) and yields no record; a chunk with no text
        (a page that produced nothing) is left out too. Both stay in the totals.
        """
        chunks: _DocumentChunks | None = None
        async with aclosing(self.pipeline.events(inputs)) as events:
            async for event in events:
                if isinstance(event, DocumentStarted):
                    chunks = _DocumentChunks(event.info, self.options.chunk)
                    yield event
                elif isinstance(event, PageResult):
                    assert chunks is not None
                    if event.page.status == "failed":
                        log.warning(
                            "%s, page %d: OCR failed (%s); the page is left out",
                            event.doc.source,
                            event.page.number,
                            event.page.error,
                        )
                    event, figures = await self._crops(event)
                    yield event
                    for record in _with_text(chunks.add(event, figures)):
                        yield record
                elif isinstance(event, DocumentFinished):
                    assert chunks is not None
                    for record in _with_text(chunks.finish()):
                        yield record
                    totals = dataclasses.replace(event.totals, cleanup=chunks.counts)
                    self._cleanup += chunks.counts
                    self.documents.append(totals)
                    chunks = None
                    yield DocumentFinished(event.info, totals)
                else:
                    yield event

    async def _crops(self, result: PageResult) -> tuple[PageResult, list[Figure]]:
        """The page's figures (written where asked) and its markdown linking them; the
        crops' bytes are let go once written."""
        if not result.crops:
            return result, []
        crops, result = result.crops, dataclasses.replace(result, crops=())
        folder = self._place(result.doc) if self.figures.mode == "files" else None
        stem = self._stems(result.doc)
        figures = await asyncio.to_thread(_figures, result, crops, stem, folder, self.figures)
        links = {f.index: f.link for f in figures if f.link}
        if links:
            markdown = page_markdown(
                result.page, self.options.chunk.tables, lambda _b, k: links.get(k, "")
            )
            result = dataclasses.replace(result, markdown=markdown)
        return result, figures

    async def records(self, inputs: Inputs) -> AsyncGenerator[Record, None]:
        """The records of the load, under the Python API's failure policy.

        An input that cannot be read is raised with ``on_error="raise"``; with ``continue``
        it is skipped with one warning. A load that ends with failures says so in one summary
        warning. ``show_progress`` draws a bar over the pages of every input.
        """
        sources = as_sources(inputs)
        progress: PageProgress | None = None
        if self.options.show_progress:
            progress = PageProgress(await asyncio.to_thread(self.page_count, sources))
            self.pipeline.on_page_done = progress.page_done
        try:
            async with aclosing(self.items(sources)) as items:
                async for item in items:
                    if isinstance(item, Record):
                        yield item
                    elif isinstance(item, PageResult):
                        pass  # counted by the bar when it finished (on_page_done)
                    elif isinstance(item, DocumentStarted):
                        if progress is not None:
                            progress.document(item.info.file_name)
                    elif isinstance(item, DocumentFailed):
                        if self.options.on_error == "raise":
                            raise item.error
                        log.warning("skipped %s", item.error)
        finally:
            if progress is not None:
                progress.close()
        summary = failure_summary(self.totals())
        if summary:
            log.warning("%s", summary)

    def totals(self) -> Totals:
        return dataclasses.replace(self.pipeline.run_totals(), cleanup=self._cleanup)


def _with_text(records: list[Record]) -> list[Record]:
    """The records worth embedding: a chunk with no text is a page that produced nothing
    (a figure is worth its image, caption or not)."""
    return [r for r in records if r.text.strip() or r.figure is not None]


def _shows(chunk: Record, figure: Record) -> bool:
    """Whether a chunk holds a figure: its link, else its caption; a table or an equation:
    its box among the chunk's regions."""
    f = figure.figure
    assert f is not None
    if f.link:
        return f"]({f.link})" in chunk.text
    if f.label != "image":
        return any(
            r.page == f.page
            and r.label == f.label
            and all(abs(a - b) < 0.5 for a, b in zip(r.bbox, f.bbox, strict=True))
            for r in chunk.chunk.regions
        )
    return bool(figure.text) and figure.text in chunk.text


def _with_crop(record: Record, path: str) -> Record:
    """A chunk with one more crop of a table or equation it holds (``crop_paths``)."""
    paths = json.loads(str(record.metadata.get("crop_paths", "[]")))
    meta = {**record.metadata, "crop_paths": json.dumps([*paths, path], ensure_ascii=False)}
    return dataclasses.replace(record, metadata=meta)


def _figures(
    result: PageResult,
    crops: tuple[Crop, ...],
    stem: str,
    folder: FigureFolder | None,
    options: FigureOptions,
) -> list[Figure]:
    """A page's crops as figures, written under ``folder`` (when given)."""
    figures = crop_figures(result.doc, result.page, crops, stem, options.crops)
    if folder is not None:
        figures = [folder.write(f) for f in figures]
    if options.mode != "inline":  # the crop's bytes are on disk: do not keep them
        figures = [dataclasses.replace(f, data=b"") if f.path else f for f in figures]
    return figures


def figures_inline(figures: Sequence[Figure]) -> list[tuple[Figure, bool]]:
    """Each figure with whether its record carries the image itself (no file written)."""
    return [(f, not f.path) for f in figures]


def failure_summary(totals: Totals) -> str:
    """One line saying what a finished load left out, or ``""`` when nothing failed."""
    pages = sum(f.page is not None for f in totals.failures)
    files = len(totals.failures) - pages
    if not pages and not files:
        return ""
    parts = []
    if pages:
        parts.append(f"{pages} of {totals.pages} page(s) failed")
    if files:
        parts.append(f"{files} file(s) could not be read")
    return (
        f"the load finished with failures: {' and '.join(parts)}; they are left out of the "
        "documents and listed in last_stats.failures"
    )


def collect(documents: Iterable[T]) -> list[T]:
    """Every document of a load; an error carries those produced before it (``.documents``)."""
    done: list[T] = []
    try:
        for doc in documents:
            done.append(doc)
    except OCRLoadersError as exc:
        exc.documents = done
        raise
    return done


async def acollect(documents: AsyncIterator[T]) -> list[T]:
    """Async :func:`collect`."""
    done: list[T] = []
    try:
        async for doc in documents:
            done.append(doc)
    except OCRLoadersError as exc:
        exc.documents = done
        raise
    return done


class Adapter:
    """What both framework adapters share: options, one :class:`Run` per load, and the totals
    of the last load in :attr:`last_stats` / :attr:`last_documents`."""

    def __init__(
        self,
        base_url: str | list[str] | None = None,
        model: str | None = None,
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        self.figures = FigureOptions.take(options)
        self.options = LoaderOptions.from_kwargs(
            base_url=base_url, model=model, api_key=api_key, **options
        )
        self.last_stats: Totals | None = None
        self.last_documents: list[Totals] = []

    async def _stream(
        self, inputs: Inputs, convert: Callable[[Record], T], show_progress: bool | None = None
    ) -> AsyncGenerator[T, None]:
        """Run a load, converting each record to the framework's document."""
        options = self.options
        if show_progress is not None and show_progress != options.show_progress:
            options = dataclasses.replace(options, show_progress=show_progress)
        run = Run(options, self.figures)
        try:
            async with aclosing(run.records(inputs)) as records:
                async for record in records:
                    yield convert(record)
        finally:
            self.last_stats, self.last_documents = run.totals(), run.documents

    def _astream(
        self, inputs: Inputs, convert: Callable[[Record], T], show_progress: bool | None = None
    ) -> AsyncGenerator[T, None]:
        """:meth:`_stream` for async callers: the load runs in a task of its own, so a caller
        that stops iterating early leaves nothing half-closed (see ``_sync.detached``)."""
        return _sync.detached(lambda: self._stream(inputs, convert, show_progress))
