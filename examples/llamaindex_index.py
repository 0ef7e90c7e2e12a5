"""Build a LlamaIndex vector index from a PDF and ask where something is.

    python examples/llamaindex_index.py [PDF] [QUERY]

With DEEPSEEK_OCR_BASE_URL set, pages go to DeepSeek-OCR; without it, the embedded local engine
reads them. The embedding model here is LlamaIndex's MockEmbedding so the script runs offline:
swap in a real one (e.g. OpenAIEmbedding, HuggingFaceEmbedding) for meaningful retrieval.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding

from ocr_loaders import DeepSeekOCRReader

SAMPLE = Path(__file__).resolve().parent / "data" / "sample.pdf"


def main(pdf: Path, query: str) -> None:
    reader = DeepSeekOCRReader(chunk_size=256)
    documents = reader.load_data(pdf)
    print(f"{len(documents)} chunks from {pdf.name}; run stats:")
    assert reader.last_stats is not None
    print(json.dumps(reader.last_stats.as_dict(), indent=2))

    Settings.embed_model = MockEmbedding(embed_dim=64)
    index = VectorStoreIndex.from_documents(documents)
    for hit in index.as_retriever(similarity_top_k=3).retrieve(query):
        meta = hit.node.metadata
        boxes = json.loads(meta["regions"])
        print(
            f"- page {meta['page_label']} ({meta['heading'] or 'no heading'}), "
            f"{len(boxes)} region(s), first at {boxes[0]['bbox'] if boxes else None}:"
        )
        print("  " + hit.node.get_content()[:120].replace("\n", " "))


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE,
        sys.argv[2] if len(sys.argv) > 2 else "mean pH per site",
    )
