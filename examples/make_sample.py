"""Build the quick-start sample: examples/data/sample.pdf (3 pages, written by this project).

Page 1 is a digital two-column page with headings and a table, page 2 a scanned page (an image
with no text layer, so the OCR path runs), page 3 a short digital page with a figure and its
caption. Run ``python examples/make_sample.py`` to rebuild it; the output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pymupdf

OUT = Path(__file__).resolve().parent / "data" / "sample.pdf"

INTRO = (
    "Retrieval-augmented generation answers questions from a private corpus. Its quality "
    "depends on how documents are cut into chunks: a chunk that splits a table, drops a "
    "caption or loses its page number cannot be cited. This note describes how scanned "
    "reports are turned into chunks that keep their layout."
)
METHOD = (
    "Each page is rendered at 144 dpi and sent to an OCR model that returns layout blocks "
    "with bounding boxes. Blocks are grouped under their headings, tables are kept whole, "
    "and every chunk records the boxes it came from, so an answer can point at the exact "
    "region of the page it quotes."
)
SCAN = [
    "Field Survey Notes",
    "The survey covered twelve sites along the northern ridge.",
    "Water samples were taken at dawn and sealed on site.",
    "Readings of acidity ranged from 6.8 to 7.4 across all sites.",
    "Two sites showed unusual turbidity after the spring rains.",
    "A second visit is planned for the autumn to confirm these values.",
]
ROWS = [
    ("Site", "Samples", "Mean pH"),
    ("North A", "14", "7.1"),
    ("North B", "9", "6.9"),
    ("Ridge C", "11", "7.4"),
]


def _digital_page(doc: pymupdf.Document) -> None:
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "Chunking Scanned Reports", fontsize=22, fontname="hebo")
    page.insert_text((72, 104), "A short technical note", fontsize=11, fontname="helv")
    page.insert_text((72, 140), "1 Introduction", fontsize=14, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(72, 150, 296, 420), INTRO, fontsize=10, fontname="helv")
    page.insert_text((316, 140), "2 Method", fontsize=14, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(316, 150, 540, 420), METHOD, fontsize=10, fontname="helv")
    page.insert_text((72, 450), "3 Results", fontsize=14, fontname="hebo")
    page.insert_text((72, 470), "Table 1: Samples per site.", fontsize=10, fontname="helv")
    x0, y0, widths, h = 72, 480, (150, 100, 100), 20
    for r, row in enumerate(ROWS):
        x = x0
        for c, cell in enumerate(row):
            rect = pymupdf.Rect(x, y0 + r * h, x + widths[c], y0 + (r + 1) * h)
            page.draw_rect(rect, color=(0, 0, 0), width=0.7)
            page.insert_text(
                (rect.x0 + 4, rect.y1 - 6), cell, fontsize=10, fontname="hebo" if r == 0 else "helv"
            )
            x += widths[c]


def _scanned_page(doc: pymupdf.Document) -> None:
    # Typeset the text on a scratch page, rasterise it, and keep only the picture.
    scratch = pymupdf.open()
    src = scratch.new_page(width=612, height=792)
    src.insert_text((72, 90), SCAN[0], fontsize=20, fontname="tibo")
    y = 130
    for line in SCAN[1:]:
        src.insert_text((72, y), line, fontsize=13, fontname="tiro")
        y += 26
    pix = src.get_pixmap(dpi=200, colorspace=pymupdf.csGRAY)
    page = doc.new_page(width=612, height=792)
    page.insert_image(page.rect, stream=pix.tobytes("png"))


def _figure_page(doc: pymupdf.Document) -> None:
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "4 Discussion", fontsize=14, fontname="hebo")
    page.insert_textbox(
        pymupdf.Rect(72, 90, 540, 170),
        (
            "Acidity stayed within the expected band at every site. The turbidity seen at two "
            "sites is most likely run-off from the spring rains, as Figure 1 suggests."
        ),
        fontsize=10,
        fontname="helv",
    )
    chart = pymupdf.open()
    cp = chart.new_page(width=300, height=150)
    for i, v in enumerate((60, 95, 40, 120, 80)):
        cp.draw_rect(
            pymupdf.Rect(30 + i * 50, 140 - v, 60 + i * 50, 140),
            color=(0.2, 0.3, 0.6),
            fill=(0.4, 0.5, 0.8),
        )
    pix = cp.get_pixmap(dpi=150)
    page.insert_image(pymupdf.Rect(150, 190, 450, 340), stream=pix.tobytes("png"))
    page.insert_text(
        (150, 360),
        "Figure 1: Turbidity by site after the spring rains.",
        fontsize=10,
        fontname="helv",
    )


def build(path: Path = OUT) -> Path:
    """Write the sample PDF to ``path`` and return it."""
    doc = pymupdf.open()
    _digital_page(doc)
    _scanned_page(doc)
    _figure_page(doc)
    doc.set_metadata(
        {
            "title": "ocr-loaders sample",
            "producer": "ocr-loaders make_sample.py",
            "creator": "ocr-loaders",
            "creationDate": "D:20260101000000Z",
            "modDate": "D:20260101000000Z",
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path, garbage=4, deflate=True, no_new_id=True)
    return path


if __name__ == "__main__":
    out = build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    print(out)
