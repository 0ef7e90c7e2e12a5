"""Feeding a job's chunk rows into a LlamaIndex or LangChain vector store, in batches.

Files are written with Ray Data's own sinks (``ds.write_parquet(...)``, ``ds.write_json(...)``);
a vector store usually sits behind one client, so :func:`add_to_vector_store` streams the
dataset to this process in batches and hands each batch to the store: a LangChain
``VectorStore`` (``add_documents`` with the chunk ids, so re-ingesting a file replaces its
chunks) or a LlamaIndex index (``insert_nodes``: ``Document`` s, and ``ImageNode`` s for figure
rows). Metadata is the chunk's own: the figure-only columns are dropped from chunk rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .._errors import ConfigError
from .._records import EXCLUDED_FROM_EMBEDDING
from ._documents import CHUNK_COLUMNS, FIGURE_DEFAULTS

Row = dict[str, Any]


class _Rows(Protocol):
    """What is read from a dataset: ``ray.data.Dataset.iter_rows``."""

    def iter_rows(self) -> Iterable[Row]: ...


def row_metadata(row: Row) -> dict[str, Any]:
    """A chunk row's metadata as the loaders give it (no figure keys on a chunk)."""
    meta = {k: v for k, v in row.items() if k in CHUNK_COLUMNS and k not in ("id", "text")}
    if not meta.get("crop_paths"):  # the loaders set it only on chunks that have crops
        meta.pop("crop_paths", None)
    if meta.get("figure_index", -1) == -1:
        for key in FIGURE_DEFAULTS:
            meta.pop(key, None)
    else:
        for key in ("image_path", "image_base64"):
            if not meta.get(key):
                meta.pop(key, None)
    return meta


def langchain_documents(rows: list[Row]) -> list[Any]:
    from langchain_core.documents import Document

    return [Document(page_content=r["text"], metadata=row_metadata(r), id=r["id"]) for r in rows]


def llamaindex_nodes(rows: list[Row]) -> list[Any]:
    from llama_index.core.schema import Document, ImageNode

    nodes: list[Any] = []
    for r in rows:
        meta = row_metadata(r)
        image = meta.pop("image_base64", None)
        keys = [k for k in EXCLUDED_FROM_EMBEDDING if k in meta]
        common = {
            "id_": r["id"],
            "text": r["text"],
            "metadata": meta,
            "excluded_embed_metadata_keys": keys,
            "excluded_llm_metadata_keys": list(keys),
        }
        if "figure_index" in meta:
            nodes.append(
                ImageNode(
                    image=image,
                    image_path=meta.get("image_path"),
                    image_mimetype=meta["image_mimetype"],
                    **common,
                )
            )
        else:
            nodes.append(Document(**common))
    return nodes


def add_to_vector_store(dataset: _Rows, store: Any, *, batch_size: int = 256) -> int:
    """Add every row of ``dataset`` to ``store`` in batches; returns how many were added.

    ``store``: a LangChain ``VectorStore`` (anything with ``add_documents``) or a LlamaIndex
    index (anything with ``insert_nodes``, e.g. ``VectorStoreIndex``).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if hasattr(store, "add_documents"):

        def add(rows: list[Row]) -> None:
            store.add_documents(langchain_documents(rows), ids=[r["id"] for r in rows])
    elif hasattr(store, "insert_nodes"):

        def add(rows: list[Row]) -> None:
            store.insert_nodes(llamaindex_nodes(rows))
    else:
        raise ConfigError(
            "store must be a LangChain VectorStore (add_documents) or a LlamaIndex index "
            f"(insert_nodes), got {type(store).__name__}"
        )
    added, batch = 0, []
    for row in dataset.iter_rows():
        batch.append(dict(row))
        if len(batch) == batch_size:
            add(batch)
            added, batch = added + len(batch), []
    if batch:
        add(batch)
        added += len(batch)
    return added
