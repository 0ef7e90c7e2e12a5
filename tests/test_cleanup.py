"""The chunker's document pass: running headers and footers out, tables and paragraphs
continued across pages joined, on built pages, through the local engine and the fake server."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pymupdf
import pytest

from ocr_loaders import DeepSeekOCRLoader, DeepSeekOCRReader
from ocr_loaders._chunking import Chunker, ChunkOptions, chunk_pages
from ocr_loaders._chunking.furniture import FurnitureFinder, is_page_number, normalise
from ocr_loaders._chunking.joins import hyphen_join, mend_hyphens
from ocr_loaders._grounding import format_grounded
from ocr_loaders._model import Block, Box, Chunk, Page
from ocr_loaders._rendering.raster import RenderSettings, render_pdf_page
from ocr_loaders._sources import DocumentSource, describe
from ocr_loaders.testing import FakeOCRServer, OCRReply, OCRRequest
from ocr_loaders.testing.images import image_crc

# --- the 10-page report: running header, page-number footer, a two-page table, paragraphs
# --- cut by page breaks (one of them hyphenated) --------------------------------------------

HEADER = "Acme Widgets Annual Report 2024"
PAGES = 10
TABLE = [("Region", "Units", "Revenue")] + [
    (f"Zone{r}", str(100 + r), f"{r * 7}.5") for r in range(1, 19)
]
FIRST_ROWS = 10
"""Data rows of the table on page 4; the rest is on page 5."""
CUT_END = "After a long debate the board agreed that the budget for the coming year should be"
CUT_START = "reviewed again by the finance committee before the spring meeting."
HYPHEN_END = "The largest share of the money will go to the new regional infra-"
HYPHEN_START = "structure programme that connects every warehouse."


def body(n: int, k: int) -> str:
    sentence = (
        f"Paragraph {k} on page {n} describes widget{n}x{k} sales growth "
        f"and the quiet harbour{n}x{k} depot."
    )
    return " ".join([sentence] * 3)


def page_paragraphs(n: int) -> list[str]:
    """The body paragraphs of page ``n`` in reading order (the table aside)."""
    paragraphs = {8: [CUT_START], 10: [HYPHEN_START]}.get(n, [])
    paragraphs += [body(n, k) for k in range(1, 2 if n == 4 else 3)]
    paragraphs += {7: [CUT_END], 9: [HYPHEN_END]}.get(n, [])
    return paragraphs


def table_rows(n: int) -> list[tuple[str, ...]]:
    if n == 4:
        return TABLE[: FIRST_ROWS + 1]
    if n == 5:
        return TABLE[:1] + TABLE[FIRST_ROWS + 1 :]  # the header row repeated
    return []


def make_report(path: Path) -> Path:
    """The report as a PDF with a text layer and ruled tables (US Letter)."""
    doc = pymupdf.open()
    for n in range(1, PAGES + 1):
        page = doc.new_page(width=612, height=792)
        page.insert_text((72, 40), HEADER, fontsize=9)
        page.insert_text((270, 760), f"Page {n} of {PAGES}", fontsize=9)
        y = 90.0
        if n == 1:
            page.insert_text((72, 110), "Annual Report", fontsize=20)
            y = 130
        if n == 5:
            y = draw_table(page, table_rows(5), 80) + 20
        for text in page_paragraphs(n):
            if text in (CUT_END, HYPHEN_END):
                y = max(y, 650)
            for line in textwrap.wrap(text, 80):
                page.insert_text((72, y), line, fontsize=11)
                y += 15
            y += 12
        if n == 4:
            draw_table(page, table_rows(4), 440)
    doc.save(path)
    return path


def draw_table(page: pymupdf.Page, rows: Sequence[tuple[str, ...]], top: float) -> float:
    y = top
    for row in rows:
        for c, cell in enumerate(row):
            rect = pymupdf.Rect(72 + 150 * c, y, 222 + 150 * c, y + 22)
            page.draw_rect(rect, color=(0, 0, 0), width=0.8)
            page.insert_text((rect.x0 + 5, rect.y0 + 15), cell, fontsize=10)
        y += 22
    return y


def report_blocks(n: int) -> list[Block]:
    """Page ``n`` as DeepSeek-OCR would answer it: boxes in 0..999, the header and footer as
    plain ``text`` (OCR-1 has no label for them), the continued table without its header."""
    blocks: list[Block] = []

    def add(label: str, box: Box, text: str) -> None:
        blocks.append(Block(label, (box,), text, len(blocks)))

    add("text", (117, 38, 348, 55), HEADER)
    y = 100
    if n == 1:
        add("title", (117, 100, 330, 135), "# Annual Report")
        y = 150
    if n == 5:
        rows = TABLE[FIRST_ROWS + 1 :]
        add("table", (117, 100, 852, 330), html_table(rows))
        y = 345
    for text in page_paragraphs(n):
        top = max(y, 800) if text in (CUT_END, HYPHEN_END) else y
        add("text", (117, top, 790, top + 70), text)
        y = top + 85
    if n == 4:
        add("table", (117, 555, 852, 860), html_table(TABLE[: FIRST_ROWS + 1]))
    add("text", (440, 946, 525, 962), f"Page {n} of {PAGES}")
    return blocks


def html_table(rows: Sequence[tuple[str, ...]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{cells}</table>"


def report_responder(report: Path, dpi: int) -> Callable[[OCRRequest], OCRReply]:
    """Answers each page of the report with that page's blocks: the page is known by the
    pixels of its image, rendered here as the loader renders it at ``dpi`` (pages are not
    sent in page order: the heaviest go first)."""
    pdf = pymupdf.open(report)
    outline = describe(DocumentSource(str(report), path=report))
    settings = RenderSettings(dpi=dpi)
    pages = {
        image_crc(render_pdf_page(pdf, outline, n, settings).image): n for n in range(1, PAGES + 1)
    }

    def respond(request: OCRRequest) -> OCRReply:
        return OCRReply(format_grounded(report_blocks(pages[request.image_crc])))

    return respond


def report_pages() -> list[Page]:
    return [
        Page(n, str(n), 612.0, 792.0, 1224, 1584, tuple(report_blocks(n)), "")
        for n in range(1, PAGES + 1)
    ]


# --- what every path must show ---------------------------------------------------------------


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def check_report(texts: Sequence[str], metas: Sequence[dict[str, object]], pdf: Path) -> None:
    """No furniture in the text but all of it in metadata; one table, rows in order, its header
    repeated where it is split; both cut paragraphs whole; every word of the pages somewhere."""
    joined = "\n\n".join(texts)
    assert HEADER not in joined
    assert not re.search(r"Page \d+ of", joined)
    assert all(m["page_header"] == HEADER for m in metas)
    footers = " | ".join(str(m["page_footer"]) for m in metas)
    for n in range(1, PAGES + 1):
        assert f"Page {n} of {PAGES}" in footers
    # one logical table: every row once, in order; each part opens with the header row
    parts = [t for t in texts if "<table>" in t]
    rows = re.findall(r"<tr>(.*?)</tr>", "".join(parts))
    header = "".join(f"<td>{c}</td>" for c in TABLE[0])
    assert [r for r in rows if r != header] == [
        "".join(f"<td>{c}</td>" for c in row) for row in TABLE[1:]
    ]
    for part in parts:
        assert part[part.index("<table>") :].startswith(f"<table><tr>{header}</tr>")
    table_metas = [m for t, m in zip(texts, metas, strict=True) if "<table>" in t]
    assert all(m["page_joins"] == "table 4-5" for m in table_metas)
    assert all(m["page_start"] == 4 and m["page_end"] == 5 for m in table_metas)
    # the paragraphs cut by a page break are whole, in one chunk each
    cut = next(m for t, m in zip(texts, metas, strict=True) if CUT_END in squash(t))
    assert f"{CUT_END} {CUT_START}" in squash(joined)
    assert "text 7-8" in str(cut["page_joins"])
    assert "regional infrastructure programme" in joined
    # nothing lost: every word of the text layer is in a text or in metadata
    everything = squash(joined + " " + " ".join(f"{m['page_header']} {footers}" for m in metas))
    with pymupdf.open(pdf) as doc:
        for page in doc:
            for word in page.get_text("words"):
                assert word[4].rstrip("-.") in everything, (page.number, word[4])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_report(tmp_path_factory.mktemp("report") / "report.pdf")


def test_local_engine_cleans_the_report(report: Path, tmp_path: Path) -> None:
    options = {"chunk_size": 200, "dpi": 72, "cache": True, "cache_dir": tmp_path / "cache"}
    docs = DeepSeekOCRLoader(report, **options).load()
    texts = [d.page_content for d in docs]
    check_report(texts, [d.metadata for d in docs], report)
    # with the switch the furniture stays in the text, and nothing is taken out
    kept = DeepSeekOCRReader(keep_page_furniture=True, **options).load_data(report)
    text = "\n\n".join(d.text for d in kept)
    assert text.count(HEADER) == PAGES
    assert all(f"Page {n} of {PAGES}" in text for n in range(1, PAGES + 1))
    assert all(d.metadata["page_header"] == "" for d in kept)


def test_fake_server_answers_clean_the_same_way(report: Path) -> None:
    with FakeOCRServer(report_responder(report, dpi=72)) as server:
        reader = DeepSeekOCRReader(base_url=server.base_url, concurrency=1, chunk_size=200, dpi=72)
        docs = reader.load_data(report)
        check_report([d.text for d in docs], [d.metadata for d in docs], report)
        # the pass's counts reach the load's totals (run and document)
        assert reader.last_stats is not None
        cleanup = reader.last_stats.cleanup
        assert (cleanup.headers_removed, cleanup.tables_joined) == (PAGES, 1)
        assert cleanup.paragraphs_joined == 2
        assert reader.last_documents[0].cleanup == cleanup
        assert reader.last_stats.as_dict()["cleanup"]["headers_removed"] == PAGES
        server.reset_stats()
        kept = DeepSeekOCRReader(
            base_url=server.base_url,
            concurrency=1,
            chunk_size=200,
            dpi=72,
            keep_page_furniture=True,
        ).load_data(report)
    text = "\n\n".join(d.text for d in kept)
    assert text.count(HEADER) == PAGES
    assert all(f"Page {n} of {PAGES}" in text for n in range(1, PAGES + 1))


@pytest.mark.parametrize("mode", ["chunks", "document", "pages"])
def test_modes_and_counts(mode: str) -> None:
    chunker = Chunker(ChunkOptions(chunk_size=200, mode=mode))  # type: ignore[arg-type]
    chunks: list[Chunk] = []
    for page in report_pages():
        chunks.extend(chunker.add(page))
    chunks.extend(chunker.finish())
    text = "\n\n".join(c.text for c in chunks)
    assert HEADER not in text and "of 10" not in text
    counts = chunker.counts
    assert (counts.headers_removed, counts.page_numbers_removed) == (PAGES, PAGES)
    if mode == "pages":
        assert len(chunks) == PAGES and counts.tables_joined == counts.paragraphs_joined == 0
    else:
        assert (counts.tables_joined, counts.paragraphs_joined) == (1, 2)
        assert mode == "chunks" or text.count("<table>") == 1
        assert f"{CUT_END} {CUT_START}" in text


def test_join_pages_off_keeps_pages_apart() -> None:
    chunks = chunk_pages(report_pages(), ChunkOptions(chunk_size=2000, join_pages=False))
    text = "\n\n".join(c.text for c in chunks)
    assert text.count("<table>") == 2 and f"{CUT_END} {CUT_START}" not in text
    assert all(not c.joins for c in chunks)


# --- furniture: by repetition and position, bounded ------------------------------------------


def page_of(n: int, *blocks: tuple[str, Box, str]) -> Page:
    return Page(
        n,
        str(n),
        600.0,
        800.0,
        1000,
        1333,
        tuple(Block(label, (box,), text, i) for i, (label, box, text) in enumerate(blocks)),
        "",
    )


def test_page_numbers_and_normalised_text() -> None:
    for text in ("12", "- 12 -", "xii", "Page 3", "Page 3 of 10", "3 / 10", "Seite 4"):
        assert is_page_number(text), text
    for text in ("Results", "Table 3", "3 Results", ""):
        assert not is_page_number(text), text
    assert normalise("## Page 3 of 10") == normalise("Page 14 of 10") == "page # of #"


OPENINGS = [
    "Rivers carry silt toward the delta",
    "Mountains rise where plates collide",
    "Glaciers carve valleys over ages",
    "Deserts bloom after rare storms",
    "Forests store carbon in their soil",
    "Coral reefs shelter countless fish",
    "Volcanic ash enriches farmland",
    "Tides follow the pull of the moon",
    "Wetlands filter water naturally",
    "Prairie grasses hold the topsoil",
    "Caves preserve ancient climates",
]


def test_a_header_whose_words_change_is_caught_once_its_slot_is_established() -> None:
    sections = ["1.1 TOPOLOGICAL SPACES"] * 4 + ["1.2 METRIC SPACES"] * 6
    pages = [
        page_of(
            n,
            ("text", (150, 30, 900, 42), f"{n} {sections[n - 1]}" if n % 2 else sections[n - 1]),
            # the first body line sits at the same height on every page, with other words
            ("text", (150, 60, 900, 110), OPENINGS[n - 1]),
            ("text", (150, 120, 900, 800), f"Body {n}."),
        )
        for n in range(1, 11)
    ]
    chunks = chunk_pages(pages, ChunkOptions(chunk_size=2000))
    text = "\n\n".join(c.text for c in chunks)
    assert "SPACES" not in text
    assert all(opening in text for opening in OPENINGS[:10])
    assert "1.2 METRIC SPACES" in chunks[-1].page_header


def test_no_repetition_no_furniture() -> None:
    pages = [page_of(n, ("text", (150, 30, 900, 42), OPENINGS[n - 1])) for n in range(1, 12)]
    chunks = chunk_pages(pages, ChunkOptions(chunk_size=2000))
    assert all(opening in chunks[0].text for opening in OPENINGS)
    assert chunks[0].page_header == ""


def test_first_window_is_held_then_pages_stream() -> None:
    finder = FurnitureFinder(window=3)
    bare = page_of(1, ("text", (100, 300, 900, 400), "No band here."))
    assert [s.page.number for s in finder.add(bare)] == [1]  # nothing in a band: not held
    headed = [page_of(n, ("text", (100, 20, 900, 40), "Running head")) for n in range(2, 7)]
    assert finder.add(headed[0]) == []
    released = finder.add(headed[1])  # the third page of the window: decided
    assert [s.page.number for s in released] == [2, 3]
    assert all(len(s.furniture) == 1 and not s.body for s in released)
    assert [s.page.number for s in finder.add(headed[2])] == [4]  # streams from now on
    finder.add(headed[3])
    assert [s.page.number for s in finder.add(headed[4])] == [6]


def test_short_documents_decide_at_finish() -> None:
    pages = [
        page_of(n, ("text", (100, 950, 900, 970), f"Page {n}"), ("text", BODY, f"Body {n}."))
        for n in (1, 2)
    ]
    chunker = Chunker(ChunkOptions(chunk_size=2000))
    assert chunker.add(pages[0]) == [] and chunker.add(pages[1]) == []
    (chunk,) = chunker.finish()
    assert chunk.text == "Body 1.\n\nBody 2." and chunk.page_footer == "Page 1 | Page 2"
    assert chunker.counts.page_numbers_removed == 2


BODY: Box = (100, 200, 900, 500)


# --- joins ----------------------------------------------------------------------------------


def test_hyphenation_mended_with_the_vocabulary() -> None:
    assert hyphen_join("exam", "ple") == "example"
    assert hyphen_join("second", "order") == "second-order"
    text, n = mend_hyphens("an exam-\nple, a second- order term, pre- and post-war")
    assert (text, n) == ("an example, a second-order term, pre- and post-war", 2)


def two_pages(first: tuple[str, Box, str], second: tuple[str, Box, str], gap: int = 1) -> str:
    pages = [page_of(1, first), page_of(1 + gap, second)]
    return "\n\n".join(c.text for c in chunk_pages(pages, ChunkOptions(chunk_size=2000)))


LOW: Box = (100, 700, 900, 900)
HIGH: Box = (100, 60, 900, 300)


def test_paragraph_joins_only_when_it_goes_on() -> None:
    assert two_pages(("text", LOW, "it was"), ("text", HIGH, "good.")) == "it was good."
    assert two_pages(("text", LOW, "an exam-"), ("text", HIGH, "ple.")) == "an example."
    assert two_pages(("text", LOW, "It ended."), ("text", HIGH, "again.")) == (
        "It ended.\n\nagain."
    )
    assert two_pages(("text", LOW, "it was"), ("text", HIGH, "New start.")) == (
        "it was\n\nNew start."
    )
    assert two_pages(("text", LOW, "it was"), ("text", HIGH, "good."), gap=2) == ("it was\n\ngood.")
    assert two_pages(("text", HIGH, "it was"), ("text", HIGH, "good.")) == "it was\n\ngood."


def test_tables_join_only_with_the_same_width() -> None:
    head = [("a", "b")]
    joined = two_pages(
        ("table", LOW, html_table([*head, ("1", "2")])),
        ("table", HIGH, html_table([*head, ("3", "4")])),
    )
    assert joined == html_table([*head, ("1", "2"), ("3", "4")])
    apart = two_pages(
        ("table", LOW, html_table([*head, ("1", "2")])),
        ("table", HIGH, html_table([("x", "y", "z")])),
    )
    assert apart.count("<table>") == 2


def test_joined_table_split_cites_both_pages() -> None:
    rows = [(f"r{i}", str(i)) for i in range(40)]
    pages = [
        page_of(1, ("table", LOW, html_table([("k", "v"), *rows[:20]]))),
        page_of(2, ("table", HIGH, html_table(rows[20:]))),
    ]
    chunks = chunk_pages(pages, ChunkOptions(chunk_size=60))
    assert len(chunks) > 2
    for c in chunks:
        assert c.text.startswith("<table><tr><td>k</td><td>v</td></tr>")
        assert {r.page for r in c.regions} == {1, 2} and c.joins == ("table 1-2",)
    cells = re.findall(r"<td>(r\d+)</td>", "".join(c.text for c in chunks))
    assert cells == [f"r{i}" for i in range(40)]
