"""One load, as the adapters and the CLI run it: pipeline events in, chunk records out.

:class:`Run` chunks each document as its pages arrive (only the pages a coming chunk may still
span are kept), records every finished document's totals and keeps the run's. The CLI reads
:meth:`Run.items` (pages, records and document events, in order); the adapters read
:meth:`Run.records` through :class:`Adapter`, where an unreadable input is raised. Everything
is async; the sync entry points wrap it with :func:`ocr_loaders._sync.iterate`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from ._chunking import Chunker, ChunkOptions
from ._config import LoaderOptions
from ._model import Chunk, PageResult, SourceInfo
from ._pipeline import DocumentFailed, DocumentFinished, DocumentStarted, Pipeline
from ._records import Record, image_target, make_record
from ._sources import DocumentSource, Input
from ._stats import Totals

T = TypeVar("T")

Inputs = Input | Sequence[Input] | Sequence[DocumentSource]

RunItem = DocumentStarted | PageResult | Record | DocumentFinished | DocumentFailed
"""What :meth:`Run.items` yields: a page's records come right after the page."""


class _DocumentChunks:
    """The chunker of one document and the pages its next chunks may still span."""

    def __init__(self, info: SourceInfo, options: ChunkOptions) -> None:
        self.info = info
        self._chunker = Chunker(options, image_target=image_target)
        self._pages: dict[int, PageResult] = {}

    def add(self, result: PageResult) -> list[Record]:
        """Records of the chunks this page completes."""
        self._pages[result.page.number] = result
        return self._records(self._chunker.add(result.page))

    def finish(self) -> list[Record]:
        """Records of the chunks still open at the document's end."""
        return self._records(self._chunker.finish())

    def _records(self, chunks: list[Chunk]) -> list[Record]:
        out = [make_record(self.info, c, self._pages) for c in chunks]
        if chunks:  # pages before the last emitted chunk's end are no longer needed
            last_end = max(c.page_end for c in chunks)
            for n in [n for n in self._pages if n < last_end]:
                del self._pages[n]
        return out


class Run:
    """One load: records out, totals kept.

    ``totals()`` is the run's (available even after an error); ``documents`` holds one
    ``Totals`` per finished document, in order.
    """

    def __init__(self, options: LoaderOptions) -> None:
        self.options = options
        self.pipeline = Pipeline(options)
        self.documents: list[Totals] = []

    def page_count(self, sources: Sequence[DocumentSource]) -> int:
        """Selected pages of the inputs, for a progress bar (blocking: run it in a thread)."""
        return sum(self.pipeline.page_count(s) for s in sources)

    async def items(self, inputs: Inputs) -> AsyncIterator[RunItem]:
        """Every event of the load, with each page's records right after the page."""
        chunks: _DocumentChunks | None = None
        async for event in self.pipeline.events(inputs):
            if isinstance(event, DocumentStarted):
                chunks = _DocumentChunks(event.info, self.options.chunk)
                yield event
            elif isinstance(event, PageResult):
                assert chunks is not None
                yield event
                for record in chunks.add(event):
                    yield record
            elif isinstance(event, DocumentFinished):
                assert chunks is not None
                for record in chunks.finish():
                    yield record
                self.documents.append(event.totals)
                chunks = None
                yield event
            else:
                yield event

    async def records(self, inputs: Inputs) -> AsyncIterator[Record]:
        """The records of the load; an input that cannot be read is raised."""
        async for item in self.items(inputs):
            if isinstance(item, Record):
                yield item
            elif isinstance(item, DocumentFailed):
                raise item.error

    def totals(self) -> Totals:
        return self.pipeline.run_totals()


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
        self.options = LoaderOptions.from_kwargs(
            base_url=base_url, model=model, api_key=api_key, **options
        )
        self.last_stats: Totals | None = None
        self.last_documents: list[Totals] = []

    async def _stream(self, inputs: Inputs, convert: Callable[[Record], T]) -> AsyncIterator[T]:
        """Run a load, converting each record to the framework's document."""
        run = Run(self.options)
        try:
            async for record in run.records(inputs):
                yield convert(record)
        finally:
            self.last_stats, self.last_documents = run.totals(), run.documents
