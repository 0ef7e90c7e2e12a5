"""Chunking: every rule of docs/chunking.md, a property test, and the real fixtures."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocr_loaders._chunking import (
    SEP_TOKENS,
    Chunker,
    ChunkOptions,
    chunk_pages,
    chunker,
    overlap,
    prose,
    tail_text,
)
from ocr_loaders._chunking import tables as table_rows
from ocr_loaders._grounding import (
    CAPTION_LABELS,
    HEADING_LABELS,
    LOOP_NOTE,
    block_markdown,
    parse_grounded,
    parse_page,
    to_markdown,
)
from ocr_loaders._model import Block, Box, Chunk, Page, Region
from ocr_loaders._tokens import count_tokens

BOX: Box = (100, 100, 900, 200)
Spec = tuple[str, str] | tuple[str, str, tuple[Box, ...]]


def make_page(number: int, *specs: Spec, status: str = "ok", loop_cut: bool = False) -> Page:
    """A 600 x 800 page of blocks given as ``(label, text[, boxes])``."""
    blocks = tuple(
        Block(s[0], s[2] if len(s) == 3 else (BOX,), s[1], i)  # type: ignore[misc]
        for i, s in enumerate(specs)
    )
    return Page(
        number, str(number), 600.0, 800.0, 1000, 1333, blocks, "", status, loop_cut=loop_cut
    )  # type: ignore[arg-type]


def sentences(n: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} says something plain." for i in range(start, start + n))


def table_html(rows: int, cols: int = 3, tag: str = "r") -> str:
    head = "<tr>" + "".join(f"<td>head{c}</td>" for c in range(cols)) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{tag}{r}c{c}</td>" for c in range(cols)) + "</tr>"
        for r in range(rows)
    )
    return f"<table>{head}{body}</table>"


def tokens(chunk: Chunk) -> int:
    return count_tokens(chunk.text)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assert_in_order(needles: Sequence[str], haystack: str) -> None:
    """Each needle occurs in ``haystack`` after the previous one (whitespace ignored)."""
    hay = squash(haystack)
    pos = 0
    for needle in needles:
        found = hay.find(squash(needle), pos)
        assert found >= 0, f"lost or out of order: {needle!r}"
        pos = found + len(squash(needle))


def check_basics(chunks: Sequence[Chunk]) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for a, b in itertools.pairwise(chunks):
        assert a.page_start <= b.page_start and a.page_end <= b.page_end
    for c in chunks:
        assert c.page_start <= c.page_end
        assert len(set(c.labels)) == len(c.labels)
        assert all(c.page_start <= r.page <= c.page_end for r in c.regions)


# --- options and the token arithmetic the packing relies on ---------------------------------


def test_separator_is_one_token() -> None:
    assert count_tokens("\n\n") == SEP_TOKENS == count_tokens("\n")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chunk_size": 0},
        {"chunk_overlap": -1},
        {"chunk_size": 10, "chunk_overlap": 10},
        {"mode": "lines"},
        {"tables": "csv"},
    ],
)
def test_options_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChunkOptions(**kwargs)  # type: ignore[arg-type]


# --- text, labels, regions ------------------------------------------------------------------


def test_text_is_block_markdown_joined_by_blank_lines() -> None:
    page = make_page(
        3,
        ("title", "Intro"),
        ("text", "First <center>para</center>."),
        ("equation", "\\[ a = b \\]"),
        ("text", "Last."),
    )
    [chunk] = chunk_pages([page])
    assert chunk.text == "# Intro\n\nFirst para.\n\n\\[ a = b \\]\n\nLast."
    assert chunk.text == to_markdown(page.blocks, image_link=lambda _b, _k: "")
    assert (chunk.index, chunk.page_start, chunk.page_end) == (0, 3, 3)
    assert chunk.labels == ("title", "text", "equation")
    assert chunk.heading == "Intro"


def test_regions_are_every_box_of_contributing_blocks_in_page_units() -> None:
    two = ((0, 0, 999, 499), (0, 500, 999, 999))
    page = make_page(5, ("text", "Two columns.", two), ("image", ""), ("text", "One box."))
    [chunk] = chunk_pages([page])
    # The image has no caption and no link target: it renders nothing and cites nothing.
    assert chunk.regions == (
        Region(5, "text", (0.0, 0.0, 600.0, 499 / 999 * 800)),
        Region(5, "text", (0.0, 500 / 999 * 800, 600.0, 800.0)),
        Region(5, "text", page.blocks[2].scaled_boxes(600.0, 800.0)[0]),
    )
    assert chunk.labels == ("text",)


def CROP(_page: Page, _block: Block, k: int) -> str:
    """A crop link for every figure: chunking tests that keep captions with their figure."""
    return f"crops/{k}.png"


def test_image_links_from_image_target_and_default() -> None:
    page = make_page(
        2, ("image", ""), ("image_caption", "Fig. 1 A cat."), ("image", ""), ("text", "Body.")
    )
    calls: list[tuple[int, int, int]] = []

    def target(p: Page, block: Block, k: int) -> str:
        calls.append((p.number, block.index, k))
        return f"crops/{p.number}-{k}.png"

    [chunk] = chunk_pages([page], image_target=target)
    assert calls == [(2, 0, 0), (2, 2, 1)]
    assert chunk.text.startswith("![figure](crops/2-0.png)\n\nFig. 1 A cat.")
    assert "![figure](crops/2-1.png)" in chunk.text
    assert chunk.text.count("Fig. 1 A cat.") == 1  # the caption once, as its own line
    [plain] = chunk_pages([page])  # no crops: no link at all, the caption kept
    assert plain.text.startswith("Fig. 1 A cat.") and "](" not in plain.text


def test_parse_grounded_pages_chunk_like_built_pages() -> None:
    raw = (
        "<|ref|>title<|/ref|><|det|>[[10, 10, 990, 60]]<|/det|>\n# Report\n\n"
        "<|ref|>text<|/ref|><|det|>[[10, 80, 990, 200]]<|/det|>\nOpening words.\n\n"
        "<|ref|>table_caption<|/ref|><|det|>[[10, 210, 990, 230]]<|/det|>\nTable 1. Sums.\n\n"
        "<|ref|>table<|/ref|><|det|>[[10, 240, 990, 500]]<|/det|>\n" + table_html(3) + "\n"
    )
    blocks = tuple(parse_grounded(raw))
    page = Page(1, "1", 600.0, 800.0, 1000, 1333, blocks, raw)
    [chunk] = chunk_pages([page])
    assert chunk.labels == ("title", "text", "table_caption", "table")
    assert chunk.text.endswith("Table 1. Sums.\n\n" + table_html(3))
    assert len(chunk.regions) == 4 and chunk.regions[0].page == 1


# --- atomic units: tables, captions, equations ----------------------------------------------


def test_captions_stay_with_their_table_and_figure() -> None:
    page = make_page(
        1,
        ("text", sentences(6)),
        ("figure_title", "Table 3. Results."),
        ("table", table_html(2)),
        ("table_footnote", "Source: us."),
        ("text", sentences(6, 6)),
        ("image", ""),
        ("image_caption", "Figure 2. A plot."),
        ("text", sentences(14, 12)),
    )
    chunks = chunk_pages([page], ChunkOptions(chunk_size=120), image_target=CROP)
    [with_table] = [c for c in chunks if "<table>" in c.text]
    assert "Table 3. Results.\n\n<table>" in with_table.text
    assert "</table>\n\nSource: us." in with_table.text
    assert with_table.labels == ("figure_title", "table", "table_footnote")
    [with_image] = [c for c in chunks if "Figure 2. A plot." in c.text]
    assert "![figure](crops/0.png)\n\nFigure 2. A plot." in with_image.text
    assert all(tokens(c) <= 120 for c in chunks) and len(chunks) >= 3


def test_caption_between_two_anchors_goes_to_the_right_one() -> None:
    page = make_page(
        1,
        ("image", ""),
        ("figure_title", "Figure 1. Left."),
        ("figure_title", "Table 1. Right."),
        ("table", table_html(1, tag="a")),
        ("table_footnote", "Note a."),
        ("table_caption", "Second table."),
        ("table", table_html(1, tag="b")),
    )
    chunks = chunk_pages([page], ChunkOptions(chunk_size=60), image_target=CROP)
    by_text = {c.text.split("\n\n")[0]: c for c in chunks}
    assert by_text["![figure](crops/0.png)"].text.endswith("Figure 1. Left.")
    first = next(c for c in chunks if "a0c0" in c.text)
    assert first.text.startswith("Table 1. Right.\n\n<table>") and first.text.endswith("Note a.")
    second = next(c for c in chunks if "b0c0" in c.text)
    assert second.text.startswith("Second table.\n\n<table>")


def test_equation_is_never_split() -> None:
    equation = "\\[ " + " + ".join(f"x_{{{i}}}^{{2}}" for i in range(200)) + " \\]"
    page = make_page(1, ("text", "Before."), ("equation", equation), ("text", "After."))
    chunks = chunk_pages([page], ChunkOptions(chunk_size=50))
    assert [c.text for c in chunks] == ["Before.", equation, "After."]
    assert chunks[1].labels == ("equation",) and tokens(chunks[1]) > 50


@pytest.mark.parametrize("tables", ["html", "markdown"])
def test_big_table_split_by_rows_with_header_and_caption(tables: str) -> None:
    page = make_page(
        1,
        ("table_caption", "Table 9. Many rows."),
        ("table", table_html(60)),
        ("table_footnote", "Footnote nine."),
    )
    options = ChunkOptions(chunk_size=120, tables=tables)  # type: ignore[arg-type]
    chunks = chunk_pages([page], options)
    assert len(chunks) > 3
    assert chunks[0].text.startswith("Table 9. Many rows.\n\n")
    assert chunks[-1].text.endswith("\n\nFootnote nine.")
    assert sum("Table 9." in c.text for c in chunks) == 1
    assert sum("Footnote nine." in c.text for c in chunks) == 1
    rows_seen: list[str] = []
    for c in chunks:
        assert tokens(c) <= 120
        assert "table" in c.labels
        part = c.text.removeprefix("Table 9. Many rows.\n\n").removesuffix("\n\nFootnote nine.")
        if tables == "html":
            assert part.startswith("<table><tr><td>head0</td>") and part.endswith("</table>")
            assert part.count("<table>") == 1 and part.count("</table>") == 1
            rows = re.findall(r"<tr>(.*?)</tr>", part)
        else:
            lines = part.split("\n")
            assert lines[0] == "| head0 | head1 | head2 |"
            assert lines[1] == "| --- | --- | --- |"
            rows = lines[1:]
        rows_seen.extend(rows[1:])
    assert len(rows_seen) == 60
    assert all(f"r{i}c0" in row for i, row in enumerate(rows_seen))


def test_unsplittable_table_row_is_the_only_excess() -> None:
    wide = (
        "<table><tr><td>h</td></tr>"
        + "".join(f"<tr><td>{sentences(12, i)}</td></tr>" for i in range(3))
        + "</table>"
    )
    chunks = chunk_pages([make_page(1, ("table", wide))], ChunkOptions(chunk_size=40))
    assert len(chunks) == 3
    for c in chunks:
        assert c.text.count("<tr>") == 2 and c.text.startswith("<table><tr><td>h</td></tr>")


# --- prose splitting ------------------------------------------------------------------------


def test_long_text_split_at_sentences() -> None:
    text = sentences(60)
    chunks = chunk_pages([make_page(1, ("text", text))], ChunkOptions(chunk_size=50))
    assert len(chunks) > 5
    for c in chunks:
        assert tokens(c) <= 50
        assert c.text.startswith("Sentence number") and c.text.endswith("plain.")
    assert " ".join(c.text for c in chunks) == text


def test_text_without_sentences_split_at_whitespace_then_hard() -> None:
    words = " ".join(f"alpha{i}" for i in range(400))
    chunks = chunk_pages([make_page(1, ("text", words))], ChunkOptions(chunk_size=30))
    assert all(tokens(c) <= 30 for c in chunks)
    assert " ".join(c.text for c in chunks) == words
    for blob in ("x" * 3000, "中文字符没有标点" * 150):
        chunks = chunk_pages([make_page(1, ("text", blob))], ChunkOptions(chunk_size=25))
        assert all(tokens(c) <= 25 for c in chunks)
        assert "".join(c.text for c in chunks) == blob


# --- headings -------------------------------------------------------------------------------


def test_heading_paths_from_hash_counts_and_labels() -> None:
    page = make_page(
        1,
        ("title", "Paper"),
        ("text", "Abstract."),
        ("sub_title", "## Methods"),
        ("text", "M."),
        ("sub_title", "### Data"),
        ("text", "D."),
        ("sub_title", "Results"),
        ("text", "R."),  # no hashes: sub_title is level 2
        ("title", "# Appendix"),
        ("text", "A."),
    )
    chunks = chunk_pages([page])
    assert [(c.heading, c.text) for c in chunks] == [
        ("Paper", "# Paper\n\nAbstract."),
        ("Paper > Methods", "## Methods\n\nM."),
        ("Paper > Methods > Data", "### Data\n\nD."),
        ("Paper > Results", "## Results\n\nR."),
        ("Appendix", "# Appendix\n\nA."),
    ]


def test_heading_never_alone_and_headings_share_a_chunk() -> None:
    page = make_page(
        1, ("text", "Intro."), ("title", "Part"), ("sub_title", "Section"), ("text", sentences(30))
    )
    chunks = chunk_pages([page], ChunkOptions(chunk_size=60))
    assert chunks[0].text == "Intro." and chunks[0].heading == ""
    assert chunks[1].text.startswith("# Part\n\n## Section\n\nSentence number 0")
    assert chunks[1].heading == "Part > Section"
    assert all(c.heading == "Part > Section" for c in chunks[1:])
    assert all(tokens(c) <= 60 for c in chunks)
    big_eq = "\\[ " + "+".join(["y"] * 200) + " \\]"
    [only] = chunk_pages(
        [make_page(1, ("sub_title", "Eq"), ("equation", big_eq))], ChunkOptions(chunk_size=30)
    )
    assert only.text == "## Eq\n\n" + big_eq  # an oversized atom still takes its heading


def test_small_peers_merge_across_pages_with_true_page_numbers() -> None:
    pages = [
        make_page(2, ("sub_title", "Notes"), ("text", "One.")),
        make_page(3, ("text", "Two.")),
        make_page(7, ("text", "Three.")),
    ]
    [chunk] = chunk_pages(pages)
    assert chunk.text == "## Notes\n\nOne.\n\nTwo.\n\nThree."
    assert (chunk.page_start, chunk.page_end) == (2, 7)
    assert [r.page for r in chunk.regions] == [2, 2, 3, 7]
    assert chunk.labels == ("sub_title", "text")


# --- overlap --------------------------------------------------------------------------------


def shared_prefix(prev: str, nxt: str) -> str:
    """The longest start of ``nxt`` that ``prev`` ends with."""
    for k in range(len(nxt), 0, -1):
        if prev.endswith(nxt[:k]):
            return nxt[:k]
    return ""


def test_overlap_carries_trailing_prose() -> None:
    page = make_page(1, ("text", sentences(40)), ("text", sentences(10, 100)))
    chunks = chunk_pages([page], ChunkOptions(chunk_size=60, chunk_overlap=15))
    assert len(chunks) > 4
    for prev, nxt in itertools.pairwise(chunks):
        carried = shared_prefix(prev.text, nxt.text)
        assert len(carried.split()) >= 3 and count_tokens(carried) <= 15
        assert tokens(nxt) <= 60
    assert all(tokens(c) <= 60 for c in chunks)
    plain = chunk_pages([page], ChunkOptions(chunk_size=60))
    assert all(shared_prefix(a.text, b.text) == "" for a, b in itertools.pairwise(plain))


def test_overlap_from_the_previous_page_is_cited() -> None:
    pages = [make_page(1, ("text", sentences(12))), make_page(2, ("text", sentences(4, 50)))]
    chunks = chunk_pages(pages, ChunkOptions(chunk_size=100, chunk_overlap=12))
    last = chunks[-1]
    carried = shared_prefix(chunks[-2].text, last.text)
    assert carried.endswith("Sentence number 11 says something plain.")
    assert last.text == carried + "\n\n" + sentences(4, 50)
    assert "Sentence number 50" in last.text
    assert (last.page_start, last.page_end) == (1, 2)
    assert [r.page for r in last.regions] == [1, 2]


def test_overlap_never_takes_tables_or_crosses_headings() -> None:
    page = make_page(
        1,
        ("text", sentences(5)),
        ("table", table_html(40)),
        ("text", sentences(5, 50)),
        ("sub_title", "Next"),
        ("text", sentences(5)),
    )
    chunks = chunk_pages([page], ChunkOptions(chunk_size=100, chunk_overlap=20))
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.text.count("<table>") == nxt.text.count("</table>")
        if prev.text.endswith("</table>"):
            assert nxt.text.startswith("<table>") or nxt.text.startswith("Sentence number 50")
    assert next(c for c in chunks if "## Next" in c.text).text.startswith("## Next")


def test_tail_text_is_a_clean_suffix() -> None:
    text = sentences(20)
    tail, n = tail_text(text, 12)
    assert text.endswith(tail) and 0 < n == count_tokens(tail) <= 12
    assert text[len(text) - len(tail) - 1] == " "
    cjk = "数据来源公司公告" * 30
    tail, n = tail_text(cjk, 7)
    assert cjk.endswith(tail) and 0 < n <= 7 and "\ufffd" not in tail
    assert tail_text("short", 0) == ("", 0)


# --- modes, failures, loops -----------------------------------------------------------------


def test_pages_mode_one_chunk_per_page_however_long() -> None:
    pages = [
        make_page(1, ("title", "T"), ("text", sentences(80))),
        make_page(2, ("text", "Short.")),
        make_page(4),
    ]
    chunks = chunk_pages(pages, ChunkOptions(chunk_size=20, mode="pages"))
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2), (4, 4)]
    assert chunks[0].text == to_markdown(pages[0].blocks) and tokens(chunks[0]) > 20
    assert chunks[1].heading == "T" and chunks[2].text == "" and chunks[2].labels == ()


def test_document_mode_one_chunk() -> None:
    pages = [make_page(1, ("title", "T"), ("text", "a.")), make_page(2, ("text", "b."))]
    [chunk] = chunk_pages(pages, ChunkOptions(chunk_size=5, mode="document"))
    assert chunk.text == "# T\n\na.\n\nb." and (chunk.page_start, chunk.page_end) == (1, 2)
    assert chunk.heading == "T" and chunk.labels == ("title", "text")


@pytest.mark.parametrize("mode", ["chunks", "pages", "document"])
def test_failed_page_still_yields_a_chunk(mode: str) -> None:
    pages = [
        make_page(1, ("text", "Before.")),
        make_page(2, status="failed"),
        make_page(3, ("text", "After.")),
    ]
    chunks = chunk_pages(pages, ChunkOptions(mode=mode))  # type: ignore[arg-type]
    assert [(c.text, c.page_start, c.page_end, c.labels) for c in chunks] == [
        ("Before.", 1, 1, ("text",)),
        ("", 2, 2, ()),
        ("After.", 3, 3, ("text",)),
    ]
    check_basics(chunks)


def test_failed_page_flushes_the_pending_chunk_when_streaming() -> None:
    chunker = Chunker()
    assert chunker.add(make_page(1, ("text", "Before."))) == []
    done = chunker.add(make_page(2, status="failed", loop_cut=False))
    assert [(c.text, c.page_start) for c in done] == [("Before.", 1), ("", 2)]
    assert chunker.finish() == []


@pytest.mark.parametrize("mode", ["chunks", "pages", "document"])
def test_loop_cut_page_ends_with_the_note(mode: str) -> None:
    pages = [
        make_page(1, ("text", "Looping text."), status="truncated", loop_cut=True),
        make_page(2, ("text", "Next page.")),
    ]
    chunks = chunk_pages(pages, ChunkOptions(mode=mode))  # type: ignore[arg-type]
    text = "\n\n".join(c.text for c in chunks)
    assert "Looping text.\n\n" + LOOP_NOTE + "\n\nNext page." in text
    if mode == "pages":
        assert chunks[0].text.endswith(LOOP_NOTE)


# --- streaming, cost, determinism -----------------------------------------------------------


def test_add_returns_chunks_as_soon_as_complete() -> None:
    chunker = Chunker(ChunkOptions(chunk_size=60))
    first = chunker.add(make_page(1, ("text", sentences(30)), ("text", "Tail of page one.")))
    assert first and all(c.page_end == 1 for c in first)
    second = chunker.add(make_page(2, ("title", "New part"), ("text", "Body.")))
    assert second[-1].text.endswith("Tail of page one.")
    rest = chunker.finish()
    assert [c.text for c in rest] == ["# New part\n\nBody."]
    assert [c.index for c in first + second + rest] == list(range(len(first + second + rest)))
    again = Chunker(ChunkOptions(chunk_size=60))
    assert again.add(make_page(1, ("text", sentences(30))))[0] == first[0]


def test_token_counting_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = [0]
    real = count_tokens

    def counting(text: str) -> int:
        counted[0] += len(text)
        return real(text)

    for module in (chunker, overlap, prose, table_rows):
        monkeypatch.setattr(module, "count_tokens", counting)
    pages = [
        make_page(
            n,
            ("sub_title", f"S{n}"),
            ("text", sentences(3)),
            ("text", sentences(90)),
            ("table", table_html(50)),
            ("equation", "\\[ x \\]"),
        )
        for n in range(1, 41)
    ]
    total = sum(len(block_markdown(b)) for p in pages for b in p.blocks)
    chunks = chunk_pages(pages, ChunkOptions(chunk_size=100, chunk_overlap=10))
    assert len(chunks) > 200
    assert counted[0] < 4 * total


def test_same_pages_same_chunks() -> None:
    pages = [
        make_page(1, ("title", "T"), ("text", sentences(50)), ("table", table_html(30))),
        make_page(2, ("text", sentences(20))),
    ]
    options = ChunkOptions(chunk_size=70, chunk_overlap=10)
    assert chunk_pages(pages, options) == chunk_pages(pages, options)


# --- property test --------------------------------------------------------------------------

WORD = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9)


@st.composite
def block_specs(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(
        st.sampled_from(
            [
                "text",
                "text",
                "text",
                "title",
                "sub_title",
                "equation",
                "table",
                "image",
                "table_caption",
                "figure_title",
                "table_footnote",
                "image_caption",
                "aside",
            ]
        )
    )
    if kind == "table":
        rows = draw(st.integers(1, 12))
        cols = draw(st.integers(1, 4))
        cell = draw(st.lists(WORD, min_size=rows * cols, max_size=rows * cols))
        td = draw(st.sampled_from(["<td>", "<td>", '<td colspan="2">']))  # spans stay HTML
        html = "".join(
            "<tr>" + "".join(f"{td}{cell[r * cols + c]}</td>" for c in range(cols)) + "</tr>"
            for r in range(rows)
        )
        return kind, f"<table>{html}</table>"
    if kind == "image":
        return kind, ""
    if kind in HEADING_LABELS:
        return kind, draw(st.sampled_from(["", "# ", "## ", "### "])) + " ".join(
            draw(st.lists(WORD, min_size=1, max_size=3))
        )
    if kind in CAPTION_LABELS:
        return kind, " ".join(draw(st.lists(WORD, min_size=1, max_size=4)))
    if kind == "equation":
        return kind, "\\[ " + " + ".join(draw(st.lists(WORD, min_size=1, max_size=40))) + " \\]"
    words = draw(st.lists(st.one_of(WORD, WORD.map(lambda w: w * 12)), min_size=1, max_size=80))
    marks = draw(
        st.lists(
            st.sampled_from([" ", " ", " ", ". ", "\n", "。", "! "]),
            min_size=len(words),
            max_size=len(words),
        )
    )
    return kind, "".join(w + m for w, m in zip(words, marks, strict=True)).strip()


def expected_needles(
    page: Page, image_target: Callable[[Page, Block, int], str] | None
) -> list[str]:
    """What must survive, in order: words of each block, cell texts of tables."""
    needles: list[str] = []
    k = 0
    for block in page.blocks:
        if block.label == "table":
            needles.extend(re.findall(r"<td[^>]*>(.*?)</td>", block.text))
        elif block.label == "image":
            if image_target is not None:
                needles.append(image_target(page, block, k))
            k += 1
        else:
            needles.extend(block_markdown(block).split())
    return needles


def oversize_is_atomic(chunk: Chunk, size: int) -> bool:
    """An over-size chunk holds (after its headings) one indivisible unit."""
    parts = [p for p in chunk.text.split("\n\n") if not p.startswith("#")]
    labels = {label for label in chunk.labels if label not in HEADING_LABELS}
    if len(squash("".join(parts))) <= 1:  # headings filled the room: one character follows
        return True
    if labels == {"equation"} and len(parts) == 1:
        return True
    if labels and labels <= CAPTION_LABELS | {"image"}:
        return "image" in labels
    if "table" in labels and labels <= CAPTION_LABELS | {"table"}:
        body = "\n\n".join(parts)
        return body.count("<tr>") <= 2 and len(re.findall(r"^\|", body, re.MULTILINE)) <= 3
    return False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(block_specs(), min_size=0, max_size=18),
    cuts=st.lists(st.integers(0, 18), max_size=3),
    size=st.sampled_from([12, 24, 48, 120]),
    overlap_share=st.sampled_from([0, 0, 0.2, 0.5]),
    tables=st.sampled_from(["html", "markdown"]),
    links=st.booleans(),
    fail=st.booleans(),
)
def test_property_nothing_lost_sizes_and_spans(
    specs: list[tuple[str, str]],
    cuts: list[int],
    size: int,
    overlap_share: float,
    tables: str,
    links: bool,
    fail: bool,
) -> None:
    bounds = sorted({0, len(specs), *[min(c, len(specs)) for c in cuts]})
    spans = enumerate(itertools.pairwise(bounds))
    pages = [make_page(2 * n + 1, *specs[a:b]) for n, (a, b) in spans]
    if fail:
        pages.insert(len(pages) // 2, make_page(2 * len(pages) + 40, status="failed"))
        pages = sorted(pages, key=lambda p: p.number)
    overlap = int(size * overlap_share)
    target = (lambda p, b, k: f"img{p.number}x{k}") if links else None
    options = ChunkOptions(chunk_size=size, chunk_overlap=overlap, tables=tables)  # type: ignore[arg-type]
    chunks = chunk_pages(pages, options, image_target=target)
    check_basics(chunks)
    for c in chunks:
        n = tokens(c)
        assert n <= size or oversize_is_atomic(c, size), (n, c.text)
        assert c.text.count("<table") == c.text.count("</table>")
        if c.text and c.text != LOOP_NOTE:
            assert c.regions
    if overlap == 0:
        assert_in_order(
            [w for p in pages for w in expected_needles(p, target)], "".join(c.text for c in chunks)
        )
    assert chunk_pages(pages, options, image_target=target) == chunks


# --- real outputs ---------------------------------------------------------------------------


def fixture_page(path: Path, number: int) -> Page:
    raw = path.read_text(encoding="utf-8")
    parsed = parse_page(raw)
    status = "truncated" if parsed.loop is not None else "ok"
    return Page(
        number,
        str(number),
        595.0,
        842.0,
        1190,
        1684,
        parsed.blocks,
        raw,
        status,
        loop_cut=parsed.loop is not None,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [48, 160, 2000])
@pytest.mark.parametrize("tables", ["html", "markdown"])
def test_real_outputs_keep_tables_whole_with_captions(
    raw_outputs: Path, size: int, tables: str
) -> None:
    paths = sorted(raw_outputs.glob("*.txt"))
    assert paths
    pages = [fixture_page(p, 2 * n + 1) for n, p in enumerate(paths)]
    options = ChunkOptions(chunk_size=size, tables=tables)  # type: ignore[arg-type]
    chunks = chunk_pages(pages, options, image_target=CROP)
    check_basics(chunks)
    text = "\n\n".join(c.text for c in chunks)
    for page in pages:
        assert_in_order(
            [
                w
                for b in page.blocks
                for w in (
                    re.findall(r"<td>(.*?)</td>", b.text) if b.label == "table" else b.text.split()
                )
                if "<" not in w and ">" not in w and "|" not in w
            ],
            text,
        )
    for c in chunks:
        assert tokens(c) <= size or oversize_is_atomic(c, size), c.text
        assert c.text.count("<table") == c.text.count("</table>")

    def holder(needle: str) -> Chunk:
        return next(c for c in chunks if needle in c.text)

    # OCR-1 (fixture 06): caption before the table, footnote after it.
    assert "表5" in holder("<td>日期</td>" if tables == "html" else "| 日期 |").text
    assert "数据来源" in [c for c in chunks if "中南建设" in c.text][-1].text
    # OCR-2 (fixture 14): figure_title before each table, after the figure.
    assert "Table 2. Temperatures" in holder("Anthracene").text
    assert "Table 1. Thermodynamic" in holder("G_{193K}").text
    assert ".png)\n\nFigure 4. VT" in holder("Figure 4. VT").text
    # The cut loop (fixture 08) is marked where the page ends.
    assert LOOP_NOTE in holder("陈忠实，男").text or LOOP_NOTE in text
    if size >= 2000:
        assert (
            sum(c.text.count("<table") for c in chunks)
            == sum(b.text.count("<table") for p in pages for b in p.blocks)
            or tables == "markdown"
        )
