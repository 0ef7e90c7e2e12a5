"""Figures as retrieval units: crops written, ImageNodes in a multimodal index, found by caption.

    python examples/figures.py [PDF] [OUT_DIR]

Without a PDF it builds one (a page with an embedded picture and a caption). DEEPSEEK_OCR_BASE_URL
selects a DeepSeek-OCR server; without it the local engine runs (it finds embedded pictures).
The embeddings are LlamaIndex's mock text and image embeddings so this runs offline.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pymupdf
from llama_index.core.embeddings import MockEmbedding, MockMultiModalEmbedding
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageNode

from ocr_loaders import DeepSeekOCRReader


def make_figure_pdf(path: Path) -> Path:
    """One page: a paragraph, an embedded red picture, its caption, another paragraph."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 90), "Water quality", fontsize=24)
    page.insert_text((72, 150), "Samples were taken at three sites along the river.", fontsize=11)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 60, 40), False)
    pix.set_rect(pix.irect, (220, 20, 20))
    page.insert_image(pymupdf.Rect(100, 200, 400, 400), pixmap=pix)
    page.insert_text((100, 425), "Figure 1. Nitrate levels at the three sites.", fontsize=11)
    page.insert_text((72, 470), "The second site had the highest levels.", fontsize=11)
    doc.save(path)
    return path


def main(pdf: Path, out: Path) -> None:
    reader = DeepSeekOCRReader(images="files", images_dir=out / "crops")
    nodes = reader.load_data(pdf)
    figures = [n for n in nodes if isinstance(n, ImageNode)]
    print(f"{len(nodes) - len(figures)} chunks and {len(figures)} figure(s) from {pdf.name}")
    for fig in figures:
        print(f"- p.{fig.metadata['page_label']} {fig.image_path}: {fig.text!r}")

    index = MultiModalVectorStoreIndex(
        nodes,
        embed_model=MockEmbedding(embed_dim=8),
        image_embed_model=MockMultiModalEmbedding(embed_dim=8),
    )
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    for hit in retriever.retrieve("nitrate levels figure"):
        kind = "figure" if isinstance(hit.node, ImageNode) else "chunk"
        print(f"hit ({kind}): {hit.node.get_content()[:80]!r}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tmp)
        source = Path(sys.argv[1]) if len(sys.argv) > 1 else make_figure_pdf(target / "fig.pdf")
        main(source, target)
