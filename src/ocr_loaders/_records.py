"""The metadata contract of a chunk (docs/metadata.md): :class:`Record`, its id and its keys.

A :class:`Record` is what both adapters and the CLI's JSONL emit: text, flat metadata (str,
int, float, bool only: the strictest vector stores reject anything else) and a stable id made
of the document's content hash, the first page and the chunk index. Producing records from a
load is :mod:`ocr_loaders._run`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

from ._figures import Figure
from ._model import Chunk, PageResult, Region, SourceInfo

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
    "verification",
    "text_coverage",
    "figure_index",
    "chunk_id",
    "image_mimetype",
    "image_width",
    "image_height",
    "image_path",
    "image_base64",
    "crop_paths",
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
    figure: Figure | None = None
    """Set on a figure's record (``images="files"``/``"inline"``): its crop."""


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
    meta.update(  # the text-layer cross-check of the first page (docs/verification.md)
        {
            "verification": first.stats.verification if first else "unverified",
            "text_coverage": first.stats.text_coverage if first else -1.0,
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


def make_record(doc: SourceInfo, chunk: Chunk, pages: Mapping[int, PageResult]) -> Record:
    """The record of one chunk; ``pages`` holds at least the pages the chunk spans."""
    meta = chunk_metadata(doc, chunk, pages)
    return Record(
        chunk_id(doc.doc_hash, chunk.page_start, chunk.index), chunk.text, meta, chunk, doc
    )


def figure_record(
    figure: Figure, pages: Mapping[int, PageResult], *, inline: bool, index: int
) -> Record:
    """The record of one figure: its caption as text, the chunk keys, and its image.

    ``image_path`` (a written crop) or ``image_base64`` (``inline``), with ``image_mimetype``;
    ``block_types`` is the block's label (``image``, ``table`` or ``equation``) and
    ``regions`` holds its box. ``index`` numbers
    the document's figures (``chunk_index``; ``figure_index`` is the index on the page).
    """
    chunk = Chunk(
        text=figure.caption,
        index=index,
        page_start=figure.page,
        page_end=figure.page,
        labels=(figure.label,),
        heading="",
        regions=(Region(figure.page, figure.label, figure.bbox),),
    )
    meta = chunk_metadata(figure.doc, chunk, pages)
    meta["figure_index"] = figure.index
    meta["image_mimetype"] = figure.mime
    meta["image_width"] = figure.width
    meta["image_height"] = figure.height
    if figure.path:
        meta["image_path"] = figure.path
    if inline:
        meta["image_base64"] = base64.b64encode(figure.data).decode("ascii")
    return Record(figure.id, figure.caption, meta, chunk, figure.doc, figure)
