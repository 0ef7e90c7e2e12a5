"""A folder kept in sync with Qdrant (local mode) through LlamaIndex's IngestionPipeline.

Four files are indexed; an unchanged re-run costs no OCR request and no store write; then one
file changes, one is added and one deleted: only the changed and new files are OCR'd, and the
store holds exactly the chunks of the current files. Metadata filters work in the store, and
figures are found by their caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ocr_loaders import ConfigError
from ocr_loaders._folder_index import scan_folder
from ocr_loaders.testing import FakeOCRServer

from .conftest import chats
from .index_support import (
    OPTIONS,
    Writes,
    change_folder,
    first_folder,
    ocr_server,
    path_of,
    points,
    qdrant,
    write_pdf,
)

pytest.importorskip("qdrant_client", reason="the 'index' extra is not installed")
pytestmark = pytest.mark.filterwarnings(
    # llama-index asks local Qdrant for payload indexes; local mode filters without them
    "ignore:Payload indexes have no effect:UserWarning"
)
__all__ = ["ocr_server", "qdrant"]  # fixtures


@dataclass
class LlamaStore:
    client: Any
    pipeline: Any
    vector_store: Any
    collection: str = "docs"


def llama_store(client: Any) -> LlamaStore:
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    from ocr_loaders import ChunkNodes, HashingEmbedding

    vector_store = QdrantVectorStore(client=client, collection_name="docs")
    pipeline = IngestionPipeline(
        transformations=[ChunkNodes(), HashingEmbedding()],
        docstore=SimpleDocumentStore(),
        vector_store=vector_store,
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
    )
    return LlamaStore(client, pipeline, vector_store)


def test_llamaindex_folder_sync_with_qdrant(
    tmp_path: Path, qdrant: Any, ocr_server: FakeOCRServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters, VectorStoreQuery

    from ocr_loaders import HashingEmbedding, sync_folder_llamaindex

    folder = first_folder(tmp_path / "docs")
    persist = tmp_path / "pipeline"
    store = llama_store(qdrant)
    options = {
        **OPTIONS,
        "base_url": ocr_server.base_url,
        "images": "files",
        "images_dir": str(tmp_path / "crops"),
    }
    ocr_server.reset_stats()

    first = sync_folder_llamaindex(folder, store.pipeline, persist_dir=persist, **options)
    assert len(first.added) == 4 and not (first.updated or first.removed or first.skipped)
    assert len(chats(ocr_server)) == 5  # a: 2 pages, b, c, d: 1
    stored = points(store.client, store.collection)
    assert first.written == len(stored) > 0
    refs = {p.payload["doc_id"] for p in stored}
    assert len(refs) == len(stored)  # one point per chunk or figure
    assert refs == set(store.pipeline.docstore.get_all_document_hashes().values())
    assert {p.payload["block_types"] for p in stored} >= {"image"}  # figures stored too

    # unchanged: a fresh pipeline object, state read back from disk; nothing sent or written
    ocr_server.reset_stats()
    store.pipeline = llama_store_pipeline(store)
    writes = Writes(store.client, monkeypatch)
    again = sync_folder_llamaindex(folder, store.pipeline, persist_dir=persist, **options)
    assert len(again.skipped) == 4 and again.plan.unchanged
    assert (again.written, again.deleted, again.stats) == (0, 0, None)
    assert chats(ocr_server) == []
    assert writes.calls == []
    assert sorted(p.id for p in points(store.client, store.collection)) == sorted(
        p.id for p in stored
    )

    # b changes, e is new, c is gone
    change_folder(folder)
    ocr_server.reset_stats()
    before = {p.payload["doc_id"]: p.payload["file_path"] for p in stored}
    third = sync_folder_llamaindex(folder, store.pipeline, persist_dir=persist, **options)
    assert third.added == (path_of(folder, "e.pdf"),)
    assert third.updated == (path_of(folder, "b.pdf"),)
    assert third.removed == (path_of(folder, "sub/c.pdf"),)
    assert third.skipped == (path_of(folder, "a.pdf"), path_of(folder, "d.pdf"))
    assert len(chats(ocr_server)) == 3  # b: 1 page, e: 2; nothing else
    assert {"delete", "upload_points"} <= set(writes.calls)  # the counter sees writes
    assert third.stats is not None and third.stats.pages == 3
    now = points(store.client, store.collection)
    current = scan_folder(folder)
    assert {(p.payload["file_path"], p.payload["doc_hash"]) for p in now} == set(current.items())
    refs_now = [p.payload["doc_id"] for p in now]
    assert len(refs_now) == len(set(refs_now))  # no duplicates
    kept = {r for r, f in before.items() if f in third.skipped}
    assert kept <= set(refs_now)  # unchanged files keep their ids
    assert third.deleted == len([f for f in before.values() if f not in third.skipped])
    assert set(refs_now) == set(store.pipeline.docstore.get_all_document_hashes().values())
    # same state when built from scratch: no orphans
    assert len(now) == len(kept) + third.written

    # metadata filters in the store
    index_query = HashingEmbedding().get_query_embedding("survey samples map")

    def found(**match: Any) -> list[Any]:
        filters = MetadataFilters(
            filters=[MetadataFilter(key=k, value=v) for k, v in match.items()]
        )
        query = VectorStoreQuery(query_embedding=index_query, similarity_top_k=50, filters=filters)
        return list(store.vector_store.query(query).nodes)

    page_one = found(page=1)
    assert page_one and {n.metadata["file_name"] for n in page_one} == {"a.pdf", "e.pdf"}
    assert all(n.metadata["page"] == 1 for n in page_one)
    assert {n.metadata["page"] for n in found(file_name="a.pdf")} == {0, 1}
    figures = found(block_types="image")
    assert len(figures) == 6 and all(type(n).__name__ == "ImageNode" for n in figures)
    assert len(found(ocr_status="ok")) == len(now)

    # a figure is found by its caption
    target = next(n for n in figures if n.metadata["file_name"] == "e.pdf")
    query = VectorStoreQuery(
        query_embedding=HashingEmbedding().get_query_embedding(target.get_content()),
        similarity_top_k=1,
    )
    hit = store.vector_store.query(query).nodes[0]
    assert hit.ref_doc_id == target.ref_doc_id
    assert all(Path(n.image_path).is_file() for n in figures)  # unchanged files' crops kept
    assert len(list((tmp_path / "crops").glob("sync-*"))) == 2

    # the last files of the first sync go: their crop folder goes with them
    (folder / "a.pdf").unlink()
    (folder / "d.pdf").unlink()
    last = sync_folder_llamaindex(folder, store.pipeline, persist_dir=persist, **options)
    assert len(last.removed) == 2 and last.stats is None
    assert len(list((tmp_path / "crops").glob("sync-*"))) == 1
    left = points(store.client, store.collection)
    assert {p.payload["file_name"] for p in left} == {"b.pdf", "e.pdf"}
    assert isinstance(store.pipeline, IngestionPipeline)


def llama_store_pipeline(store: LlamaStore) -> Any:
    """A new pipeline over the same collection, with an empty docstore (loaded from disk)."""
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore

    from ocr_loaders import ChunkNodes, HashingEmbedding

    return IngestionPipeline(
        transformations=[ChunkNodes(), HashingEmbedding()],
        docstore=SimpleDocumentStore(),
        vector_store=store.vector_store,
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
    )


def test_llamaindex_sync_refuses_a_pipeline_that_cannot_delete(tmp_path: Path, qdrant: Any) -> None:
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore

    from ocr_loaders import HashingEmbedding, sync_folder_llamaindex

    folder = first_folder(tmp_path / "docs")
    with pytest.raises(ConfigError, match="docstore and a vector store"):
        sync_folder_llamaindex(folder, IngestionPipeline(transformations=[HashingEmbedding()]))
    store = llama_store(qdrant)
    upserts_only = IngestionPipeline(
        transformations=[HashingEmbedding()],
        docstore=SimpleDocumentStore(),
        vector_store=store.vector_store,
        docstore_strategy=DocstoreStrategy.UPSERTS,
    )
    with pytest.raises(ConfigError, match="UPSERTS_AND_DELETE"):
        sync_folder_llamaindex(folder, upserts_only)


def test_identical_files_are_read_once_with_llamaindex(
    tmp_path: Path, qdrant: Any, ocr_server: FakeOCRServer
) -> None:
    from ocr_loaders import sync_folder_llamaindex

    folder = tmp_path / "docs"
    folder.mkdir()
    data = write_pdf(folder / "report.pdf", "hotel file").read_bytes()
    (folder / "report (1).pdf").write_bytes(data)  # the same download, twice
    store = llama_store(qdrant)
    options = {**OPTIONS, "base_url": ocr_server.base_url}
    ocr_server.reset_stats()
    first = sync_folder_llamaindex(folder, store.pipeline, **options)
    assert first.copies == (path_of(folder, "report.pdf"),)
    assert first.added == (path_of(folder, "report (1).pdf"),)
    assert len(chats(ocr_server)) == 1
    again = sync_folder_llamaindex(folder, store.pipeline, **options)
    assert again.plan.unchanged and len(chats(ocr_server)) == 1
    assert {p.payload["file_name"] for p in points(qdrant, "docs")} == {"report (1).pdf"}
