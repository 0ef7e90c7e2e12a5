"""Bold lines on scans told from their ink (:mod:`ocr_loaders._engines.local_weight`).

Pages are rendered with PyMuPDF from known text in regular and bold faces; the line boxes
are the text layer's, scaled to pixels, so these tests measure the ink and nothing else. The
last test reads real scans from ``../shared/corpus`` (skipped without it).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pymupdf
import pytest

from ocr_loaders._engines.local_layout import TextLine
from ocr_loaders._engines.local_ocr import ocr_lines
from ocr_loaders._engines.local_weight import bold_lines

_WORDS = [
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven"),
    *("wizards", "quietly", "judge", "boxing", "matches", "during", "autumn", "evenings"),
    *("near", "old", "harbour", "towns"),
]
_HEADINGS = [
    "Recording a Sequence",
    "Creating a Song",
    "Methods and Materials",
    "Additional Features",
]


def _page(
    regular: str, bold: str, dpi: int, heading_every: int = 6, seed: int = 0
) -> tuple[np.ndarray, list[tuple[float, float, float, float]], list[str], list[bool]]:
    """A grayscale page of 24 lines at 10 pt: body text in ``regular`` (every sixth line
    of it in capitals), a heading in ``bold`` every ``heading_every`` lines."""
    rnd = random.Random(seed)
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    truth = []
    for k in range(24):
        heading = heading_every > 0 and k % heading_every == 0
        if heading:
            text = _HEADINGS[(k // heading_every) % len(_HEADINGS)]
        else:
            text = " ".join(rnd.choice(_WORDS) for _ in range(11))
            text = text.upper() if k % 6 == 3 else text
        page.insert_text(
            (60, 60 + 14 * k), text, fontname=bold if heading else regular, fontsize=10
        )
        truth.append(heading)
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
    scale = dpi / 72
    lines = [ln for block in page.get_text("dict")["blocks"] for ln in block["lines"]]
    boxes = [
        (x0 * scale, y0 * scale, x1 * scale, y1 * scale)
        for x0, y0, x1, y1 in (ln["bbox"] for ln in lines)
    ]
    texts = ["".join(span["text"] for span in ln["spans"]) for ln in lines]
    return gray, boxes, texts, truth


@pytest.mark.parametrize(
    ("regular", "bold"), [("helv", "hebo"), ("tiro", "tibo"), ("cour", "cobo")]
)
@pytest.mark.parametrize("dpi", [150, 300])
def test_bold_headings_are_told_from_the_body_text(regular: str, bold: str, dpi: int) -> None:
    gray, boxes, texts, truth = _page(regular, bold, dpi)
    assert bold_lines(gray, boxes, texts, [False] * len(boxes)) == truth


def test_a_page_without_bold_has_no_bold_line() -> None:
    gray, boxes, texts, truth = _page("helv", "helv", 300)
    assert any(truth)  # the "headings" are set in the regular face here
    assert not any(bold_lines(gray, boxes, texts, [False] * len(boxes)))


def test_text_running_up_the_page_is_measured_across() -> None:
    gray, boxes, texts, truth = _page("tiro", "tibo", 300)
    height = gray.shape[0]
    turned = np.ascontiguousarray(np.rot90(gray))  # the page turned counter-clockwise
    tall = [(y0, gray.shape[1] - x1, y1, gray.shape[1] - x0) for x0, y0, x1, y1 in boxes]
    assert turned.shape[0] == gray.shape[1] and turned.shape[1] == height
    assert bold_lines(turned, tall, texts, [True] * len(tall)) == truth


def test_lines_too_small_to_measure_are_never_bold() -> None:
    """At 72 dpi a 10 pt line is 20 px tall and its strokes one or two pixels wide."""
    gray, boxes, texts, truth = _page("helv", "hebo", 72)
    assert any(truth)
    assert not any(bold_lines(gray, boxes, texts, [False] * len(boxes)))


def test_a_rule_or_legend_swatch_in_a_line_does_not_make_it_bold() -> None:
    """A chart legend's colour swatch and an underline are long dark runs, not strokes."""
    gray, boxes, texts, truth = _page("helv", "hebo", 200)
    ink = gray.copy()
    for k in (2, 4):  # a thick swatch before one line, an underline under another
        x0, y0, x1, y1 = (round(v) for v in boxes[k])
        mid = (y0 + y1) // 2
        ink[mid - 4 : mid + 4, x0 : x0 + 60] = 0
        ink[y1 - 5 : y1 - 2, x0:x1] = 0
    assert bold_lines(ink, boxes, texts, [False] * len(boxes)) == truth


def _scanned_lines(path: Path, index: int) -> list[TextLine]:
    """OCR lines of a scanned page rendered at 300 dpi in gray, as a scan would arrive."""
    with pymupdf.open(path) as doc:
        pix = doc[index].get_pixmap(dpi=300, colorspace=pymupdf.csGRAY)
    gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
    return ocr_lines(gray)[0]


def test_on_real_scans_only_the_bold_headings_are_bold(corpus: Path) -> None:
    """The Letter scan's five bold section headings (its larger title lines are headings by
    their size and not measured); on the chart pages of the six-page scan, where slanted
    user names and legend swatches fill most line boxes, no line."""
    lines = _scanned_lines(corpus / "scanned_linn_jbig2.pdf", 0)
    assert sorted(ln.text for ln in lines if ln.bold) == [
        "Additional Features",
        "Composition Without Compromise",
        "Creating a Song",
        "Editing",
        "Recording a Sequence",
    ]
    for index in (2, 3):
        lines = _scanned_lines(corpus / "scanned_mixed_multipage_6p.pdf", index)
        assert len(lines) > 20
        assert not [ln.text for ln in lines if ln.bold]
