"""Load a PDF with the LangChain loader into an in-memory vector store and search it.

    python examples/langchain_vectorstore.py [PDF] [QUERY]

DEEPSEEK_OCR_BASE_URL selects a DeepSeek-OCR server; without it the local engine runs. The
embeddings are LangChain's DeterministicFakeEmbedding so this runs offline: use a real model
for real retrieval.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

from ocr_loaders import DeepSeekOCRLoader

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.pdf"


async def main(pdf: Path, query: str) -> None:
    loader = DeepSeekOCRLoader(pdf, chunk_size=256)
    docs = [doc async for doc in loader.alazy_load()]  # real async: pages stream in order
    print(f"{len(docs)} chunks; {loader.last_stats.pages if loader.last_stats else 0} pages")

    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=64))
    store.add_documents(docs)  # ids are stable: re-adding the same file overwrites
    for doc in store.similarity_search(query, k=3):
        m = doc.metadata
        print(
            f"- p.{m['page_label']} [{m['block_types']}] status={m['ocr_status']}: "
            f"{doc.page_content[:100]!r}"
        )


if __name__ == "__main__":
    asyncio.run(
        main(
            Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE,
            sys.argv[2] if len(sys.argv) > 2 else "water samples",
        )
    )
