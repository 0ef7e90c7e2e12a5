"""The page stages of a Ray job: plan (documents -> page rows), render (tasks), OCR (actors).

Each is a plain function or class over Arrow batches of :mod:`._rows`, run by Ray Data; the
work inside is the single-process loader's own: :func:`ocr_loaders._sources.describe` and the
page selection, :func:`ocr_loaders._rendering.raster.open_document` and its ``render``, the
engine from :func:`ocr_loaders._engines.select.make_engine` (its balancer picks the
least-loaded endpoint for every request) and the page cache's keys and entries.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .._assemble import build_page, failed_answer, failed_page_image
from .._cache import page_key, read_entry
from .._config import LoaderOptions
from .._engines.base import Engine, PageHook
from .._engines.select import make_engine
from .._errors import ConfigError, EngineError, InputError, PageRenderError
from .._figures import FigureOptions
from .._model import PageImage, RawPage
from .._passwords import password_for
from .._rendering.raster import RasterDocument, open_document
from .._sources import DocumentOutline, describe
from ._inputs import source_of
from ._rows import (
    DocumentError,
    Row,
    decode_hint,
    decode_outline,
    encode_hint,
    encode_outline,
    encode_page,
    from_table,
    page_row,
    to_table,
)
from ._store import SharedCache

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineFacts:
    """The names of the engine that answers a job's pages (see ``_assemble.AnsweredBy``)."""

    name: str
    model: str
    prompt: str


@dataclass(frozen=True)
class JobSpec:
    """Everything a stage needs, shipped to every worker once per task or actor."""

    options: LoaderOptions
    figures: FigureOptions
    cache: SharedCache | None
    identity: str
    """The engine's ``cache_identity``: part of every page's cache key."""
    hook: PageHook | None
    """Work the engine wants done where the document is open (the local engine's text layer)."""
    engine: EngineFacts


# --- plan: one row per selected page ---------------------------------------------------------


def plan(batch: pa.Table, spec: JobSpec) -> pa.Table:
    """Open each document just long enough to read its outline; emit its selected pages.

    A document that cannot be read becomes one row with ``number == 0`` and ``error`` set
    (``on_error="raise"``: the error is raised and the job stops)."""
    out: list[Row] = []
    for doc in from_table(batch):
        where = {k: doc[k] for k in ("doc", "name", "path", "uri")}
        try:
            src = source_of(doc)
            outline = describe(src, password_for(spec.options.password, src))
            numbers = outline.page_numbers(spec.options.pages)
        except (InputError, ConfigError) as exc:
            if spec.options.on_error == "raise":
                raise
            reason = exc.reason if isinstance(exc, InputError) else str(exc)
            error = DocumentError(type(exc).__name__, reason, str(exc))
            out.append(page_row(**where, error=error.encode()))
            continue
        encoded = encode_outline(outline)
        out += [page_row(**where, number=n, pages=len(numbers), outline=encoded) for n in numbers]
    return to_table(out)


# --- render: cache lookups, then page images ---------------------------------------------------

_OPEN: collections.OrderedDict[str, RasterDocument] = collections.OrderedDict()
"""Documents open in this worker process, most recently used last (a few: a task's pages are
consecutive pages of one or two documents)."""
_OPEN_MAX = 4


def _document(row: Row, outline: DocumentOutline, spec: JobSpec) -> RasterDocument:
    key = outline.info.doc_hash + "\x1f" + row["name"]
    doc = _OPEN.pop(key, None)
    if doc is None:
        src = source_of(row)
        password = password_for(spec.options.password, src)
        doc = open_document(src, password, known_hash=outline.info.doc_hash)
    _OPEN[key] = doc
    while len(_OPEN) > _OPEN_MAX:
        _OPEN.popitem(last=False)[1].close()
    return doc


def render(batch: pa.Table, spec: JobSpec) -> pa.Table:
    """Pages the cache already answered are filled in from it; the others are rendered."""
    out: list[Row] = []
    for row in from_table(batch):
        if row["number"] == 0:
            out.append(row)
            continue
        outline = decode_outline(row["outline"])
        key = page_key(outline.info.doc_hash, row["number"], spec.options.render, spec.identity)
        row["cache_key"] = key
        hit = _cached(spec.cache, key)
        if hit is not None:
            out.append({**row, "entry": hit, "cached": True, "finished": time.time()})
            continue
        out.append(_rendered(row, outline, key, spec))
    return to_table(out)


def _cached(cache: SharedCache | None, key: str) -> bytes | None:
    entry = cache.get(key) if cache is not None else None
    if entry is None:
        return None
    try:
        read_entry(key, entry)
    except (ValueError, TypeError, KeyError):  # damaged or stale: a miss
        return None
    return entry


def _rendered(row: Row, outline: DocumentOutline, key: str, spec: JobSpec) -> Row:
    number = row["number"]
    try:
        doc = _document(row, outline, spec)
        image = doc.render(number, spec.options.render, spec.hook)
    except (PageRenderError, InputError) as exc:  # logged with the failed pages
        image = failed_page_image(outline, number)
        raw = failed_answer(spec.engine, exc.reason)
        return {**row, "entry": encode_page(key, image, raw), "finished": time.time()}
    geometry = replace(image, image=b"", hint=None)
    placeholder = RawPage("", None, spec.engine.name, spec.engine.model, spec.engine.prompt)
    return {
        **row,
        "png": image.image,
        "hint": encode_hint(image.hint),
        "entry": encode_page(key, geometry, placeholder),
    }


# --- OCR: an actor keeping many requests in flight ----------------------------------------------


class Recognizer:
    """One OCR actor: an engine and an event loop on a thread of its own.

    Ray Data calls it with batches of rendered pages from a few threads at once
    (``max_concurrent_calls_per_actor``); every page of every call goes to the one loop, where
    at most ``concurrency`` requests are in flight, so the next batch fills the slots the
    previous one frees. Answers that succeeded go to the page cache at once."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.engine: Engine = make_engine(spec.options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._slots = asyncio.run_coroutine_threadsafe(self._make_slots(), self._loop).result()

    async def _make_slots(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(self.spec.options.concurrency)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = from_table(batch)
        work = asyncio.run_coroutine_threadsafe(self._all(rows), self._loop)
        return to_table(work.result())

    async def _all(self, rows: list[Row]) -> list[Row]:
        return list(await asyncio.gather(*(self._one(row) for row in rows)))

    async def _one(self, row: Row) -> Row:
        if row["number"] == 0 or not row["png"]:  # unreadable, cached or unrenderable
            return row
        outline = decode_outline(row["outline"])
        geometry, _ = read_entry(row["cache_key"], row["entry"])
        image = replace(
            geometry, source=outline.info, image=row["png"], hint=decode_hint(row["hint"])
        )
        async with self._slots:
            raw = await self._recognize(image)
        entry = encode_page(row["cache_key"], image, raw)
        cache = self.spec.cache
        if cache is not None and build_page(image, raw).status != "failed":
            await asyncio.to_thread(cache.put, row["cache_key"], entry)
        keep = self.spec.figures.mode != "none"
        return {
            **row,
            "png": row["png"] if keep else b"",
            "hint": b"",
            "entry": entry,
            "finished": time.time(),
        }

    async def _recognize(self, image: PageImage) -> RawPage:
        try:
            return await self.engine.recognize(image)
        except EngineError:  # nothing can succeed (no endpoint answers): the job stops
            raise
        except Exception as exc:  # an engine bug must not lose the page silently
            log.exception("%s page %d: engine failed", image.source.source, image.number)
            return failed_answer(self.engine, f"{type(exc).__name__}: {exc}")


def engine_facts(engine: Engine) -> EngineFacts:
    return EngineFacts(engine.name, engine.model, engine.prompt)
