"""Tables in the local engine: row-exact ruled tables on digital PDFs, ruled tables on scans.

The PDFs and images are built with PyMuPDF at test time.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pymupdf
import pytest
from PIL import Image

from ocr_loaders._engines.local import ocr_image_grounded, recognize_page_data
from ocr_loaders._engines.local_scan_tables import find_ruled_grids
from ocr_loaders._engines.local_tables import (
    CellLine,
    TableCell,
    split_spanning_cells,
    split_stacked_rows,
)
from ocr_loaders._engines.local_textlayer import extract_page
from ocr_loaders._grounding import parse_grounded

ROWS = [
    ["Model", "Format", "TEDS", "mAP"],
    ["A", "OTSL", "0.965", "0.789"],
    ["A", "HTML", "0.969", "0.771"],
    ["B", "OTSL", "0.955", "0.712"],
]


def _rows(html: str) -> list[list[str]]:
    """The cell texts of each ``<tr>`` (spans ignored)."""
    return [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", html)]


def _ruled_table(missing_under: int, centred_label: bool = False) -> Any:
    """A 4 x 4 ruled table whose rule between rows 1 and 2 is missing under the first
    ``missing_under`` columns; with ``centred_label`` the first column's "A" is written once,
    centred over both rows."""
    doc = pymupdf.open()
    page = doc.new_page()
    x0, y0, cw, rh = 72.0, 100.0, 100.0, 20.0
    n, m = len(ROWS), len(ROWS[0])
    for c in range(m + 1):
        page.draw_line((x0 + c * cw, y0), (x0 + c * cw, y0 + n * rh), width=0.8)
    for r in range(n + 1):
        start = missing_under if r == 2 else 0
        if start < m:
            page.draw_line((x0 + start * cw, y0 + r * rh), (x0 + m * cw, y0 + r * rh), width=0.8)
    for r, row in enumerate(ROWS):
        for c, text in enumerate(row):
            if centred_label and c == 0 and r in (1, 2):
                if r == 1:
                    page.insert_text((x0 + 6, y0 + 2 * rh + 4), text, fontsize=10)
                continue
            page.insert_text((x0 + c * cw + 6, y0 + (r + 1) * rh - 6), text, fontsize=10)
    return doc, page


def _table_html(page: Any) -> str:
    blocks = parse_grounded(recognize_page_data(extract_page(page)))
    tables = [b.text for b in blocks if b.label == "table"]
    assert len(tables) == 1
    return tables[0]


@pytest.mark.parametrize("missing_under", [1, 2, 3, 4])  # 4: the rule is missing everywhere
def test_row_rule_missing_under_some_columns_keeps_rows_apart(missing_under: int) -> None:
    _doc, page = _ruled_table(missing_under, centred_label=True)
    html = _table_html(page)
    assert _rows(html) == [
        ROWS[0],
        ["A", "OTSL", "0.965", "0.789"],
        ["HTML", "0.969", "0.771"],
        ROWS[3],
    ]
    assert '<td rowspan="2">A</td>' in html  # the label centred over both rows stays merged


def test_a_merged_cell_with_wrapped_text_is_not_cut() -> None:
    # Two lines in a cell over two rows, not level with the neighbouring rows' lines.
    boxes = [(0.0, 0.0, 50.0, 40.0), (50.0, 0.0, 100.0, 20.0), (50.0, 20.0, 100.0, 40.0)]
    lines = [
        [CellLine("long wrapped", 9.0, 19.0), CellLine("label", 21.0, 31.0)],
        [CellLine("1", 3.0, 13.0)],
        [CellLine("2", 25.0, 35.0)],
    ]
    out_boxes, out_lines = split_spanning_cells(boxes, lines)
    assert out_boxes == boxes and [len(x) for x in out_lines] == [2, 1, 1]


def test_stacked_row_with_a_wrapped_single_cell_stays_whole() -> None:
    # Lines of different counts (a 3-line description beside 2-line cells) are no evidence.
    row = [
        TableCell(0, 0, ("a", "b"), extents=((0, 10), (12, 22))),
        TableCell(0, 1, ("c", "d", "e"), extents=((0, 10), (12, 22), (24, 34))),
    ]
    assert split_stacked_rows(row) == row


# --- ruled tables on scans ------------------------------------------------------------------

PARTS = [
    ["Part", "Qty", "Price"],
    ["Bolt M4", "120", "0.15"],
    ["Washer", "300", "0.02"],
    ["Hinge", "8", "2.40"],
]


def _scanned_table_png(dpi: int, skew: float = 0.0) -> bytes:
    """A page with a paragraph, a ruled table (a title row over all three columns, then
    ``PARTS``) and a closing paragraph, rendered to a grayscale PNG as a scanner would,
    turned ``skew`` degrees counter-clockwise (a page fed in slightly askew)."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "Parts list for the spring order is given below.", fontsize=11)
    x0, y0, cw, rh = 72.0, 110.0, 130.0, 26.0
    title = pymupdf.Rect(x0, y0, x0 + 3 * cw, y0 + rh)
    page.draw_rect(title, color=(0, 0, 0), width=1)
    page.insert_text((title.x0 + 8, title.y1 - 9), "Spring order", fontsize=11)
    for r, row in enumerate(PARTS, start=1):
        for c, text in enumerate(row):
            rect = pymupdf.Rect(x0 + c * cw, y0 + r * rh, x0 + (c + 1) * cw, y0 + (r + 1) * rh)
            page.draw_rect(rect, color=(0, 0, 0), width=1)
            page.insert_text((rect.x0 + 8, rect.y1 - 9), text, fontsize=11)
    page.insert_text((72, 290), "All prices are per piece and exclude shipping.", fontsize=11)
    png: bytes = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY).tobytes("png")
    if skew:
        with Image.open(io.BytesIO(png)) as im:
            out = io.BytesIO()
            im.rotate(skew, fillcolor=255).save(out, "PNG")
            png = out.getvalue()
    return png


@pytest.mark.parametrize("skew", [0.0, 1.0])
def test_ruled_table_on_a_scan_is_an_html_table_with_every_cell_in_place(skew: float) -> None:
    blocks = parse_grounded(ocr_image_grounded(_scanned_table_png(200, skew)))
    assert [b.label for b in blocks] == ["text", "table", "text"]
    html = blocks[1].text
    assert html.startswith("<table>") and html.endswith("</table>")
    assert set(re.findall(r"</?(\w+)", html)) == {"table", "tr", "td"}
    assert '<td colspan="3">Spring order</td>' in html
    assert _rows(html) == [["Spring order"], *PARTS]
    assert "Washer" not in blocks[0].text + blocks[2].text  # not repeated as text
    if skew:
        return
    x0, y0, x1, y1 = blocks[1].boxes[0]
    assert abs(x0 - 72 / 612 * 999) <= 4 and abs(x1 - 462 / 612 * 999) <= 4
    assert abs(y0 - 110 / 792 * 999) <= 4 and abs(y1 - 240 / 792 * 999) <= 4


def _grid_image(rules: list[tuple[int, int, int, int]], size: tuple[int, int]) -> np.ndarray:
    img = np.full(size, 255, np.uint8)
    for x0, y0, x1, y1 in rules:
        img[y0 : y1 + 1, x0 : x1 + 1] = 0
    return img


def test_ruled_grid_cells_and_merged_cells_from_the_rules() -> None:
    # 3 x 3 grid, 100 x 50 cells, the first row's two right cells merged (no rule between).
    rules = [(100, 100 + 50 * r, 400, 101 + 50 * r) for r in range(4)]
    rules += [(100 + 100 * c, 100, 101 + 100 * c, 250) for c in (0, 3)]
    rules += [(200, 100, 201, 250), (300, 150, 301, 250)]
    grids = find_ruled_grids(_grid_image(rules, (400, 600)))
    assert len(grids) == 1
    cells = sorted((round(b[1]), round(b[0]), round(b[2] - b[0])) for b in grids[0].cells)
    # (top, left, width): row 0 holds one cell and one two columns wide, then 3 + 3 cells.
    assert cells == [
        (100, 100, 100),
        (100, 200, 200),
        *((y, x, 100) for y in (150, 200) for x in (100, 200, 300)),
    ]


def test_no_grid_in_a_frame_around_text_or_under_a_rule() -> None:
    frame = [(100, 100, 400, 101), (100, 250, 400, 251), (100, 100, 101, 251), (400, 100, 401, 251)]
    underline = [(50, 300, 500, 301)]
    assert find_ruled_grids(_grid_image(frame + underline, (400, 600))) == []


INVENTORY = [
    ["Part", "Qty", "Price", "Supplier"],
    ["Bolt M6", "120", "0.15", "Acme"],
    ["Washer", "300", "0.02", "Brandt"],
    ["Hinge", "8", "2.40", "Acme"],
    ["Spring", "45", "0.85", "Corvin"],
]


def _borderless_png(rows: list[list[str]], columns: list[float]) -> bytes:
    """A paragraph, a table with no rules at all (cells set at ``columns``, points), and a
    closing paragraph, rendered at 200 dpi to a grayscale PNG."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "The spring inventory is listed below by supplier.", fontsize=11)
    for r, row in enumerate(rows):
        for x, text in zip(columns, row, strict=True):
            page.insert_text((x, 120 + 22 * r), text, fontsize=11)
    page.insert_text((72, 260), "Quantities were counted on the first of the month.", fontsize=11)
    png: bytes = page.get_pixmap(dpi=200, colorspace=pymupdf.csGRAY).tobytes("png")
    return png


def test_a_borderless_table_on_a_scan_is_an_html_table_with_every_cell_in_place() -> None:
    png = _borderless_png(INVENTORY, [72, 200, 290, 380])
    blocks = parse_grounded(ocr_image_grounded(png))
    assert [b.label for b in blocks] == ["text", "table", "text"]
    assert _rows(blocks[1].text) == INVENTORY
    assert "Washer" not in blocks[0].text + blocks[2].text


def test_columns_of_figures_make_a_table_and_columns_of_words_do_not() -> None:
    """A table needs a column of figures: two columns of numbers are one; an author block
    (names over affiliations, in three columns) or a grid of words reads as text."""
    numbers = [["Year", "Output"], ["2021", "1,204"], ["2022", "1,377"], ["2023", "1,512"]]
    blocks = parse_grounded(ocr_image_grounded(_borderless_png(numbers, [72, 300])))
    assert [b.label for b in blocks] == ["text", "table", "text"]
    assert _rows(blocks[1].text) == numbers
    words = [["Harbour", "Amber"], ["Copper", "Silk"], ["Grain", "Merchants"], ["Towns", "Old"]]
    blocks = parse_grounded(ocr_image_grounded(_borderless_png(words, [72, 300])))
    assert "table" not in [b.label for b in blocks]
    authors = [
        ["Ada Brandt", "Carl Diaz", "Eva Fischer"],
        ["IBM Research", "ETH Zurich", "EPFL"],
        ["Zurich, Switzerland", "Zurich, Switzerland", "Lausanne, Switzerland"],
    ]
    blocks = parse_grounded(ocr_image_grounded(_borderless_png(authors, [72, 240, 408])))
    assert "table" not in [b.label for b in blocks]


def test_prose_in_three_columns_is_not_a_table() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=400)
    text = (
        "Seven wizards quietly judge boxing matches during autumn evenings near old harbour "
        "towns where merchants trade amber silk copper and grain. "
    ) * 3
    for k in range(3):
        x0 = 54 + k * 172
        page.insert_textbox(pymupdf.Rect(x0, 40, x0 + 156, 380), text, fontsize=10)
    png = page.get_pixmap(dpi=170, colorspace=pymupdf.csGRAY).tobytes("png")
    blocks = parse_grounded(ocr_image_grounded(png))
    assert "table" not in [b.label for b in blocks]
