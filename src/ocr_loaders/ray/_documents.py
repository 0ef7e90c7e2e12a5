"""Per-document stage of a Ray job: a document's answered pages in, its chunk rows out.

The pages of one document arrive together (Ray Data groups them by document), are put back in
page order and replayed through the single-process loader's own :class:`ocr_loaders._run.Run`:
the same page assembly, the same chunker with its document pass, the same figure crops and the
same records, hence the same chunk ids and texts as ``DeepSeekOCRLoader`` over the same input.
The document's totals go to the job's :class:`~ocr_loaders.ray.RunStats`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .._assemble import page_result
from .._errors import PageFailedError, PageRenderError
from .._model import PageImage, PageResult
from .._pipeline import DocumentFinished, DocumentStarted, Event, Inputs, Pipeline
from .._records import Metadata, Record
from .._rendering.crops import clip_pdf, crop_zoom, cut_image, page_targets
from .._run import Run
from .._sources import DocumentOutline
from .._stats import Failure, Totals
from ._rows import DocumentError, Row, decode_outline, decode_page, from_table
from ._stages import JobSpec, _document

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

FIGURE_DEFAULTS: Metadata = {
    "figure_index": -1,
    "chunk_id": "",
    "image_mimetype": "",
    "image_width": 0,
    "image_height": 0,
    "image_path": "",
    "image_base64": "",
}
"""Keys only a figure's record has (docs/metadata.md), neutral on a chunk's row so every row
has the same columns (Parquet and most sinks want one schema)."""

CHUNK_COLUMNS: dict[str, Any] = {
    "id": "",
    "text": "",
    "source": "",
    "file_name": "",
    "file_path": "",
    "doc_hash": "",
    "page": 0,
    "page_label": "",
    "page_start": 0,
    "page_end": 0,
    "total_pages": 0,
    "block_types": "",
    "heading": "",
    "regions": "",
    "chunk_index": 0,
    "ocr_model": "",
    "ocr_engine": "",
    "vision_tokens": 0,
    "text_tokens": 0,
    "compression_ratio": 0.0,
    "ocr_status": "",
    "ocr_error": "",
    "image_downscaled": False,
    "page_header": "",
    "page_footer": "",
    "page_joins": "",
    "verification": "unverified",
    "text_coverage": -1.0,
    "crop_paths": "",  # a chunk holding cropped tables or equations (crop_blocks); else empty
    **FIGURE_DEFAULTS,
}
"""The columns of the dataset ``read_documents`` returns: ``id``, ``text`` and the flat
metadata of a chunk (docs/metadata.md), in this order."""


def chunk_schema() -> pa.Schema:
    import pyarrow as pa

    kinds = {str: pa.string(), bool: pa.bool_(), int: pa.int64(), float: pa.float64()}
    return pa.schema([(name, kinds[type(v)]) for name, v in CHUNK_COLUMNS.items()])


def chunk_row(record: Record) -> dict[str, Any]:
    """A record as a row of :data:`CHUNK_COLUMNS` (keys outside them are left out)."""
    row = {**CHUNK_COLUMNS, "id": record.id, "text": record.text}
    row.update({k: v for k, v in record.metadata.items() if k in CHUNK_COLUMNS})
    return row


@dataclass(frozen=True)
class DocumentReport:
    """What one document adds to the run's stats (sent to :class:`~ocr_loaders.ray.RunStats`)."""

    doc: str
    totals: Totals | None
    """``None`` for a document that could not be read."""
    pages: tuple[Any, ...] = ()
    """Its pages' :class:`~ocr_loaders._model.PageStats` (wall-clock ``finished_at``)."""
    failure: Failure | None = None


class _Replay(Pipeline):
    """A :class:`Pipeline` whose events are one document's pages, already answered."""

    def __init__(self, spec: JobSpec, outline: DocumentOutline, results: list[PageResult]):
        super().__init__(spec.options)
        self._outline = outline
        self._results = results
        self.stats.engine, self.stats.model = spec.engine.name, spec.engine.model

    async def events(self, inputs: Inputs) -> AsyncGenerator[Event, None]:
        info = self._outline.info
        yield DocumentStarted(info, tuple(r.page.number for r in self._results))
        for result in self._results:
            self.stats.add(result.stats)
            if result.page.status == "failed":
                page = result.page
                self.stats.failures.append(Failure(info.source, page.number, page.error))
                if self.options.on_error == "raise":
                    raise PageFailedError(page.error, path=info.source, page=page.number)
            yield result
        self.stats.documents += 1
        yield DocumentFinished(info, self.stats.totals())


def page_results(rows: list[Row], spec: JobSpec) -> tuple[DocumentOutline, list[PageResult]]:
    """A document's answered page rows as :class:`PageResult` s, in page order."""
    rows = sorted(rows, key=lambda r: r["number"])
    outline = decode_outline(rows[0]["outline"])
    out = []
    for row in rows:
        image, raw = decode_page(row["cache_key"], row["entry"], outline.info)
        if row["png"]:
            image = replace(image, image=row["png"])
        result = page_result(
            outline.info,
            image,
            raw,
            spec.engine,
            model=spec.options.model,
            tables=spec.options.chunk.tables,
            cached=row["cached"],
        )
        if result.stats.finished_at:  # the wall clock, comparable across hosts
            result = replace(result, stats=replace(result.stats, finished_at=row["finished"]))
        out.append(_cropped(result, image, row, outline, spec))
    return outline, out


def _cropped(
    result: PageResult, image: PageImage, row: Row, outline: DocumentOutline, spec: JobSpec
) -> PageResult:
    """``result`` with its figure crops, made as the single-process pipeline makes them: a
    PDF's boxes rendered from the document at ``figure_dpi`` or the zoom the page was sent
    at, an image input's cut from the page image (rendered again for a cached page)."""
    settings = spec.figures.wanted
    targets = page_targets(result.page, settings)
    if settings is None or not targets:
        return result
    number = result.page.number
    try:
        doc = _document(row, outline, spec)
        if result.doc.kind == "pdf":
            crops = clip_pdf(doc, number, targets, settings, crop_zoom(settings, result.page))
        else:
            page_image = image.image or doc.render(number, spec.options.render, None).image
            crops = cut_image(page_image, targets, settings)
    except PageRenderError as exc:  # the page keeps its text and captions, and no link
        log.warning("%s page %d: figures not cropped (%s)", result.doc.source, number, exc)
        return result
    return replace(result, crops=crops)


def assemble(batch: pa.Table, spec: JobSpec, stats: Any | None) -> pa.Table:
    """One document's pages -> its chunk (and figure) rows; its totals to ``stats``."""
    import pyarrow as pa

    rows = from_table(batch)
    if not rows:
        return pa.Table.from_pylist([], schema=chunk_schema())
    if rows[0]["number"] == 0:
        error = DocumentError.decode(rows[0]["error"])
        log.warning("skipped %s", error.message)
        failure = Failure(rows[0]["name"], None, error.reason, error.error)
        _report(stats, DocumentReport(rows[0]["doc"], None, failure=failure))
        return pa.Table.from_pylist([], schema=chunk_schema())
    outline, results = page_results(rows, spec)
    run = Run(spec.options, spec.figures)
    run.pipeline = _Replay(spec, outline, results)
    records = asyncio.run(_records(run))
    totals = run.documents[0]
    _report(stats, DocumentReport(rows[0]["doc"], totals, tuple(r.stats for r in results)))
    return pa.Table.from_pylist([chunk_row(r) for r in records], schema=chunk_schema())


async def _records(run: Run) -> list[Record]:
    return [record async for record in run.records([])]


def _report(stats: Any | None, report: DocumentReport) -> None:
    if stats is not None:
        stats.add(report)
