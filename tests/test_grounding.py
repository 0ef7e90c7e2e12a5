"""The grounded-markdown parser: real outputs, each grammar bend, and property tests."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocr_loaders import parse_grounded
from ocr_loaders._grounding import (
    LOOP_NOTE,
    default_image_link,
    find_repetition_loop,
    format_grounded,
    html_table_to_markdown,
    may_end_in_loop,
    parse_boxes,
    parse_page,
    to_markdown,
)
from ocr_loaders._model import Block

HEADER_RE = re.compile(r"<\|ref\|>.*?<\|/ref\|>\s*<\|det\|>.*?<\|/det\|>", re.DOTALL)
TAG_RE = re.compile(r"<\|/?(?:ref|det|grounding)\|>")
WORD_RE = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(w == h for h in it) for w in needles)


def check_boxes(blocks: list[Block]) -> None:
    for b in blocks:
        for box in b.boxes:
            assert len(box) == 4 and all(isinstance(v, int) for v in box)
            x0, y0, x1, y1 = box
            assert 0 <= x0 <= x1 <= 999 and 0 <= y0 <= y1 <= 999


def fixture_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.txt"))


# --- real outputs ---------------------------------------------------------------------------


def test_every_fixture_parses_losslessly(raw_outputs: Path) -> None:
    files = fixture_files(raw_outputs)
    assert files, "no fixtures found"
    for path in files:
        raw = path.read_text(encoding="utf-8")
        blocks = parse_grounded(raw)
        assert blocks, path.name
        # every word of the content outside the headers survives, in order
        outside = HEADER_RE.sub("\n", raw)
        assert is_subsequence(words(outside), words(" ".join(b.text for b in blocks))), path.name
        check_boxes(blocks)
        assert [b.index for b in blocks] == list(range(len(blocks))), path.name
        # every well-formed box in the raw text is kept, multi-box blocks included
        well_formed = re.findall(r"\[\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\s*\]", raw)
        kept = sum(len(b.boxes) for b in blocks)
        assert kept >= len(well_formed), path.name
        # every <table lands in a table block
        assert raw.lower().count("<table") == sum(
            b.text.lower().count("<table") for b in blocks if b.label == "table"
        ), path.name


def test_multibox_blocks_keep_all_boxes(raw_outputs: Path) -> None:
    raw = (raw_outputs / "01_ocr1-hf_convert-markdown_multibox_ft-article.txt").read_text()
    blocks = parse_grounded(raw)
    multi = [b for b in blocks if len(b.boxes) == 2]
    assert multi
    assert multi[0].boxes == ((13, 930, 202, 978), (217, 170, 395, 500))


def test_expected_markdown_words_in_order(raw_outputs: Path) -> None:
    pairs = [(p, p.with_suffix(".expected.md")) for p in fixture_files(raw_outputs)]
    pairs = [(r, e) for r, e in pairs if e.exists()]
    assert pairs
    for raw_path, expected_path in pairs:
        raw = raw_path.read_text(encoding="utf-8")  # expected: DeepSeek's image names
        md = to_markdown(parse_grounded(raw), image_link=default_image_link())
        expected = words(expected_path.read_text(encoding="utf-8"))
        assert is_subsequence(expected, words(md)), raw_path.name
        assert "<|ref|>" not in md and "<|det|>" not in md
        assert "<center>" not in md


def test_table_trap_caption_before_html(raw_outputs: Path) -> None:
    raw = (
        raw_outputs / "06_ocr1-vllm-gundam_zh-table_caption-before-html_footnote.txt"
    ).read_text()
    blocks = parse_grounded(raw)
    labels = [b.label for b in blocks]
    assert labels[-3:] == ["table_caption", "table", "table_footnote"]
    caption, table = blocks[-3], blocks[-2]
    assert "<table" not in caption.text and caption.text.startswith("表5")
    assert table.text.startswith("<table>") and table.text.endswith("</table>")
    assert table.boxes == ((83, 173, 922, 313),)


def test_ocr2_figure_title_kept(raw_outputs: Path) -> None:
    raw = (raw_outputs / "14_ocr2-mlx_chem-paper_tables_figure-title.txt").read_text()
    blocks = parse_grounded(raw)
    titles = [b for b in blocks if b.label == "figure_title"]
    assert len(titles) == 3
    # OCR-2 order: the caption comes first and its table right after, HTML in place
    i = blocks.index(titles[1])
    assert blocks[i + 1].label == "table" and "<table>" in blocks[i + 1].text


def test_coordinates_over_999_clamped(raw_outputs: Path) -> None:
    raw = (raw_outputs / "10_ocr1-replicate_de-notes_coord-over-999.txt").read_text()
    blocks = parse_grounded(raw)
    assert blocks[-1].boxes == ((25, 892, 825, 999),)


def test_repetition_loop_fixture_is_cut(raw_outputs: Path) -> None:
    raw = (raw_outputs / "08_ocr1-vllm-gundam_repetition-loop_no-eos.txt").read_text()
    loop = find_repetition_loop(raw)
    assert loop is not None
    page = parse_page(raw, finish_reason="length")
    assert page.loop is not None
    text = " ".join(b.text for b in page.blocks)
    assert "1964年毕业于河南大学中文系" in text  # the real content before the loop is kept
    assert text.count("河南省作协主席") <= 2  # one copy of the loop, not hundreds
    assert len(text) < len(raw) / 10
    md = to_markdown(page.blocks, loop_cut=True)
    assert md.endswith(LOOP_NOTE)
    # the parser alone stays lossless: nothing is cut without a page context
    assert "".join(b.text for b in parse_grounded(raw)).count("河南省作协主席") > 100


def test_no_false_loop_on_real_pages(raw_outputs: Path) -> None:
    for path in fixture_files(raw_outputs):
        if "repetition-loop" in path.name:
            continue
        assert find_repetition_loop(path.read_text()) is None, path.name


def test_the_cheap_loop_probe_says_yes_wherever_the_full_test_does(raw_outputs: Path) -> None:
    """A streamed answer is probed every few hundred characters and fully tested only when
    the probe says yes: at every cut of every real output (a loop among them) the probe never
    says no where the full test finds a loop, and says no at most cuts of ordinary pages."""
    found = probed = cuts = 0
    for path in fixture_files(raw_outputs):
        raw = path.read_text()
        for k in range(300, len(raw), 61):
            end = raw[:k][-4000:]
            loop, maybe = find_repetition_loop(end) is not None, may_end_in_loop(end)
            assert maybe or not loop, f"{path.name} cut at {k}"
            found += loop
            cuts += not loop
            probed += maybe and not loop
    assert found > 50  # the loop fixture's cuts were there to be found
    assert probed < 0.15 * cuts


# --- grammar bends --------------------------------------------------------------------------


def test_content_runs_to_next_tag_and_unknown_labels_kept() -> None:
    raw = (
        "<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n# Hello\n\n"
        "<|ref|>text of text<|/ref|><|det|>[[5, 6, 7, 8]]<|/det|>\nBody line 1\nline 2\n"
    )
    blocks = parse_grounded(raw)
    assert [(b.label, b.boxes, b.text) for b in blocks] == [
        ("title", ((1, 2, 3, 4),), "# Hello"),
        ("text of text", ((5, 6, 7, 8),), "Body line 1\nline 2"),
    ]


def test_untagged_text_before_and_between_blocks_kept() -> None:
    raw = (
        "Preamble words\n<|ref|>image<|/ref|><|det|>[[0, 0, 10, 10]]<|/det|>\n"
        "stray after image\n<|ref|>text<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\nbody"
    )
    blocks = parse_grounded(raw)
    assert [(b.label, b.text) for b in blocks] == [
        ("text", "Preamble words"),
        ("image", ""),
        ("text", "stray after image"),
        ("text", "body"),
    ]
    assert blocks[0].boxes == () and blocks[2].boxes == ()


@pytest.mark.parametrize(
    ("det", "boxes"),
    [
        ("[[506 688, 660, 732]]", ((506, 688, 660, 732),)),
        ("[[117, s 325, 330, 389]]", ((117, 325, 330, 389),)),
        (" [[10, 20, 30, 40], [50, 60, 70, 80]]", ((10, 20, 30, 40), (50, 60, 70, 80))),
        ("[[300, 400, 100, 200]]", ((100, 200, 300, 400),)),
        ("[[1000, 1005, 1970, 5]]", ((999, 5, 999, 999),)),
        ("[[1, 2, 3]]", ()),
        ("[[1, 2, 3], [4, 5, 6, 7]]", ((4, 5, 6, 7),)),
        ("garbage", ()),
        ("[1, 2, 3, 4]", ((1, 2, 3, 4),)),
        ("[[1, 2, 3, 4, 5, 6, 7, 8]]", ((1, 2, 3, 4), (5, 6, 7, 8))),
        ("[[-5, 2, 3, 4]]", ((3, 2, 5, 4),)),
    ],
)
def test_parse_boxes_tolerant(det: str, boxes: tuple[tuple[int, ...], ...]) -> None:
    assert parse_boxes(det) == boxes


def test_unreadable_box_keeps_text() -> None:
    blocks = parse_grounded("<|ref|>text<|/ref|><|det|>[[oops]]<|/det|>\nkept words")
    assert blocks == [Block("text", (), "kept words", 0)]


def test_space_before_box_list_and_inside_tags() -> None:
    blocks = parse_grounded("<|ref|>text<|/ref|> <|det|> [[1, 2, 3, 4]]<|/det|>\nhello")
    assert blocks == [Block("text", ((1, 2, 3, 4),), "hello", 0)]


def test_broken_nesting() -> None:
    raw = "<|ref|>a<|/ref|>s<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\ncontent here"
    blocks = parse_grounded(raw)
    assert len(blocks) == 1
    assert blocks[0].boxes == ((1, 2, 3, 4),)
    assert blocks[0].text.endswith("content here")
    assert "<|" not in blocks[0].label + blocks[0].text


def test_truncated_output_mid_header() -> None:
    raw = (
        "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nfirst para\n"
        "<|ref|>text<|/ref|><|det|>[[5, 6"
    )
    blocks = parse_grounded(raw)
    assert blocks[0].text == "first para"
    assert blocks[-1].boxes == ()


def test_grounding_ocr_line_mode() -> None:
    raw = (
        "<|ref|>The quick brown fox<|/ref|><|det|>[[10, 10, 500, 40]]<|/det|>\n"
        "<|ref|>jumps over the lazy dog.<|/ref|><|det|>[[10, 50, 480, 80]]<|/det|>"
    )
    blocks = parse_grounded(raw)
    assert [(b.label, b.text, b.boxes) for b in blocks] == [
        ("text", "The quick brown fox", ((10, 10, 500, 40),)),
        ("text", "jumps over the lazy dog.", ((10, 50, 480, 80),)),
    ]


def test_table_trap_generic_and_reverse_order() -> None:
    html = "<table><tr><td>a</td></tr></table>"
    trap = (
        "<|ref|>table<|/ref|><|det|>[[0, 100, 999, 300]]<|/det|>\n"
        "<|ref|>table_caption<|/ref|><|det|>[[0, 50, 999, 90]]<|/det|>\n"
        f"Table 1: Results\n\n{html}\n"
    )
    blocks = parse_grounded(trap)
    assert [(b.label, b.text) for b in blocks] == [
        ("table_caption", "Table 1: Results"),
        ("table", html),
    ]
    assert blocks[1].boxes == ((0, 100, 999, 300),)
    reverse = (
        "<|ref|>table_caption<|/ref|><|det|>[[0, 50, 999, 90]]<|/det|>\nTable 1\n\n"
        f"<|ref|>table<|/ref|><|det|>[[0, 100, 999, 300]]<|/det|>\n{html}\n"
    )
    assert [(b.label, b.text) for b in parse_grounded(reverse)] == [
        ("table_caption", "Table 1"),
        ("table", html),
    ]
    # caption first holding the HTML, empty table after: the HTML moves forward
    fwd = (
        "<|ref|>figure_title<|/ref|><|det|>[[0, 50, 999, 90]]<|/det|>\nTable 2\n"
        + html
        + "\n<|ref|>table<|/ref|><|det|>[[0, 100, 999, 300]]<|/det|>\n"
    )
    assert [(b.label, b.text) for b in parse_grounded(fwd)] == [
        ("figure_title", "Table 2"),
        ("table", html),
    ]


def test_table_html_in_a_text_block_becomes_a_table_block() -> None:
    html = "<table><tr><td>x</td></tr></table>"
    blocks = parse_grounded(f"<|ref|>text<|/ref|><|det|>[[1, 1, 9, 9]]<|/det|>\nLead in\n{html}")
    assert [(b.label, b.text) for b in blocks] == [("text", "Lead in"), ("table", html)]
    only = parse_grounded(f"<|ref|>text<|/ref|><|det|>[[1, 1, 9, 9]]<|/det|>\n{html}")
    assert [(b.label, b.text, b.boxes) for b in only] == [("table", html, ((1, 1, 9, 9),))]


def test_end_of_sentence_token_removed() -> None:
    raw = "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nend<｜end▁of▁sentence｜>"
    blocks = parse_grounded(raw)
    assert blocks[0].text == "end"


def test_format_grounded_round_trips() -> None:
    blocks = [
        Block("title", ((1, 2, 3, 4),), "# T", 0),
        Block("text", ((5, 6, 7, 8), (9, 10, 11, 12)), "para\nline", 1),
        Block("image", ((0, 0, 999, 999),), "", 2),
    ]
    assert parse_grounded(format_grounded(blocks)) == blocks


# --- markdown -------------------------------------------------------------------------------


def test_markdown_headings_equations_captions_images() -> None:
    raw = (
        "<|ref|>title<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\nMain Title\n"
        "<|ref|>sub_title<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\n## Section\n"
        "<|ref|>equation<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\n"
        "\\[ a \\coloneqq b \\quad (1) \\]\n"
        "<|ref|>image<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\n"
        "<|ref|>image_caption<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\n"
        "<center>Figure 1: A cat</center>"
    )
    md = to_markdown(parse_grounded(raw), image_link=default_image_link())
    assert md.splitlines()[0] == "# Main Title"
    assert "## Section" in md
    assert "\\[ a := b \\quad (1) \\]" in md
    assert "![figure](images/0.jpg)" in md  # a link only where one is asked for
    assert "<center>" not in md and md.count("Figure 1: A cat") == 1
    assert "](" not in to_markdown(parse_grounded(raw))  # no crops written: no link


def test_markdown_tables_switch() -> None:
    html = "<table><tr><td>h1</td><td>h2</td></tr><tr><td>a|b</td><td>2</td></tr></table>"
    assert html_table_to_markdown(html) == "| h1 | h2 |\n| --- | --- |\n| a\\|b | 2 |"
    spanned = '<table><tr><td colspan="2">h</td></tr><tr><td>a</td><td>b</td></tr></table>'
    assert html_table_to_markdown(spanned) is None
    blocks = [Block("table", ((1, 1, 2, 2),), html, 0)]
    assert to_markdown(blocks) == html
    assert to_markdown(blocks, tables="markdown").startswith("| h1 | h2 |")


def test_model_box_mapping_pins_999_convention() -> None:
    block = Block("text", ((0, 0, 999, 999), (100, 200, 300, 400)), "x", 0)
    assert block.scaled_boxes(612.0, 792.0) == (
        (0.0, 0.0, 612.0, 792.0),
        (100 / 999 * 612, 200 / 999 * 792, 300 / 999 * 612, 400 / 999 * 792),
    )
    # in pixels of the sent image: 999 maps to the far edge, not 0.1 % short of it
    assert block.scaled_boxes(1190, 1684)[0][2:] == (1190.0, 1684.0)


# --- properties -----------------------------------------------------------------------------

TAG_FRAGMENTS = [
    "<|ref|>",
    "<|/ref|>",
    "<|det|>",
    "<|/det|>",
    "[[",
    "]]",
    ", ",
    "<|grounding|>",
    "<table>",
    "</table>",
    "<tr><td>",
    "</td></tr>",
    "text",
    "table",
    "999",
    "\n",
]

fragments = st.lists(st.one_of(st.sampled_from(TAG_FRAGMENTS), st.text(max_size=12)), max_size=60)


def non_tag_words(raw: str) -> list[str]:
    """Words a lossless parser must keep: outside headers, labels and box lists."""
    outside = HEADER_RE.sub("\n", raw)
    outside = re.sub(r"<\|ref\|>.*?(<\|/ref\|>|$)", "\n", outside, flags=re.DOTALL)
    outside = re.sub(r"<\|det\|>.*?(<\|/det\|>|\n|$)", "\n", outside, flags=re.DOTALL)
    return words(TAG_RE.sub(" ", outside))


@settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(fragments)
def test_never_raises_and_keeps_non_tag_text(parts: list[str]) -> None:
    raw = "".join(parts)
    blocks = parse_grounded(raw)  # the settings' deadline bounds its time per example
    check_boxes(blocks)
    assert [b.index for b in blocks] == list(range(len(blocks)))
    kept = words(" ".join(b.text + " " + b.label for b in blocks))
    assert set(non_tag_words(raw)) <= set(kept)


@settings(max_examples=150, deadline=1000)
@given(st.integers(min_value=0, max_value=10_000), st.data())
def test_random_truncations_of_real_shape(cut: int, data: st.DataObject) -> None:
    page = (
        "<|ref|>sub_title<|/ref|><|det|>[[85, 122, 375, 144]]<|/det|>\n## Heading words\n\n"
        "<|ref|>table<|/ref|><|det|>[[83, 173, 922, 313]]<|/det|>\n"
        "<|ref|>table_caption<|/ref|><|det|>[[85, 155, 605, 173]]<|/det|>\nCaption words\n\n"
        "<table><tr><td>cell one</td><td>cell two</td></tr></table>\n\n"
        "<|ref|>text<|/ref|><|det|>[[81, 856, 484, 902], [510, 858, 912, 903]]<|/det|>\n"
        "Paragraph words flowing across columns.\n"
    )
    raw = page[: cut % (len(page) + 1)]
    insert_at = data.draw(st.integers(min_value=0, max_value=len(raw)))
    junk = data.draw(st.sampled_from([*TAG_FRAGMENTS, "", "é漢字🙂"]))
    raw = raw[:insert_at] + junk + raw[insert_at:]
    blocks = parse_grounded(raw)
    check_boxes(blocks)
    kept = set(words(" ".join(b.text + " " + b.label for b in blocks)))
    assert set(non_tag_words(raw)) <= kept
    for b in blocks:
        if re.search(r"<table\b", b.text, re.IGNORECASE):  # a tag, not "<tableé" or "<table9"
            assert b.label == "table"


@pytest.mark.parametrize("junk", ["é漢字🙂", "text", "999"])
def test_a_word_glued_to_table_is_text_not_a_table(junk: str) -> None:
    raw = (
        f"<|ref|>table_caption<|/ref|><|det|>[[85, 155, 605, 173]]<|/det|>\nCaption\n\n<table{junk}"
    )
    blocks = parse_grounded(raw)
    assert [(b.label, b.text) for b in blocks] == [("table_caption", f"Caption\n\n<table{junk}")]
    truncated = parse_grounded(raw.replace(junk, "><tr><td>cell"))
    assert [b.label for b in truncated] == ["table_caption", "table"]


@settings(max_examples=100, deadline=2000)
@given(st.text(min_size=0, max_size=3000))
def test_random_unicode_and_loop_finder(text: str) -> None:
    blocks = parse_grounded(text)
    assert set(non_tag_words(text)) <= set(words(" ".join(b.text + " " + b.label for b in blocks)))
    find_repetition_loop(text)  # must not raise on anything
    page = parse_page(text, finish_reason="length")
    assert isinstance(page.blocks, tuple)


def test_loop_finder_is_linear_on_long_input() -> None:
    text = "word " * 20000 + "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nsame\n" * 2000
    start = time.perf_counter()
    loop = find_repetition_loop(text)
    assert time.perf_counter() - start < 2.0
    assert loop is not None


def test_loop_of_whole_blocks_with_changing_boxes() -> None:
    intro = "<|ref|>title<|/ref|><|det|>[[1, 1, 900, 50]]<|/det|>\n# Report\n\n"
    rows = "".join(
        f"<|ref|>text<|/ref|><|det|>[[10, {i}, 900, {i + 5}]]<|/det|>\nThe same line again.\n\n"
        for i in range(100, 400, 3)
    )
    page = parse_page(intro + rows, finish_reason="length")
    assert page.loop is not None
    assert sum(b.text == "The same line again." for b in page.blocks) <= 2
    assert page.blocks[0].text == "# Report"


def test_markdown_neutralizes_active_html_but_keeps_tables_and_math() -> None:
    raw = (
        "<|ref|>text<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\n"
        "Click <script>steal()</script> or <img src=x onerror=alert(1)> here; x<y and z>w.\n"
        "<|ref|>table<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\n"
        '<table><tr><td colspan="2" onclick="evil()">a</td></tr></table>'
    )
    md = to_markdown(parse_grounded(raw))
    assert "<script>" not in md and "&lt;script&gt;steal()&lt;/script&gt;" in md
    assert "<img" not in md and "onerror" in md  # shown as text, not run
    assert "x<y and z>w" in md
    assert '<table><tr><td colspan="2">a</td></tr></table>' in md
