"""What a nightly re-sync costs: OCR requests, store writes and time, both frameworks (issue 19).

    python benchmarks/index_sync.py        # ~1-2 minutes; rewrites its section of docs/indexing.md

A folder of FILES PDFs of PAGES pages each is synced into Qdrant (local mode) through the
LlamaIndex and the LangChain helper, against the project's fake DeepSeek-OCR server (grid
answers, no simulated GPU time: the OCR itself costs nothing here, so the times are the
client's own work). Then: a re-run over the unchanged folder; a run after 2 files changed, 1
was added and 1 deleted; and, for comparison, what re-ingesting the whole folder costs
without the helper (every page OCR'd again, every chunk written again: the pipeline with its
docstore still dedups the writes, the OCR is the price).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymupdf
from qdrant_client import QdrantClient, models

from ocr_loaders import SyncReport
from ocr_loaders.testing import FakeOCRServer, grid_responder

ROOT = Path(__file__).resolve().parents[1]
DOC_OUT = ROOT / "docs" / "indexing.md"
START, END = "<!-- index-sync benchmark: start -->", "<!-- index-sync benchmark: end -->"
FILES, PAGES = 40, 3
OPTIONS: dict[str, Any] = {"chunk_size": 256, "concurrency": 16}

warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)


def write_pdf(path: Path, text: str) -> None:
    doc = pymupdf.open()
    for i in range(PAGES):
        page = doc.new_page(width=612, height=792)
        page.insert_text((72, 100), f"{text}, page {i + 1}", fontsize=20)
    doc.save(path)


class Counter:
    """Calls that change a Qdrant client's data."""

    WRITES = ("upsert", "upload_points", "batch_update_points", "delete", "set_payload")

    def __init__(self, client: QdrantClient) -> None:
        self.count = 0
        for name in self.WRITES:
            setattr(client, name, self._wrap(getattr(client, name)))

    def _wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        return call


def llamaindex_sync(client: QdrantClient, store: Path) -> Callable[[Path], SyncReport]:
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    from ocr_loaders import ChunkNodes, HashingEmbedding, sync_folder_llamaindex

    vector_store = QdrantVectorStore(client=client, collection_name="bench")

    def sync(folder: Path) -> SyncReport:
        pipeline = IngestionPipeline(
            transformations=[ChunkNodes(), HashingEmbedding()],
            docstore=SimpleDocumentStore(),
            vector_store=vector_store,
            docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
        )
        return sync_folder_llamaindex(folder, pipeline, persist_dir=store / "p", **OPTIONS)

    return sync


def langchain_sync(client: QdrantClient, store: Path) -> Callable[[Path], SyncReport]:
    from langchain_classic.indexes import SQLRecordManager
    from langchain_qdrant import QdrantVectorStore

    from ocr_loaders import HashingEmbeddings, sync_folder_langchain

    client.create_collection(
        "bench", vectors_config=models.VectorParams(size=256, distance=models.Distance.COSINE)
    )
    vector_store = QdrantVectorStore(client, "bench", embedding=HashingEmbeddings())
    records = SQLRecordManager("bench", db_url=f"sqlite:///{store / 'records.db'}")

    def sync(folder: Path) -> SyncReport:
        return sync_folder_langchain(folder, vector_store, records, **OPTIONS)

    return sync


def measure(framework: str, server: FakeOCRServer, work: Path) -> list[str]:
    folder, store = work / framework / "docs", work / framework / "store"
    folder.mkdir(parents=True)
    store.mkdir(parents=True)
    for i in range(FILES):
        write_pdf(folder / f"f{i:03d}.pdf", f"file {i} of {framework}")
    client = QdrantClient(path=str(store / "qdrant"))
    make = llamaindex_sync if framework == "llamaindex" else langchain_sync
    sync = make(client, store)
    counter = Counter(client)
    rows = []

    def step(name: str) -> None:
        server.reset_stats()
        counter.count = 0
        t0 = time.perf_counter()
        report = sync(folder)
        took = time.perf_counter() - t0
        points = client.count("bench").count
        rows.append(
            f"| {framework} | {name} | {report.summary()} | {len(server.requests)} | "
            f"{counter.count} | {points} | {took:.2f} s |"
        )
        print(rows[-1], flush=True)

    try:
        step(f"first sync, {FILES} files x {PAGES} pages")
        step("re-run, nothing changed")
        for i in (1, 2):
            write_pdf(folder / f"f{i:03d}.pdf", f"file {i} of {framework}, second edition")
        write_pdf(folder / "new.pdf", f"a new file of {framework}")
        (folder / "f003.pdf").unlink()
        step("2 changed, 1 added, 1 deleted")
        server.reset_stats()
        t0 = time.perf_counter()
        if framework == "llamaindex":
            from ocr_loaders import DeepSeekOCRReader

            DeepSeekOCRReader(**OPTIONS).load_data(folder)
        else:
            from ocr_loaders import DeepSeekOCRLoader

            DeepSeekOCRLoader(folder, **OPTIONS).load()
        took = time.perf_counter() - t0
        rows.append(
            f"| {framework} | without the helper: load the whole folder again (OCR only) | "
            f"all {FILES} files | {len(server.requests)} | - | - | {took:.2f} s |"
        )
        print(rows[-1], flush=True)
    finally:
        client.close()
    return rows


def main() -> None:
    rows: list[str] = []
    with FakeOCRServer(grid_responder()) as server, tempfile.TemporaryDirectory() as tmp:
        OPTIONS["base_url"] = server.base_url
        for framework in ("llamaindex", "langchain"):
            rows += measure(framework, server, Path(tmp))
    section = "\n".join(
        [
            START,
            f"Measured by `python benchmarks/index_sync.py` ({FILES} PDFs of {PAGES} pages, the"
            " fake server's grid answers, Qdrant local mode, stand-in embeddings; 2 shared"
            " cores, so times are indicative).",
            "",
            "| framework | run | report | OCR requests | store writes | points | time |",
            "|---|---|---|---|---|---|---|",
            *rows,
            END,
        ]
    )
    text = DOC_OUT.read_text()
    if START in text:
        text = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n## Measured\n\n" + section + "\n"
    DOC_OUT.write_text(text)
    print(f"wrote {DOC_OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
