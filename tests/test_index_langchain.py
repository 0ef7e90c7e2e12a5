"""A folder kept in sync with Qdrant (local mode) through LangChain's index() and a
SQLRecordManager on SQLite: the same story as test_index_llamaindex.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
__all__ = ["ocr_server", "qdrant"]  # fixtures


def lc_store(client: Any, path: Path) -> tuple[Any, Any]:
    from langchain_classic.indexes import SQLRecordManager
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import models

    from ocr_loaders import HashingEmbeddings

    if not client.collection_exists("docs"):
        client.create_collection(
            "docs", vectors_config=models.VectorParams(size=256, distance=models.Distance.COSINE)
        )
    store = QdrantVectorStore(client=client, collection_name="docs", embedding=HashingEmbeddings())
    records = SQLRecordManager("qdrant/docs", db_url=f"sqlite:///{path / 'records.db'}")
    return store, records


def test_langchain_folder_sync_with_qdrant(
    tmp_path: Path, qdrant: Any, ocr_server: FakeOCRServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdrant_client import models

    from ocr_loaders import sync_folder_langchain

    folder = first_folder(tmp_path / "docs")
    client = qdrant
    store, records = lc_store(client, tmp_path)
    options = {
        **OPTIONS,
        "base_url": ocr_server.base_url,
        "images": "files",
        "images_dir": str(tmp_path / "crops"),
    }
    ocr_server.reset_stats()

    first = sync_folder_langchain(folder, store, records, **options)
    assert len(first.added) == 4
    assert len(chats(ocr_server)) == 5
    stored = points(client, "docs")
    assert first.written == len(stored) > 0
    assert sorted(p.id for p in stored) == sorted(records.list_keys())

    ocr_server.reset_stats()
    writes = Writes(client, monkeypatch)
    again = sync_folder_langchain(folder, store, records, **options)
    assert len(again.skipped) == 4 and (again.written, again.deleted) == (0, 0)
    assert chats(ocr_server) == [] and writes.calls == []
    assert sorted(p.id for p in points(client, "docs")) == sorted(p.id for p in stored)

    change_folder(folder)
    ocr_server.reset_stats()
    before = {p.id: p.payload["metadata"]["file_path"] for p in stored}
    third = sync_folder_langchain(folder, store, records, **options)
    assert (third.added, third.updated, third.removed) == (
        (path_of(folder, "e.pdf"),),
        (path_of(folder, "b.pdf"),),
        (path_of(folder, "sub/c.pdf"),),
    )
    assert len(third.skipped) == 2 and len(chats(ocr_server)) == 3
    assert "upsert" in writes.calls and "delete" in writes.calls  # the counter sees writes
    now = points(client, "docs")
    metas = [p.payload["metadata"] for p in now]
    assert {(m["file_path"], m["doc_hash"]) for m in metas} == set(scan_folder(folder).items())
    kept = {k for k, f in before.items() if f in third.skipped}
    assert kept <= {p.id for p in now}
    assert len(now) == len(kept) + third.written  # no orphans, no duplicates
    assert third.deleted == len(before) - len(kept)
    assert sorted(p.id for p in now) == sorted(records.list_keys())

    def where(key: str, value: Any) -> models.Filter:
        return models.Filter(
            must=[
                models.FieldCondition(key=f"metadata.{key}", match=models.MatchValue(value=value))
            ]
        )

    page_one = store.similarity_search("survey", k=50, filter=where("page", 1))
    assert page_one and all(d.metadata["page"] == 1 for d in page_one)
    assert {d.metadata["file_name"] for d in page_one} == {"a.pdf", "e.pdf"}
    assert {
        d.metadata["page"]
        for d in store.similarity_search("x", k=50, filter=where("file_name", "a.pdf"))
    } == {0, 1}
    figures = store.similarity_search("map", k=50, filter=where("block_types", "image"))
    assert len(figures) == 6 and all(Path(d.metadata["image_path"]).is_file() for d in figures)
    assert len(store.similarity_search("x", k=100, filter=where("ocr_status", "ok"))) == len(now)
    target = next(d for d in figures if d.metadata["file_name"] == "e.pdf")
    hit = store.similarity_search(target.page_content, k=1)[0]
    assert hit.metadata["image_path"] == target.metadata["image_path"]
    assert len(list((tmp_path / "crops").glob("sync-*"))) == 2

    (folder / "a.pdf").unlink()
    (folder / "d.pdf").unlink()
    last = sync_folder_langchain(folder, store, records, **options)
    assert len(last.removed) == 2 and last.stats is None and last.written == 0
    assert len(list((tmp_path / "crops").glob("sync-*"))) == 1
    left = points(client, "docs")
    assert {p.payload["metadata"]["file_name"] for p in left} == {"b.pdf", "e.pdf"}
    assert last.deleted == len(now) - len(left)
    assert sorted(p.id for p in left) == sorted(records.list_keys())


def test_a_file_that_cannot_be_read_is_reported_and_tried_again(
    tmp_path: Path, qdrant: Any, ocr_server: FakeOCRServer
) -> None:
    from ocr_loaders import sync_folder_langchain

    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "good.pdf", "golf file")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n")  # a header and nothing else
    store, records = lc_store(qdrant, tmp_path)
    options = {**OPTIONS, "base_url": ocr_server.base_url}
    first = sync_folder_langchain(folder, store, records, **options)
    assert first.failed == (path_of(folder, "broken.pdf"),)
    assert first.stats is not None and len(first.stats.failures) == 1
    assert "1 failed" in first.summary()
    stored = {p.payload["metadata"]["file_name"] for p in points(qdrant, "docs")}
    assert stored == {"good.pdf"}
    ocr_server.reset_stats()
    again = sync_folder_langchain(folder, store, records, **options)
    assert again.added == (path_of(folder, "broken.pdf"),) and again.failed == again.added
    assert again.skipped == (path_of(folder, "good.pdf"),)
    assert chats(ocr_server) == [] and again.written == 0
