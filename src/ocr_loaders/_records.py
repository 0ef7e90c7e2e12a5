"""The metadata contract of a chunk (docs/metadata.md): :class:`Record`, its id and its keys.

A :class:`Record` is what both adapters and the CLI's JSONL emit: text, flat metadata (str,
int, float, bool only: the strictest vector stores reject anything else) and a stable id made
of the document's content hash, the first page and the chunk index. Producing records from a
load is :mod:`ocr_loaders._run`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ._grounding import default_image_link
from ._model import Block, Chunk, Page, PageResult, SourceInfo

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
    "page_header",
    "page_footer",
    "page_joins",
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
    """The contract's metadata for one chunk (docs/metadata.md)."""
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
    meta.update(  # the chunker's document pass (docs/chunking.md)
        {
            "page_header": chunk.page_header,
            "page_footer": chunk.page_footer,
            "page_joins": ",".join(chunk.joins),
        }
    )
    return meta


def image_target(page: Page, block: Block, k: int) -> str:
    """Chunk image links named like DeepSeek's own cleanup: ``images/{page}_{k}.jpg``."""
    return default_image_link(page.number)(block, k)


def make_record(doc: SourceInfo, chunk: Chunk, pages: Mapping[int, PageResult]) -> Record:
    """The record of one chunk; ``pages`` holds at least the pages the chunk spans."""
    meta = chunk_metadata(doc, chunk, pages)
    return Record(
        chunk_id(doc.doc_hash, chunk.page_start, chunk.index), chunk.text, meta, chunk, doc
    )
