"""Keep a LangChain vector store in sync with a folder, through LangChain's indexing API.

The record manager (e.g. ``SQLRecordManager`` on SQLite) holds one key per chunk in the store,
grouped by ``file_path``. A sync reads the indexed files' hashes from the store's own
metadata, OCRs only new and changed files and hands their chunks to ``index()`` with
``cleanup="incremental"`` and ``source_id_key="file_path"``: new keys are written, the old
chunks of a changed file are deleted. The chunks of removed files are deleted by their group.
An unchanged folder costs no request and no write.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._folder_index import (
    SyncReport,
    crop_options,
    indexed_files,
    loaded_files,
    plan_sync,
    prune_crops,
    scan_folder,
    store_key,
)
from ._hash_embedding import DIM, hashed_vector

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import RecordManager, index
    from langchain_core.vectorstores import VectorStore
except ImportError as exc:  # pragma: no cover - exercised by test_optional_imports
    raise ImportError(
        "sync_folder_langchain needs LangChain: pip install 'ocr-loaders[index]'"
    ) from exc

BATCH = 256
"""Keys read or deleted per call."""


class HashingEmbeddings(Embeddings):
    """STAND-IN embeddings (hashed bag of words), not a model: for tests, examples and CI.

    Deterministic and offline; texts sharing words are close. Use a real embedding model for
    real retrieval.
    """

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [hashed_vector(t, self.dim) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return hashed_vector(text, self.dim)


def document_key(doc: Document) -> str:
    """The store key of a loaded chunk (``index(key_encoder=document_key)``): a UUID of its
    stable id, text and metadata (:func:`ocr_loaders._folder_index.store_key`)."""
    return store_key(doc.id or "", doc.page_content, doc.metadata)


def _batches(keys: Sequence[str]) -> list[list[str]]:
    return [list(keys[i : i + BATCH]) for i in range(0, len(keys), BATCH)]


def _indexed_metadata(store: VectorStore, records: RecordManager) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for batch in _batches(records.list_keys()):
        found.extend(doc.metadata for doc in store.get_by_ids(batch))
    return found


def _drop(store: VectorStore, records: RecordManager, files: Sequence[str]) -> int:
    keys = records.list_keys(group_ids=list(files)) if files else []
    for batch in _batches(keys):
        store.delete(batch)
        records.delete_keys(batch)
    return len(keys)


def sync_folder_langchain(
    folder: str | Path,
    vector_store: VectorStore,
    record_manager: RecordManager,
    **options: Any,
) -> SyncReport:
    """Bring ``vector_store`` in line with ``folder``; what it did.

    Args:
        folder: the folder to index (walked as a load walks it).
        vector_store: any LangChain vector store that implements ``get_by_ids`` and
            ``delete`` (Qdrant, Chroma, PGVector, ...). One store and record-manager
            namespace per folder.
        record_manager: e.g. ``SQLRecordManager(namespace, db_url="sqlite:///records.db")``;
            its schema is created when missing.
        **options: for :class:`~ocr_loaders.DeepSeekOCRLoader` (``base_url``, ``images``,
            ``chunk_size``, ...). Change them and the chunks change: run a full re-index.
    """
    record_manager.create_schema()
    state = scan_folder(folder)
    indexed = _indexed_metadata(vector_store, record_manager)
    plan = plan_sync(state, indexed_files(indexed))
    if plan.unchanged:
        return SyncReport(plan)

    from .langchain import DeepSeekOCRLoader

    docs: list[Document] = []
    stats = None
    if plan.to_load:
        loader = DeepSeekOCRLoader(list(plan.to_load), **crop_options(options, plan, state))
        docs = loader.load()
        stats = loader.last_stats
    got = loaded_files(d.metadata for d in docs)
    failed = tuple(p for p in plan.to_load if p not in got)
    written = deleted = 0
    if docs:
        result = index(
            docs,
            record_manager,
            vector_store,
            cleanup="incremental",
            source_id_key="file_path",
            key_encoder=document_key,
        )
        written, deleted = result["num_added"] + result["num_updated"], result["num_deleted"]
    deleted += _drop(vector_store, record_manager, plan.removed + failed)
    kept = set(plan.skipped)
    prune_crops(
        options, [m for m in indexed if m.get("file_path") in kept] + [d.metadata for d in docs]
    )
    return SyncReport(plan, failed=failed, written=written, deleted=deleted, stats=stats)


__all__ = ["HashingEmbeddings", "document_key", "sync_folder_langchain"]
