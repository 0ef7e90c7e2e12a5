"""``read_documents``: the stages of a Ray job, wired into one lazy ``ray.data.Dataset``.

::

    documents ──plan──▶ pages ──render (tasks)──▶ images ──OCR (actor pool)──▶ answers
        (listing on        (one row per            (cache hits skip          (many requests in
         the driver)        selected page)          rendering)                flight per actor)
                               ──group by document──▶ assemble (page order, chunker) ──▶ chunk rows

Nothing runs until the dataset is consumed (``write_parquet``, ``iter_rows``, ``count``...);
Ray Data's streaming executor then bounds the pages in flight between stages.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from .._cache import default_cache_dir
from .._config import LoaderOptions
from .._engines.select import make_engine
from .._errors import ConfigError
from .._figures import FigureOptions
from ._documents import assemble
from ._inputs import document_rows
from ._stages import EngineFacts, JobSpec, Recognizer, engine_facts, plan, render
from ._stats import RunStats
from ._store import SharedCache

if TYPE_CHECKING:
    from ray.data import Dataset

log = logging.getLogger(__name__)

Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def job_spec(options: dict[str, Any]) -> JobSpec:
    """The :class:`JobSpec` of the adapters' keyword arguments (``cache_dir`` may be a URI)."""
    figures = FigureOptions.take(options)
    cache_root = options.pop("cache_dir", None)
    if options.pop("cache", False) and cache_root is None:
        cache_root = default_cache_dir()
    # Ray Data draws its own progress; a bar per assembling worker would only garble logs
    options.setdefault("verify", "off")  # the loaders' default "flag" is not carried here yet
    loader = dataclasses.replace(LoaderOptions.from_kwargs(**options), show_progress=False)
    if loader.verification.verify != "off":  # refused, not silently skipped
        raise ConfigError(
            "verify='flag' and 'repair' are not supported by ocr_loaders.ray yet (the text "
            "layer is not carried between its stages); use the single-process loaders, "
            "or leave verify out (off here)"
        )
    cache = SharedCache(os.fspath(cache_root)) if cache_root is not None else None
    if loader.engine == "vllm":
        s = loader.endpoint
        identity = f"raydata-vllm|{s.model}|{s.prompt}|{s.ngram_size}/{s.window_size}"
        identity += f"|{s.max_model_len}"
        return JobSpec(
            loader, figures, cache, identity, None, EngineFacts("vllm", s.model, s.prompt)
        )
    engine = make_engine(loader)  # cheap: no connection is made until a page is sent
    return JobSpec(
        loader, figures, cache, engine.cache_identity, engine.page_hook, engine_facts(engine)
    )


def read_documents(
    paths_or_uris: Paths,
    *,
    workers: int = 1,
    render_tasks: int | None = None,
    pages_per_task: int = 8,
    ocr_batch: int | None = None,
    stats: RunStats | None = None,
    gpus: int = 1,
    shuffle: Literal["sort", "hash"] = "sort",
    **options: Any,
) -> Dataset:
    """A ``ray.data.Dataset`` of chunk rows: ``id``, ``text`` and the flat chunk metadata.

    ``paths_or_uris``: local files, folders and globs (as the loaders take them) and
    filesystem URIs (``s3://``, ``gs://``, ``file://``...). ``options``: the adapters' own
    (``base_url`` with one or several endpoints, ``model``, ``pages``, ``password``,
    ``concurrency``, ``chunk_size``, ``images``...). ``cache_dir`` (a folder every worker
    reaches, or a URI) keeps every answered page, so a job started again sends only the
    missing pages. ``workers``: OCR actors, each with up to ``concurrency`` requests in
    flight; ``render_tasks``: the most render tasks at once (default: as Ray sees fit);
    ``pages_per_task``: pages per render task; ``ocr_batch``: pages per call of an OCR actor
    (default ``concurrency``). ``stats``: a :class:`RunStats` the documents
    report to. ``shuffle``: how pages are grouped by document: ``sort`` (tasks; the default,
    quick to start) or ``hash`` (Ray's aggregator actors, for very large jobs).
    ``engine="vllm"``: DeepSeek-OCR in-process on ``gpus`` GPU actors through
    ``ray.data.llm`` (untested without GPUs; see docs/scale-out.md).
    """
    import ray
    import ray.data

    _shuffle(shuffle)
    if workers < 1 or pages_per_task < 1 or gpus < 1:
        raise ConfigError("workers, pages_per_task and gpus must be >= 1")
    vllm_options = dict(options.pop("vllm_options", None) or {})
    spec = job_spec(options)
    if not ray.is_initialized():
        ray.init()
    rows = document_rows(paths_or_uris)
    docs = ray.data.from_items(rows, override_num_blocks=min(len(rows), 1024))
    pages = docs.map_batches(partial(plan, spec=spec), batch_size=1, batch_format="pyarrow")
    pages = pages.repartition(target_num_rows_per_block=pages_per_task)
    images = pages.map_batches(
        partial(render, spec=spec),
        batch_size=pages_per_task,
        batch_format="pyarrow",
        concurrency=render_tasks,
    )
    answers: Dataset
    if spec.engine.name == "vllm":
        from ._llm import llm_stage

        answers = llm_stage(
            images, spec, gpus=gpus, batch_size=spec.options.concurrency, extra=vllm_options
        )
    else:
        # calls of `concurrency` pages, two at a time: the actor's loop keeps up to
        # `concurrency` requests in flight over both (measured: smaller calls, more of them at
        # once, were 2-3x slower here; docs/scale-out.md)
        per_call = ocr_batch or spec.options.concurrency
        calls = 2 * -(-spec.options.concurrency // per_call)
        pool = ray.data.ActorPoolStrategy(
            size=workers, max_concurrent_calls_per_actor=calls, max_tasks_in_flight_per_actor=calls
        )
        answers = images.map_batches(
            Recognizer,
            batch_size=per_call,
            batch_format="pyarrow",
            fn_constructor_kwargs={"spec": spec},
            compute=pool,
            num_cpus=0.5,
        )
    partitions = max(1, min(len(rows), 64))
    answers.context.shuffle_strategy = _shuffle(shuffle)  # this job's own copy of the context
    return answers.groupby("doc", num_partitions=partitions).map_groups(
        partial(assemble, spec=spec, stats=stats), batch_format="pyarrow"
    )


def _shuffle(name: str) -> Any:
    from ray.data.context import ShuffleStrategy

    strategies = {
        "sort": ShuffleStrategy.SORT_SHUFFLE_PULL_BASED,
        "hash": ShuffleStrategy.HASH_SHUFFLE,
    }
    if name not in strategies:
        raise ConfigError(f"shuffle must be 'sort' or 'hash', got {name!r}")
    return strategies[name]


__all__ = ["read_documents"]
