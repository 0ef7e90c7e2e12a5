"""Tables in the local engine: row-exact ruled tables on digital PDFs, ruled tables on scans.

The PDFs and images are built with PyMuPDF at test time.
"""

from __future__ import annotations

import re
from typing import Any

import pymupdf
import pytest

from ocr_loaders._engines.local import extract_page, recognize_page_data
from ocr_loaders._engines.local_tables import (
    CellLine,
    TableCell,
    split_spanning_cells,
    split_stacked_rows,
)
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


@pytest.mark.parametrize("missing_under", [1, 2, 3])
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


def test_row_rule_missing_everywhere_with_a_centred_label() -> None:
    _doc, page = _ruled_table(4, centred_label=True)
    html = _table_html(page)
    assert _rows(html) == [
        ROWS[0],
        ["A", "OTSL", "0.965", "0.789"],
        ["HTML", "0.969", "0.771"],
        ROWS[3],
    ]
    assert '<td rowspan="2">A</td>' in html


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
