"""The embedded local engine: text-layer layout, tables, images, rotation, OCR of scans.

PDFs are built with PyMuPDF at test time; the corpus tests use ``shared/corpus`` next to the
repository and skip when it is absent. No timing assertions.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from PIL import Image

from ocr_loaders._engines.base import Engine
from ocr_loaders._engines.local import LocalEngine, ocr_image_grounded, recognize_page_data
from ocr_loaders._engines.local_geometry import rotate_bbox, rotated_size
from ocr_loaders._engines.local_paragraphs import join_lines
from ocr_loaders._engines.local_tables import TableCell, cells_to_html, split_stacked_rows
from ocr_loaders._engines.local_textlayer import extract_page, text_layer_verdict
from ocr_loaders._grounding import parse_grounded, to_markdown
from ocr_loaders._model import Block, PageImage, SourceInfo

LEFT = ("Alpha column begins here with several words about apples and more apples. " * 6).strip()
RIGHT = ("Omega column follows there with other words about zebras and more zebras. " * 6).strip()


# --- helpers --------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _recall(reference: str, output: str) -> float:
    ref, out = Counter(_words(reference)), Counter(_words(output))
    return sum(min(c, out[w]) for w, c in ref.items()) / max(sum(ref.values()), 1)


def _blocks(page: Any) -> list[Block]:
    return parse_grounded(recognize_page_data(extract_page(page)))


def _all_boxes_valid(blocks: list[Block]) -> bool:
    return all(0 <= v <= 999 for b in blocks for box in b.boxes for v in box) and all(
        box[0] <= box[2] and box[1] <= box[3] for b in blocks for box in b.boxes
    )


def _text_png(lines: list[str], fontsize: float = 22, dpi: int = 150) -> bytes:
    """A PNG of black text on white, made by rendering a PDF page."""
    doc = pymupdf.open()
    page = doc.new_page(width=520, height=40 + 34 * len(lines))
    for k, line in enumerate(lines):
        page.insert_text((24, 40 + 34 * k), line, fontsize=fontsize, fontname="helv")
    return bytes(page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY).tobytes("png"))


def _page_image(
    data: bytes, hint: Any = None, width: float = 100, height: float = 100
) -> PageImage:
    info = SourceInfo(
        source="x", file_name="x", file_path="x", doc_hash="0" * 64, kind="image", total_pages=1
    )
    return PageImage(
        source=info,
        number=1,
        label="1",
        width=width,
        height=height,
        image=data,
        mime="image/png",
        image_width=0,
        image_height=0,
        hint=hint,
    )


# --- pure helpers ---------------------------------------------------------------------------


def test_join_lines_undoes_hyphenation_only_before_lower_case() -> None:
    assert join_lines(["effi-", "cient retrieval"]) == "efficient retrieval"
    assert join_lines(["a strong Lucene-", "BM25 system"]) == "a strong Lucene-BM25 system"
    assert join_lines(["one", "two "]) == "one two"


def test_rotate_bbox_round_trip() -> None:
    box = (10.0, 20.0, 30.0, 60.0)
    for angle in (0, 90, 180, 270):
        w, h = rotated_size(angle, 200.0, 100.0)
        turned = rotate_bbox(box, angle, 200.0, 100.0)
        assert all(0 <= v <= max(w, h) for v in turned)
        back = rotate_bbox(turned, (360 - angle) % 360, w, h)
        assert back == pytest.approx(box)


def test_cells_to_html_uses_spans_and_only_table_tr_td() -> None:
    cells = [
        TableCell(0, 0, ("Name",)),
        TableCell(0, 1, ("Where",), colspan=2),
        TableCell(1, 0, ("a & b",)),
        TableCell(1, 1, ("x",)),
        TableCell(1, 2, ("y",)),
    ]
    html = cells_to_html(cells)
    assert html == (
        '<table><tr><td>Name</td><td colspan="2">Where</td></tr>'
        "<tr><td>a &amp; b</td><td>x</td><td>y</td></tr></table>"
    )
    assert set(re.findall(r"</?(\w+)", html)) == {"table", "tr", "td"}


def test_stacked_rows_are_split() -> None:
    cells = [
        TableCell(0, 0, ("State",)),
        TableCell(0, 1, ("Total",)),
        TableCell(1, 0, ("Alabama", "Alaska")),
        TableCell(1, 1, ("10", "20")),
    ]
    rows = split_stacked_rows(cells)
    assert [(c.row, c.col, c.text) for c in rows] == [
        (0, 0, "State"),
        (0, 1, "Total"),
        (1, 0, "Alabama"),
        (1, 1, "10"),
        (2, 0, "Alaska"),
        (2, 1, "20"),
    ]


def test_text_layer_verdict() -> None:
    assert text_layer_verdict(0, 0, 0.0)[0] is False
    assert text_layer_verdict(1000, 300, 0.0)[0] is False  # unmapped glyphs
    assert text_layer_verdict(50, 0, 0.95)[0] is False  # a stamp on a scan
    assert text_layer_verdict(50, 0, 0.0)[0] is True  # a short digital page
    assert text_layer_verdict(3000, 0, 0.95)[0] is True  # an OCR layer over a scan


# --- digital pages --------------------------------------------------------------------------


def test_two_columns_read_in_column_order() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(
        pymupdf.Rect(72, 60, 540, 100),
        "A Study of Two Columns",
        fontsize=20,
        fontname="hebo",
        align=1,
    )
    page.insert_textbox(pymupdf.Rect(72, 120, 296, 700), LEFT, fontsize=10)
    page.insert_textbox(pymupdf.Rect(316, 120, 540, 700), RIGHT, fontsize=10)
    blocks = _blocks(page)
    text = to_markdown(blocks)
    assert text.index("Study") < text.index("Alpha") < text.index("Omega")
    assert text.rindex("apples") < text.index("zebras")  # the whole left column first
    assert _recall(LEFT + " " + RIGHT, text) == 1.0
    assert _all_boxes_valid(blocks)
    left = next(b for b in blocks if b.text.startswith("Alpha"))
    right = next(b for b in blocks if b.text.startswith("Omega"))
    assert left.boxes[0][2] < 500 < right.boxes[0][0]


def test_headings_from_font_size_and_weight() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    body = "Plain body text that runs on for a while to set the body size of the page. " * 3
    page.insert_text((72, 80), "Annual Report", fontsize=26, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(72, 100, 520, 160), body, fontsize=10)
    page.insert_text((72, 190), "Section One", fontsize=14, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(72, 200, 520, 260), body, fontsize=10)
    page.insert_text((72, 290), "Bold Label Heading", fontsize=10, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(72, 300, 520, 360), body, fontsize=10)
    blocks = _blocks(page)
    by_text = {b.text: b.label for b in blocks}
    assert by_text["# Annual Report"] == "title"
    assert by_text["## Section One"] == "sub_title"
    assert by_text["## Bold Label Heading"] == "sub_title"
    assert sum(1 for b in blocks if b.label == "text") == 3


def _table_page() -> Any:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 80), "Fruit prices for the week are listed below.", fontsize=11)
    rows = [
        ["Fruit", "Price", "Stock"],
        ["Apple", "1.20", "40"],
        ["Banana", "0.50", "120"],
        ["Cherry", "4.00", "15"],
    ]
    x0, y0, cw, rh = 72.0, 100.0, 120.0, 24.0
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            rect = pymupdf.Rect(x0 + c * cw, y0 + r * rh, x0 + (c + 1) * cw, y0 + (r + 1) * rh)
            page.draw_rect(rect, color=(0, 0, 0), width=0.8)
            page.insert_text((rect.x0 + 6, rect.y1 - 8), cell, fontsize=11)
    page.insert_text((72, 240), "Prices include tax and change every Monday.", fontsize=11)
    return doc, page


def test_table_becomes_a_table_block_with_its_cells() -> None:
    _doc, page = _table_page()
    blocks = _blocks(page)
    tables = [b for b in blocks if b.label == "table"]
    assert len(tables) == 1
    html = tables[0].text
    assert html.startswith("<table>") and html.endswith("</table>")
    assert html.count("<tr>") == 4 and html.count("<td>") == 12
    for cell in ("Fruit", "Price", "Apple", "1.20", "Cherry", "120"):
        assert f"<td>{cell}</td>" in html
    others = " ".join(b.text for b in blocks if b.label != "table")
    assert "Banana" not in others  # not repeated as a paragraph
    labels = [b.label for b in blocks]
    assert labels.index("table") == 1  # between the two paragraphs
    assert _all_boxes_valid(blocks)


def test_inserted_image_becomes_an_image_block() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=800)
    page.insert_text((60, 80), "A figure follows this sentence on the page.", fontsize=11)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 60, 40), False)
    pix.set_rect(pix.irect, (200, 30, 30))
    page.insert_image(pymupdf.Rect(150, 200, 450, 400), pixmap=pix)
    page.insert_text((60, 450), "Figure 1: A red rectangle.", fontsize=11)
    blocks = _blocks(page)
    images = [b for b in blocks if b.label == "image"]
    assert len(images) == 1 and images[0].text == ""
    x0, _y0, _x1, y1 = images[0].boxes[0]
    assert abs(x0 - 150 / 600 * 999) <= 3 and abs(y1 - 400 / 800 * 999) <= 3
    assert [b.label for b in blocks] == ["text", "image", "image_caption"]


def test_rotated_page_boxes_are_in_the_displayed_frame() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=800)
    page.insert_text((60, 100), "Top left words on a page that is shown turned", fontsize=12)
    page.set_rotation(90)
    assert page.rect.width == 800  # displayed landscape
    data = extract_page(page)
    assert (data.width, data.height) == (800, 600)
    blocks = parse_grounded(recognize_page_data(data))
    assert len(blocks) == 1 and "Top left words" in blocks[0].text
    # Unrotated (60..~330, ~88..103) turns to the top-right corner, running downwards.
    x0, y0, x1, y1 = blocks[0].boxes[0]
    assert x0 > 800 and y0 < 150 and (y1 - y0) > (x1 - x0)
    assert _all_boxes_valid(blocks)


def test_sideways_text_is_read_upright() -> None:
    """Text drawn rotated in the content (a landscape table on a portrait page) reads fine."""
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=800)
    for k, line in enumerate(["First sideways line", "Second sideways line"]):
        page.insert_text((100 + 20 * k, 700), line, fontsize=12, rotate=90)
    blocks = _blocks(page)
    text = to_markdown(blocks)
    assert text.index("First") < text.index("Second")
    assert _all_boxes_valid(blocks)


def test_invisible_text_layer_over_a_scan_is_used() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=200)
    pix = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.IRect(0, 0, 300, 200), False)
    pix.set_rect(pix.irect, (255,))
    page.insert_image(page.rect, pixmap=pix)
    sentence = "Invisible words laid over a scanned page by an OCR program. "
    page.insert_textbox(pymupdf.Rect(10, 10, 290, 190), sentence * 5, fontsize=9, render_mode=3)
    data = extract_page(page)
    assert data.source == "text" and data.invisible_text and data.images == ()
    assert "Invisible words" in recognize_page_data(data)


def test_data_is_picklable() -> None:
    _doc, page = _table_page()
    data = extract_page(page)
    assert pickle.loads(pickle.dumps(data)) == data


# --- OCR ------------------------------------------------------------------------------------

OCR_LINES = ["The quick brown fox jumps", "over the lazy dog near", "the river bank today"]


def test_image_only_page_is_read_by_ocr() -> None:
    png = _text_png(OCR_LINES)
    doc = pymupdf.open()
    page = doc.new_page(width=520, height=160)
    page.insert_image(page.rect, stream=png)
    data = extract_page(page)
    assert data.source == "ocr" and data.ocr_pixels is not None
    assert data.reason == "no text layer"
    blocks = parse_grounded(recognize_page_data(data))
    assert _recall(" ".join(OCR_LINES), to_markdown(blocks)) >= 0.9
    assert _all_boxes_valid(blocks)


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_rotated_image_still_reads(turn: int) -> None:
    with Image.open(io.BytesIO(_text_png(OCR_LINES))) as im:
        turned = im.rotate(-turn, expand=True)  # clockwise
        buf = io.BytesIO()
        turned.save(buf, format="PNG")
    blocks = parse_grounded(ocr_image_grounded(buf.getvalue()))
    text = to_markdown(blocks)
    assert _recall(" ".join(OCR_LINES), text) >= 0.9
    assert text.index("quick") < text.index("lazy") < text.index("river")
    assert _all_boxes_valid(blocks)


# --- the engine -----------------------------------------------------------------------------


def test_engine_protocol_and_recognize() -> None:
    engine = LocalEngine()
    assert isinstance(engine, Engine)
    assert engine.name == "local" and engine.page_hook is extract_page
    assert "rapidocr" in engine.cache_identity

    async def go() -> tuple[Any, Any, Any]:
        try:
            _doc, page = _table_page()
            digital = await engine.recognize(_page_image(b"", hint=extract_page(page)))
            scan = await engine.recognize(_page_image(_text_png(OCR_LINES[:1])))
            broken = await engine.recognize(_page_image(b"not an image"))
            return digital, scan, broken
        finally:
            await engine.aclose()

    digital, scan, broken = asyncio.run(go())
    assert digital.finish_reason == "stop" and digital.engine == "local" and not digital.error
    assert "<table>" in digital.text and digital.model == engine.model
    assert "quick" in scan.text.lower() and scan.finish_reason == "stop"
    assert broken.text == "" and broken.finish_reason is None and broken.error


# --- the shared corpus ----------------------------------------------------------------------


def _corpus_page_text(path: Path, password: str | None = None, turn: int = 0) -> str:
    doc = pymupdf.open(path)
    if password:
        assert doc.authenticate(password)
    texts = []
    for page in doc:
        if turn:
            page.set_rotation((page.rotation + turn) % 360)
        blocks = parse_grounded(recognize_page_data(extract_page(page)))
        assert _all_boxes_valid(blocks)
        texts.append(to_markdown(blocks))
    return "\n\n".join(texts)


def test_corpus_two_column_paper_in_column_order(corpus: Path) -> None:
    text = _corpus_page_text(corpus / "digital_2col_dpr_paper_2p.pdf")
    ref = (corpus / "digital_2col_dpr_paper_2p.textlayer.txt").read_text(encoding="utf-8")
    assert _recall(ref.replace("ﬁ", "fi").replace("-\n", ""), text) >= 0.98
    # End of the left column, then the top of the right column.
    assert text.index("of improving retrieval") < text.index("Retrieval in open-domain QA is")
    assert text.index("# Dense Passage Retrieval") < text.index("Abstract")


def test_corpus_rotated_table_matches_unrotated(corpus: Path) -> None:
    plain = _corpus_page_text(corpus / "table_nics_firearm_checks.pdf")
    turned = _corpus_page_text(corpus / "rotated_nics_firearm_checks_rot90.pdf")
    assert Counter(_words(plain)) == Counter(_words(turned))
    assert "<table>" in turned and "<td>Alabama</td>" in turned


def test_corpus_encrypted_two_column_with_caption(corpus: Path) -> None:
    text = _corpus_page_text(corpus / "encrypted_aes128_userpw_1234.pdf", password="1234")
    assert text.index("Figure 2: Distribution") < text.index("to a minimum, since")
    assert text.index("which exploit textual features") < text.index("Table 1 shows")


def test_corpus_phototest_scan(corpus: Path) -> None:
    data = (corpus / "image_phototest.tif").read_bytes()
    reference = (corpus / "image_phototest.gt.txt").read_text(encoding="utf-8")
    assert _recall(reference, to_markdown(parse_grounded(ocr_image_grounded(data)))) >= 0.9


@pytest.mark.slow
def test_corpus_scanned_pdf_and_its_quarter_turn(corpus: Path) -> None:
    reference = (corpus / "scanned_linn_jbig2.gt.txt").read_text(encoding="utf-8")
    upright = _corpus_page_text(corpus / "scanned_linn_jbig2.pdf")
    assert _recall(reference, upright) >= 0.9
    assert upright.index("Recording a Sequence") < upright.index("Creating a Song")
    assert upright.index("Creating a Song") < upright.index("Additional Features")
    turned = _corpus_page_text(corpus / "scanned_linn_jbig2.pdf", turn=90)
    assert _recall(reference, turned) >= 0.9
