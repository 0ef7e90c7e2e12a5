"""The local engine on scans: columns read in order, line boxes cut at wide gaps.

Page images are rendered with PyMuPDF from known text and read back by the engine's OCR;
no timing assertions.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pymupdf

from ocr_loaders._engines.local import (
    ocr_array_grounded,
    ocr_image_grounded,
    recognize_page_data,
)
from ocr_loaders._engines.local_layout import TextLine, layout_page
from ocr_loaders._engines.local_onnx import split_at_gaps
from ocr_loaders._engines.local_textlayer import extract_page
from ocr_loaders._grounding import parse_grounded, to_markdown

_VOCABULARY = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "judge",
    "boxing",
    "matches",
    "during",
    "autumn",
    "evenings",
    "near",
    "old",
    "harbour",
    "towns",
    "where",
    "merchants",
    "trade",
    "amber",
    "silk",
    "copper",
    "and",
    "grain",
]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _lcs(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length (bit-parallel)."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def _paragraphs(seed: int, count: int, length: int) -> list[str]:
    rnd = random.Random(seed)
    return [
        " ".join(rnd.choice(_VOCABULARY) for _ in range(length)).capitalize() + "."
        for _ in range(count)
    ]


def _two_column_png(paras: list[str], gutter: float, align: int) -> bytes:
    """Known single-column text set in two columns ``gutter`` points apart, as a PNG."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=420)
    width = (612 - 2 * 54 - gutter) / 2
    half = len(paras) // 2
    for k, part in enumerate((paras[:half], paras[half:])):
        x0 = 54 + k * (width + gutter)
        rect = pymupdf.Rect(x0, 40, x0 + width, 400)
        page.insert_textbox(rect, "\n".join(part), fontsize=10, fontname="helv", align=align)
    return page.get_pixmap(dpi=170, colorspace=pymupdf.csGRAY).tobytes("png")


def test_two_columns_with_a_narrow_gutter_read_in_order() -> None:
    """A 10 pt gutter between justified columns: the line boxes must not close it."""
    paras = _paragraphs(seed=4, count=4, length=45)
    png = _two_column_png(paras, gutter=10, align=pymupdf.TEXT_ALIGN_JUSTIFY)
    out = to_markdown(parse_grounded(ocr_image_grounded(png)))
    reference, read = _words("\n".join(paras)), _words(out)
    assert _lcs(reference, read) / len(reference) >= 0.9


def test_ragged_columns_read_in_order() -> None:
    paras = _paragraphs(seed=5, count=4, length=40)
    png = _two_column_png(paras, gutter=14, align=pymupdf.TEXT_ALIGN_LEFT)
    out = to_markdown(parse_grounded(ocr_image_grounded(png)))
    reference, read = _words("\n".join(paras)), _words(out)
    assert _lcs(reference, read) / len(reference) >= 0.9


def _strip(*runs: tuple[int, int]) -> np.ndarray:
    """A 40 x 600 white BGR image with black ink in the given x runs (rows 12..28)."""
    img = np.full((40, 600, 3), 255, np.uint8)
    for a, b in runs:
        img[12:28, a:b] = 0
    return img


def _quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_split_at_gaps_cuts_only_wide_gaps() -> None:
    # word spaces (5 px against 16 px of ink height) stay in one piece, trimmed to the ink
    words = _strip((20, 80), (85, 150), (155, 300))
    pieces = split_at_gaps(words, _quad(5, 5, 320, 35))
    assert len(pieces) == 1
    assert pieces[0][1][0] == 20 and pieces[0][1][2] == 300
    # a gap of twice the ink height is a gutter or a cell boundary
    gutter = _strip((20, 200), (232, 400))
    pieces = split_at_gaps(gutter, _quad(5, 5, 420, 35))
    assert [(round(b[0]), round(b[2])) for _, b in pieces] == [(20, 200), (232, 400)]


def _line(x0: float, y0: float, text: str, size: float) -> TextLine:
    """An OCR-like line: box height = ``size`` (px), width from the text's length."""
    return TextLine((x0, y0, x0 + 0.5 * size * len(text), y0 + size), text, size)


def test_large_bulleted_items_are_list_text_and_end_at_their_bullet() -> None:
    """As on a scanned brochure: bullets set larger than the body (so their OCR line height
    is that of a heading), then a heading at the bullets' left edge and an indented
    paragraph. Bullets are not headings, and the heading is not merged into the last item."""
    body = "Plain body text runs on across the page to set the size of the body text here"
    lines = [_line(100, 100 + 36 * k, body, 30) for k in range(8)]
    lines += [
        _line(100, 420, "• Ultra-fast disk drive stores songs in seconds and holds over", 44),
        _line(144, 470, "110,000 notes per disk!", 44),
        _line(100, 520, "• Optional remote control.", 44),
        _line(100, 580, "Recording a Sequence", 34),
        _line(140, 622, "To record a sequence, simply press RECORD and PLAY, then play", 30),
        _line(100, 658, "your keyboard in time to the click track of the sequencer now.", 30),
    ]
    blocks = layout_page(lines, [], [], 2400, 900, ocr=True)
    texts = [b.text for b in blocks]
    bullets = [b for b in blocks if "•" in b.text]
    assert [b.label for b in bullets] == ["text", "text"], texts
    assert bullets[0].text.endswith("110,000 notes per disk!")  # its hanging line joined
    assert bullets[1].text == "• Optional remote control."
    assert "Recording a Sequence" in texts
    assert any(t.startswith("To record a sequence") for t in texts)


def test_a_first_line_made_taller_by_a_large_initial_stays_in_its_paragraph() -> None:
    """As in a scanned book: the chapter's first line starts with a large initial (its OCR
    box is half again as tall and starts further left), the sentence runs on in lower case
    in a justified column. It is one paragraph; the chapter heading above stays apart."""
    lines = [
        TextLine((240, 3, 640, 164), "Chapter", 161),
        TextLine((344, 179, 767, 225), "WE went tip-toeing along a path amongst", 46),
        TextLine((410, 218, 767, 248), "the trees back towards the end of the", 30),
        TextLine((412, 248, 767, 277), "widow's garden, stooping down so as", 29),
        TextLine((411, 276, 766, 305), "the branches wouldn't scrape our heads.", 29),
        TextLine((413, 304, 768, 335), "When we was passing by the kitchen", 31),
        TextLine((413, 334, 766, 362), "I fell over a root and made a noise.", 28),
    ]
    blocks = layout_page(lines, [], [], 800, 1000, ocr=True)
    assert [b.text for b in blocks] == [
        "# Chapter",
        "WE went tip-toeing along a path amongst the trees back towards the end of the"
        " widow's garden, stooping down so as the branches wouldn't scrape our heads. When we"
        " was passing by the kitchen I fell over a root and made a noise.",
    ]


def test_bold_headings_at_the_body_size_are_headings_on_a_scan() -> None:
    """As on a scanned brochure: sections under bold headings set at the body's size, each
    heading one line below the last paragraph. OCR gives no weights; the ink does."""
    paras = _paragraphs(seed=7, count=3, length=40)
    headings = ["Recording a Sequence", "Creating a Song", "Composition Without Compromise"]
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=560)
    y = 50.0
    for heading, para in zip(headings, paras, strict=True):
        page.insert_text((54, y), heading, fontname="tibo", fontsize=11)
        rect = pymupdf.Rect(54, y + 4, 400, y + 130)
        left = page.insert_textbox(rect, para, fontsize=11, fontname="tiro")
        y = rect.y1 - left + 16  # the box's last line, then one line down
    png = page.get_pixmap(dpi=200, colorspace=pymupdf.csGRAY).tobytes("png")
    blocks = parse_grounded(ocr_image_grounded(png))
    texts = [b.text for b in blocks]
    assert [t for t in texts if t.startswith("#")] == [f"## {h}" for h in headings], texts
    starts = [_words(t)[:3] for t in texts if not t.startswith("#")]
    assert starts == [_words(p)[:3] for p in paras], texts


def test_a_bold_heading_under_two_columns_starts_the_full_width_section() -> None:
    """As on a scanned brochure turned a quarter turn: the left column's paragraph runs on
    into the right column; a bold heading sits under the left column, its OCR box closer to
    the column than a paragraph gap, above full-width bullets. The heading starts the
    section below; the paragraph stays one, across the columns."""
    left = [
        "To erase a wrong note, simply hold ERASE and press",
        "the note to be erased just before it plays in the",
        "when played back, it will be gone. Notes may also",
        "added, erased, or changed using the SINGLE STEP func-",
        "tion. To overdub notes at specific points within a",
    ]
    right = [
        "simply use LOCATE, FAST FORWARD, or REWIND to",
        "find the desired bar number, then start recording.",
        "The technology you use should never be so complex",
        "it interferes with the creative process. That is why",
        "music. See your Linn dealer today for a demonstration!",
    ]
    lines = [TextLine((346, 2036 + 42 * k, 1204, 2090 + 42 * k), t, 54) for k, t in enumerate(left)]
    lines += [
        TextLine((1294, 2036 + 42 * k, 2160, 2090 + 42 * k), t, 54) for k, t in enumerate(right)
    ]
    lines += [
        TextLine((345, 2277, 705, 2343), "Additional Features", 66, bold=True),
        TextLine((347, 2326, 2171, 2393), "• Simple, easy to learn operation, the display", 67),
        TextLine((347, 2412, 1468, 2475), "• Non-destructive recording of every note.", 63),
        TextLine((347, 2454, 2145, 2523), "• Two FOOTSWITCH INPUTS may be assigned to it.", 69),
    ]
    blocks = layout_page(lines, [], [], 2550, 3300, ocr=True)
    texts = [b.text for b in blocks]
    heading = texts.index("## Additional Features")
    assert texts[heading + 1].startswith("• Simple"), texts
    assert any("within a simply use LOCATE" in t for t in texts[:heading]), texts


def test_a_stamp_running_up_the_margin_reads_right() -> None:
    """As on a scanned arXiv paper: the identifier runs up the left margin (the reader turns
    standing lines for text running down, so it must try the other way too)."""
    paras = _paragraphs(seed=9, count=2, length=45)
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=420)
    page.insert_text((72, 60), "Introduction", fontname="tibo", fontsize=12)
    page.insert_textbox(
        pymupdf.Rect(72, 70, 540, 400), "\n".join(paras), fontname="tiro", fontsize=10
    )
    page.insert_text((40, 380), "arXiv:2206.01062v1 [cs.CV] 2 Jun 2022", fontsize=14, rotate=90)
    png = page.get_pixmap(dpi=200, colorspace=pymupdf.csGRAY).tobytes("png")
    texts = [b.text for b in parse_grounded(ocr_image_grounded(png))]
    assert "arXiv:2206.01062v1 [cs.CV] 2 Jun 2022" in texts, texts
    assert texts[0] == "## Introduction", texts


def test_a_paper_read_as_a_scan_has_the_headings_of_its_text_layer(corpus: Path) -> None:
    """The two-column paper's pages rendered at 200 dpi and OCRed: the same headings as its
    text layer gives, ``## 1 Introduction`` with its number (a narrow piece the detector
    boxes apart) after an abstract ending ``benchmarks.¹``, and ``## 3.1 Overview``."""
    with pymupdf.open(corpus / "digital_2col_dpr_paper_2p.pdf") as doc:
        for page in doc:
            digital = parse_grounded(recognize_page_data(extract_page(page)))
            pix = page.get_pixmap(dpi=200, colorspace=pymupdf.csGRAY)
            gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
            scan = parse_grounded(ocr_array_grounded(gray, pix.width, pix.height))
            heads = [
                [b.text for b in blocks if b.text.startswith("#")] for blocks in (digital, scan)
            ]
            assert heads[1] == heads[0]
            assert len(heads[0]) == 3


def test_a_footnote_mark_after_a_full_stop_ends_the_sentence() -> None:
    """``benchmarks.¹`` ends a paragraph as ``benchmarks.`` does: the bold heading under it
    and the indented paragraph after it stay apart."""
    lines = [
        TextLine((100, 100, 900, 130), "our end-to-end system sets new results on several", 30),
        TextLine((100, 136, 640, 166), "open-domain question answering benchmarks.¹", 30),
        TextLine((100, 172, 400, 204), "Introduction", 32, bold=True),
        TextLine((140, 210, 900, 240), "Open-domain question answering is a task that answers", 30),
        TextLine(
            (100, 246, 900, 276), "factoid questions using a large collection of documents.", 30
        ),
        TextLine(
            (100, 282, 900, 312), "While early systems are often complicated, they work.²", 30
        ),
        TextLine(
            (140, 318, 900, 348), "Retrieval in open-domain question answering is usually", 30
        ),
        TextLine((100, 354, 700, 384), "implemented with sparse vector space models.", 30),
    ]
    blocks = layout_page(lines, [], [], 1000, 500, ocr=True)
    assert [b.text[:24] for b in blocks] == [
        "our end-to-end system se",
        "## Introduction",
        "Open-domain question ans",
        "Retrieval in open-domain",
    ]


def _body(text: str, top: float, count: int) -> list[TextLine]:
    """``count`` OCR-like body lines of ``text``, 30 px tall, 36 px apart from ``top``."""
    return [TextLine((100, top + 36 * k, 1000, top + 30 + 36 * k), text, 30) for k in range(count)]


def test_a_section_number_beside_a_bold_heading_keeps_it_a_heading() -> None:
    """OCR cannot weigh ``3.1`` (too few letters), so it is not bold; the row is still a
    bold heading, since its letters are."""
    body = "Our dense passage retriever uses a dense encoder which maps any text passage"
    lines = [
        *_body(body, 100, 4),
        TextLine((100, 260, 136, 292), "3.1", 32),
        TextLine((170, 260, 330, 292), "Overview", 32, bold=True),
        *_body(body, 300, 3),
    ]
    blocks = layout_page(lines, [], [], 1100, 500, ocr=True)
    assert [b.text for b in blocks][1] == "## 3.1 Overview"


def test_a_displayed_formula_read_by_ocr_is_not_a_heading() -> None:
    """A formula's OCR line is tall (fraction bars, sums) and reads as loose letters and
    digits: not a heading, whatever its height or weight."""
    body = "Sei p eine Überlagerung und X einfach zusammenhängend, dann gilt die Aussage"
    lines = [
        *_body(body, 100, 3),
        TextLine((300, 220, 800, 270), "x n x 0 1 k n1 f x x 1 n 1", 50),
        TextLine((300, 290, 700, 322), "d p q 2 d r q yq yp 2", 32, bold=True),
        *_body(body, 340, 3),
    ]
    blocks = layout_page(lines, [], [], 1100, 500, ocr=True)
    assert [b.label for b in blocks if b.text.startswith(("x n", "d p"))] == ["text", "text"]
