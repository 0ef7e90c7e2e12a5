"""Pipeline events -> chunk records with the flat metadata of the contract (docs/metadata.md).

A :class:`Record` is what both adapters and the CLI's JSONL emit: text, flat metadata (str,
int, float, bool only: the strictest vector stores reject anything else) and a stable id made
of the document's content hash, the first page and the chunk index.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from .chunking import Chunker, ChunkOptions
from .config import LoaderOptions
from .grounding import default_image_link
from .model import Block, Chunk, Page, PageResult, SourceInfo
from .pipeline import DocumentFailed, DocumentFinished, DocumentStarted, Event, Pipeline
from .sources import DocumentSource, Input
from .stats import Totals

Scalar = str | int | float | bool
Metadata = dict[str, Scalar]

STATUS_RANK = {"ok": 0, "truncated": 1, "failed": 2}

EXCLUDED_FROM_EMBEDDING = (
    "file_path",
    "doc_hash",
    "regions",
    "chunk_index",
    "vision_tokens",
    "compression_ratio",
    "ocr_model",
    "ocr_engine",
    "ocr_status",
    "ocr_error",
    "page",
    "page_start",
    "page_end",
    "total_pages",
    "block_types",
    "image_downscaled",
    "text_tokens",
)
"""Keys kept out of the text LlamaIndex embeds and shows the LLM (bulky or numeric)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One chunk ready for a framework: id, text and flat metadata."""

    id: str
    text: str
    metadata: Metadata
    chunk: Chunk
    doc: SourceInfo


def chunk_id(doc_hash: str, page_start: int, chunk_index: int) -> str:
    """Stable id: same bytes, same options -> same ids, run after run."""
    return f"{doc_hash[:32]}-p{page_start}-c{chunk_index}"


def chunk_metadata(doc: SourceInfo, chunk: Chunk, pages: Mapping[int, PageResult]) -> Metadata:
    """The contract's metadata for one chunk (design.md section 3)."""
    span = [pages[n] for n in sorted(pages) if chunk.page_start <= n <= chunk.page_end]
    first = pages.get(chunk.page_start) or (span[0] if span else None)
    vision = sum(r.stats.vision_tokens for r in span)
    text_tokens = sum(r.stats.text_tokens for r in span)
    worst = max((r.page.status for r in span), key=STATUS_RANK.__getitem__, default="ok")
    errors = "; ".join(f"page {r.page.number}: {r.page.error}" for r in span if r.page.error)
    meta: Metadata = {}
    for key, value in doc.extra:
        meta[key] = value
    meta.update(
        {
            "source": doc.source,
            "file_name": doc.file_name,
            "file_path": doc.file_path,
            "doc_hash": doc.doc_hash,
            "page": chunk.page_start - 1,
            "page_label": first.page.label if first else str(chunk.page_start),
            "page_start": chunk.page_start,
            "page_end": chunk.page_end,
            "total_pages": doc.total_pages,
            "block_types": ",".join(chunk.labels),
            "heading": chunk.heading,
            "regions": json.dumps(
                [r.as_dict() for r in chunk.regions], separators=(",", ":"), ensure_ascii=False
            ),
            "chunk_index": chunk.index,
            "ocr_model": first.model if first else "",
            "ocr_engine": first.engine if first else "",
            "vision_tokens": vision,
            "text_tokens": text_tokens,
            "compression_ratio": round(text_tokens / vision, 4) if vision else 0.0,
            "ocr_status": worst,
            "ocr_error": errors,
            "image_downscaled": any(r.page.downscaled for r in span),
        }
    )
    return meta


def image_target(page: Page, block: Block, k: int) -> str:
    """Chunk image links named like DeepSeek's own cleanup: ``images/{page}_{k}.jpg``."""
    return default_image_link(page.number)(block, k)


async def arecords(
    events: AsyncIterator[Event], options: ChunkOptions
) -> AsyncIterator[Record | DocumentFailed | DocumentFinished]:
    """Chunk each document as its pages arrive; yield records (and failures, totals)."""
    chunker: Chunker | None = None
    pages: dict[int, PageResult] = {}
    doc: SourceInfo | None = None

    def emit(chunks: list[Chunk]) -> list[Record]:
        assert doc is not None
        out = []
        for c in chunks:
            meta = chunk_metadata(doc, c, pages)
            out.append(Record(chunk_id(doc.doc_hash, c.page_start, c.index), c.text, meta, c, doc))
        if chunks:  # pages before the last emitted chunk's end are no longer needed
            last_end = max(c.page_end for c in chunks)
            for n in [n for n in pages if n < last_end]:
                del pages[n]
        return out

    async for event in events:
        if isinstance(event, DocumentStarted):
            doc = event.info
            chunker = Chunker(options, image_target=image_target)
            pages = {}
        elif isinstance(event, PageResult):
            assert chunker is not None
            pages[event.page.number] = event
            for record in emit(chunker.add(event.page)):
                yield record
        elif isinstance(event, DocumentFinished):
            assert chunker is not None
            for record in emit(chunker.finish()):
                yield record
            yield event
            chunker, pages, doc = None, {}, None
        elif isinstance(event, DocumentFailed):
            yield event


class Load:
    """One load as the adapters run it: records out, an unreadable input raised, totals kept.

    ``totals()`` is the run's (available even after an error); ``documents`` one ``Totals`` per
    finished document, in order.
    """

    def __init__(self, options: LoaderOptions) -> None:
        self.options = options
        self.pipeline = Pipeline(options)
        self.documents: list[Totals] = []

    async def records(
        self, inputs: Input | Sequence[Input] | Sequence[DocumentSource]
    ) -> AsyncIterator[Record]:
        async for item in arecords(self.pipeline.events(inputs), self.options.chunk):
            if isinstance(item, Record):
                yield item
            elif isinstance(item, DocumentFinished):
                self.documents.append(item.totals)
            elif isinstance(item, DocumentFailed):
                raise item.error

    def totals(self) -> Totals:
        return self.pipeline.run_totals()
