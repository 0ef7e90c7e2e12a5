"""Keep a vector store in sync with a folder: run it every night, only what changed is OCR'd.

    python examples/index_folder.py FOLDER [STORE_DIR] [--langchain] [QUERY]

The store is Qdrant in local mode (a folder on disk, no server: ``pip install
'ocr-loaders[index]'``). LlamaIndex (the default) runs an ``IngestionPipeline`` whose docstore
lives in STORE_DIR/pipeline; ``--langchain`` uses LangChain's ``index()`` with a
``SQLRecordManager`` on STORE_DIR/records.db. Each run prints the files added, updated,
removed and skipped, then the best chunks of the documents' first pages for QUERY (a metadata
filter on ``page``). Figure crops go to STORE_DIR/figures and are stored as their own nodes.

HashingEmbedding(s) is a STAND-IN (hashed bag of words) so this runs offline: use a real
embedding model for real retrieval. DEEPSEEK_OCR_BASE_URL selects a DeepSeek-OCR server;
without it the local engine reads the pages.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from qdrant_client import QdrantClient

from ocr_loaders import SyncReport


def show(report: SyncReport, folder: Path) -> None:
    for what in ("added", "updated", "removed", "skipped", "copies"):
        for path in getattr(report, what):
            print(f"{what:8} {Path(path).relative_to(folder.resolve())}")
    for path in report.failed:
        print(f"failed   {path} (see the warnings above; tried again next run)")
    print(report.summary())
    if report.stats is not None:
        print(f"OCR: {report.stats.pages} pages, {report.stats.requests} requests")


def with_llamaindex(folder: Path, store: Path, client: QdrantClient, query: str) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    from ocr_loaders import ChunkNodes, HashingEmbedding, sync_folder_llamaindex

    # LlamaIndex asks for payload indexes, which local mode does without (it still filters)
    warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
    vector_store = QdrantVectorStore(client=client, collection_name="llamaindex")
    pipeline = IngestionPipeline(
        transformations=[ChunkNodes(), HashingEmbedding()],  # ids Qdrant takes, then vectors
        docstore=SimpleDocumentStore(),
        vector_store=vector_store,
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
    )
    report = sync_folder_llamaindex(
        folder,
        pipeline,
        persist_dir=store / "pipeline",
        images="files",
        images_dir=str(store / "figures"),
    )
    show(report, folder)
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=HashingEmbedding())
    first_pages = MetadataFilters(filters=[MetadataFilter(key="page", value=0)])
    for hit in index.as_retriever(similarity_top_k=3, filters=first_pages).retrieve(query):
        meta = hit.node.metadata
        text = hit.node.get_content()[:70].replace("\n", " ")
        print(f"- {meta['file_name']} p.{meta['page_label']} [{meta['block_types']}]: {text}")


def with_langchain(folder: Path, store: Path, client: QdrantClient, query: str) -> None:
    from langchain_classic.indexes import SQLRecordManager
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import models

    from ocr_loaders import HashingEmbeddings, sync_folder_langchain

    embeddings = HashingEmbeddings()
    if not client.collection_exists("langchain"):
        client.create_collection(
            "langchain",
            vectors_config=models.VectorParams(
                size=embeddings.dim, distance=models.Distance.COSINE
            ),
        )
    vector_store = QdrantVectorStore(client, "langchain", embedding=embeddings)
    records = SQLRecordManager("qdrant/langchain", db_url=f"sqlite:///{store / 'records.db'}")
    report = sync_folder_langchain(
        folder, vector_store, records, images="files", images_dir=str(store / "figures")
    )
    show(report, folder)
    first_pages = models.Filter(
        must=[models.FieldCondition(key="metadata.page", match=models.MatchValue(value=0))]
    )
    for doc in vector_store.similarity_search(query, k=3, filter=first_pages):
        meta = doc.metadata
        text = doc.page_content[:70].replace("\n", " ")
        print(f"- {meta['file_name']} p.{meta['page_label']} [{meta['block_types']}]: {text}")


def main(args: list[str]) -> None:
    langchain = "--langchain" in args
    rest = [a for a in args if a != "--langchain"]
    if not rest:
        sys.exit("usage: python examples/index_folder.py FOLDER [STORE_DIR] [--langchain] [QUERY]")
    folder = Path(rest[0])
    store = Path(rest[1]) if len(rest) > 1 else Path("index-store")
    query = rest[2] if len(rest) > 2 else "figure caption"
    store.mkdir(parents=True, exist_ok=True)
    client = QdrantClient(path=str(store / "qdrant"))  # local mode: one process at a time
    try:
        (with_langchain if langchain else with_llamaindex)(folder, store, client, query)
    finally:
        client.close()


if __name__ == "__main__":
    main(sys.argv[1:])
