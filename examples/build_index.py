"""Index a whole folder of PDFs and scans with LlamaIndex and persist it to disk.

    python examples/build_index.py FOLDER [STORAGE_DIR]

Uses SimpleDirectoryReader with the DeepSeek-OCR reader as the extractor for PDFs and images
(LlamaIndex calls ``load_data(file, extra_info=..., fs=...)`` itself), then builds a
VectorStoreIndex and persists it. Chunk ids are stable (content hash + page + chunk index), so
re-running over the same files updates rather than duplicates. MockEmbedding keeps it offline;
use a real embedding model in practice.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding

from ocr_loaders import DeepSeekOCRReader

SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def main(folder: Path, storage: Path) -> None:
    reader = DeepSeekOCRReader(concurrency=16, chunk_size=512)
    loader = SimpleDirectoryReader(
        str(folder),
        recursive=True,
        required_exts=list(SUFFIXES),
        file_extractor=dict.fromkeys(SUFFIXES, reader),
    )
    documents = loader.load_data()
    pages = {
        (d.metadata["doc_hash"], n)
        for d in documents
        for n in range(d.metadata["page_start"], d.metadata["page_end"] + 1)
    }
    print(f"{len(documents)} chunks from {len(pages)} pages under {folder}")

    Settings.embed_model = MockEmbedding(embed_dim=64)
    index = VectorStoreIndex.from_documents(documents)
    index.storage_context.persist(persist_dir=str(storage))
    print(f"index persisted to {storage}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python examples/build_index.py FOLDER [STORAGE_DIR]")
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path("storage"))
