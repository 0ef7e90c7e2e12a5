"""A folder kept in sync with a real embedded vector store (Qdrant, local mode), both frameworks.

Four files are indexed; an unchanged re-run costs no OCR request and no store write; then one
file changes, one is added and one deleted: only the changed and new files are OCR'd, and the
store holds exactly the chunks of the current files. Metadata filters work in the store, and
figures are found by their caption.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from ocr_loaders import ConfigError, InputNotFoundError
from ocr_loaders._folder_index import (
    crop_options,
    indexed_files,
    plan_sync,
    prune_crops,
    scan_folder,
    store_key,
)
from ocr_loaders._hash_embedding import hashed_vector
from ocr_loaders.testing import FakeOCRServer, OCRReply, OCRRequest

from .conftest import chats

pytestmark = pytest.mark.filterwarnings(
    # llama-index asks local Qdrant for payload indexes; local mode filters without them
    "ignore:Payload indexes have no effect:UserWarning"
)
qdrant_client = pytest.importorskip("qdrant_client", reason="the 'index' extra is not installed")

NOUNS = (
    *("granite", "basalt", "quartz", "marble", "slate", "shale", "chalk", "flint"),
    *("garnet", "topaz", "amber", "coral", "cedar", "maple", "birch", "aspen"),
    *("willow", "alder", "hazel", "rowan", "spruce", "larch", "poplar", "walnut"),
)


def _tag(label: str, box: tuple[int, int, int, int]) -> str:
    return f"<|ref|>{label}<|/ref|><|det|>[[{box[0]}, {box[1]}, {box[2]}, {box[3]}]]<|/det|>"


def answer(request: OCRRequest) -> OCRReply:
    """A page with a title, a paragraph, a figure and its caption, all named from the image."""
    seed = zlib.crc32(request.image)
    a, b, c = (NOUNS[(seed >> s) % len(NOUNS)] for s in (0, 7, 14))
    return OCRReply(
        f"{_tag('title', (80, 40, 900, 80))}\n# Notes on {a}\n\n"
        f"{_tag('text', (80, 100, 900, 200))}\nThe {a} survey lists {b} samples.\n\n"
        f"{_tag('image', (200, 250, 700, 550))}\n\n"
        f"{_tag('image_caption', (200, 560, 700, 590))}\nFigure {seed % 97}. The {c} {b} map.\n"
    )


@pytest.fixture(scope="module")
def ocr_server() -> Iterator[FakeOCRServer]:
    with FakeOCRServer(answer) as srv:
        yield srv


def write_pdf(path: Path, text: str, pages: int = 1) -> Path:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=612, height=792)
        page.insert_text((72, 100), f"{text}, page {i + 1}", fontsize=20)
    doc.save(path)
    return path


def first_folder(folder: Path) -> Path:
    folder.mkdir()
    write_pdf(folder / "a.pdf", "alpha file", pages=2)
    write_pdf(folder / "b.pdf", "bravo file")
    (folder / "sub").mkdir()
    write_pdf(folder / "sub" / "c.pdf", "charlie file")
    write_pdf(folder / "d.pdf", "delta file")
    return folder


def change_folder(folder: Path) -> None:
    """b changes, e is new, c is gone."""
    write_pdf(folder / "b.pdf", "bravo file, second edition")
    write_pdf(folder / "e.pdf", "echo file", pages=2)
    (folder / "sub" / "c.pdf").unlink()


def path_of(folder: Path, name: str) -> str:
    return str((folder / name).resolve())


class Writes:
    """Counts the calls that change a Qdrant client's data."""

    METHODS = (
        "upsert",
        "upload_points",
        "upload_collection",
        "batch_update_points",
        "delete",
        "set_payload",
        "overwrite_payload",
        "delete_payload",
        "update_vectors",
        "delete_vectors",
        "delete_collection",
    )

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in self.METHODS:
            monkeypatch.setattr(client, name, self._counting(name, getattr(client, name)))

    def _counting(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return real(*args, **kwargs)

        return call


def points(client: Any, collection: str) -> list[Any]:
    found, offset = [], None
    while True:
        batch, offset = client.scroll(collection, limit=256, offset=offset, with_payload=True)
        found.extend(batch)
        if offset is None:
            return found


OPTIONS: dict[str, Any] = {"chunk_size": 64}


# -- the pure core -------------------------------------------------------------------------


def test_plan_sorts_files_into_added_updated_removed_skipped() -> None:
    current = {"/a": "1", "/b": "2", "/e": "5"}
    indexed = {"/a": frozenset({"1"}), "/b": frozenset({"0"}), "/c": frozenset({"3"})}
    plan = plan_sync(current, indexed)
    assert (plan.added, plan.updated, plan.removed, plan.skipped) == (
        ("/e",),
        ("/b",),
        ("/c",),
        ("/a",),
    )
    assert plan.to_load == ("/b", "/e")
    assert plan_sync({"/a": "1"}, {"/a": frozenset({"1"})}).unchanged
    # a file indexed under two hashes (a sync stopped half-way) is rebuilt
    assert plan_sync({"/a": "1"}, {"/a": frozenset({"1", "0"})}).updated == ("/a",)


def test_copies_are_indexed_once_where_chunk_ids_decide() -> None:
    same = {"/x": "h", "/y": "h", "/z": "k"}
    fresh = plan_sync(same, {}, one_per_content=True)
    assert (fresh.added, fresh.copies) == (("/x", "/z"), ("/y",))
    assert plan_sync(same, {}).added == ("/x", "/y", "/z")  # LangChain keys see the path too
    # the store then holds /x (and /z): nothing to do, /y stays a copy
    indexed = {"/x": frozenset({"h"}), "/z": frozenset({"k"})}
    again = plan_sync(same, indexed, one_per_content=True)
    assert again.unchanged and again.copies == ("/y",) and again.to_load == ()
    # the indexed one goes: its copy is indexed in its place
    gone = plan_sync({"/y": "h"}, {"/x": frozenset({"h"})}, one_per_content=True)
    assert (gone.added, gone.removed, gone.copies) == (("/y",), ("/x",), ())


def test_indexed_files_and_scan(tmp_path: Path) -> None:
    metas = [
        {"file_path": "/a", "doc_hash": "1"},
        {"file_path": "/a", "doc_hash": "1"},
        {"file_path": "/b", "doc_hash": "2"},
        {"other": 1},
    ]
    assert indexed_files(metas) == {"/a": frozenset({"1"}), "/b": frozenset({"2"})}
    folder = first_folder(tmp_path / "docs")
    (folder / "notes.txt").write_text("not a document")
    (folder / ".hidden.pdf").write_bytes(b"%PDF-1.7\n")
    state = scan_folder(folder)
    assert sorted(state) == sorted(
        path_of(folder, n) for n in ("a.pdf", "b.pdf", "sub/c.pdf", "d.pdf")
    )
    assert all(len(h) == 64 for h in state.values())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert scan_folder(empty) == {}
    with pytest.raises(InputNotFoundError, match="nowhere"):
        scan_folder(tmp_path / "nowhere")


def test_each_sync_crops_into_its_own_folder_and_unlinked_ones_go(tmp_path: Path) -> None:
    options = {"images": "files", "images_dir": str(tmp_path / "crops"), "dpi": 100}
    first = plan_sync({"/x/a.pdf": "1", "/y/a.pdf": "2"}, {})
    second = plan_sync({"/x/a.pdf": "1", "/y/a.pdf": "3"}, {"/x/a.pdf": frozenset({"1"})})
    one = crop_options(options, first, {"/x/a.pdf": "1", "/y/a.pdf": "2"})
    two = crop_options(options, second, {"/x/a.pdf": "1", "/y/a.pdf": "3"})
    assert one["dpi"] == 100 and Path(one["images_dir"]).parent == tmp_path / "crops"
    assert Path(one["images_dir"]).name.startswith("sync-")
    assert one["images_dir"] != two["images_dir"]  # /y/a.pdf's new crops never overwrite /x's
    assert crop_options({"images": "inline"}, first, {}) == {"images": "inline"}
    for made in (one, two):
        Path(made["images_dir"]).mkdir(parents=True)
        (Path(made["images_dir"]) / "a-p1-0.png").write_bytes(b"png")
    (tmp_path / "crops" / "mine").mkdir()
    linked = [{"image_path": str(Path(two["images_dir"]) / "a-p1-0.png")}, {"page": 0}]
    assert prune_crops(options, linked) == 1
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == sorted(
        ["mine", Path(two["images_dir"]).name]
    )
    assert prune_crops({"images": "none"}, []) == 0


def test_stand_in_embedding_and_store_keys() -> None:
    one = hashed_vector("the granite map of alder")
    assert len(one) == 256 and abs(sum(v * v for v in one) - 1.0) < 1e-9
    assert one == hashed_vector("The GRANITE map, of alder!")  # words, not case or punctuation
    near = sum(x * y for x, y in zip(one, hashed_vector("granite map"), strict=True))
    far = sum(x * y for x, y in zip(one, hashed_vector("quartz cedar survey"), strict=True))
    assert near > 0.5 > abs(far)
    assert hashed_vector("") == [1.0] + [0.0] * 255
    key = store_key("abc-p1-c0", "text", {"page": 0})
    assert key == store_key("abc-p1-c0", "text", {"page": 0})
    assert key != store_key("abc-p1-c0", "text!", {"page": 0})
    assert len(key) == 36  # a UUID, as Qdrant requires


# -- LlamaIndex ------------------------------------------------------------------------------


@dataclass
class LlamaStore:
    client: Any
    pipeline: Any
    vector_store: Any
    collection: str = "docs"


@pytest.fixture
def qdrant(tmp_path: Path) -> Iterator[Any]:
    """A Qdrant client in local mode (no server) on a folder; closed after the test."""
    client = qdrant_client.QdrantClient(path=str(tmp_path / "qdrant"))
    yield client
    client.close()


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


# -- LangChain -------------------------------------------------------------------------------


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


def test_sync_helpers_name_the_extra_when_a_framework_is_missing() -> None:
    from .test_optional_imports import run

    done = run("""
        from ocr_loaders import SyncReport  # framework-free
        for name in ("sync_folder_llamaindex", "sync_folder_langchain"):
            try:
                __import__("ocr_loaders", fromlist=[name]).__getattribute__(name)
            except ImportError as exc:
                print(exc)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pip install 'ocr-loaders[index]'") == 2
