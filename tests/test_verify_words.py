"""The text-layer cross-check's pure parts: words, matching, garbage layers, policy, budget."""

from __future__ import annotations

from collections import Counter

import pytest

from ocr_loaders._errors import ConfigError
from ocr_loaders._model import Block, Page, PageImage, SourceInfo
from ocr_loaders._verify.garbage import implausible, is_garbage_text, layer_quality
from ocr_loaders._verify.matching import check_page
from ocr_loaders._verify.policy import RepairBudget, VerifySettings, risk_reasons, verdict
from ocr_loaders._verify.tiling import choose_tiles
from ocr_loaders._verify.words import (
    LayerWord,
    joined_text,
    layer_counts,
    layer_tokens,
    tokens,
)


def words_on_lines(*lines: str, top: float = 100.0) -> list[LayerWord]:
    """Layer words laid out left to right, one line each, 20 pt apart, on a 600 x 800 page."""
    out = []
    for n, line in enumerate(lines):
        x = 50.0
        for w in line.split():
            out.append(LayerWord(w, (x, top + 20 * n, x + 8 * len(w), top + 20 * n + 12), n))
            x += 8 * len(w) + 6
    return out


# --- tokens ---------------------------------------------------------------------------------


def test_ligatures_and_compatibility_forms_fold() -> None:
    assert tokens("ﬁnal ﬂow ﬀect") == tokens("final flow ffect") == ["final", "flow", "ffect"]
    assert tokens("ＡＢＣ１２３") == ["abc123"]  # full-width forms


def test_spacing_accents_of_pdfs_match_composed_letters() -> None:
    # a PDF that draws the breve as its own glyph, and the model's composed letter
    assert tokens("O˘guz") == tokens("Oğuz") == ["oguz"]
    assert tokens("Mu¨ller") == tokens("Müller")


def test_soft_hyphens_and_line_break_hyphens_join() -> None:
    assert tokens("infor\u00admation") == ["information"]
    assert tokens("infor\u00ad\nmation") == ["information"]
    assert tokens("exam-\nple of text") == ["example", "of", "text"]
    # a hyphen inside a line is a compound: two tokens, on both sides alike
    assert tokens("state-of-the-art") == ["state", "of", "the", "art"]


def test_layer_hyphenation_across_lines_joins_into_one_token() -> None:
    layer = words_on_lines("the exam-", "ple works")
    assert [t.token for t in layer_tokens(layer)] == ["the", "example", "works"]
    # upper case after the break: a hyphenated name, not a broken word
    layer = words_on_lines("Baden-", "Württemberg")
    assert [t.token for t in layer_tokens(layer)] == ["baden", "wurttemberg"]


def test_filled_in_text_reads_as_a_paragraph() -> None:
    """Text gap filling takes from the layer reads as running text: lines joined by a space,
    a word broken at a line's end joined again (a name like ``Baden-Württemberg`` keeps its
    hyphen)."""
    layer = words_on_lines("relies on ef-", "ficient passage retrieval in Baden-", "Württemberg")
    assert joined_text(layer) == "relies on efficient passage retrieval in Baden-Württemberg"
    assert joined_text(words_on_lines("one line")) == "one line"


def test_markup_is_not_text() -> None:
    assert tokens("<table><tr><td>12</td><td>x</td></tr></table>") == ["12", "x"]
    assert tokens(r"$\alpha + \frac{a}{b}$") == ["a", "b"]
    assert tokens("## Heading **bold** `code` | cell |") == ["heading", "bold", "code", "cell"]


def test_cjk_counts_characters_so_spacing_does_not_matter() -> None:
    assert tokens("深度学习模型") == list("深度学习模型")
    assert tokens("한국어 텍스트") == tokens("한국어텍스트") == list("한국어텍스트")
    assert tokens("日本語のテキスト") == list("日本語のテキスト")
    assert tokens("ภาษาไทย") == list("ภาษาไทย")
    # mixed scripts: Latin words stay words
    assert tokens("GPU 加速 test") == ["gpu", "加", "速", "test"]


def test_rtl_words_match_in_logical_or_visual_order() -> None:
    logical = "שלום עולם"
    visual = " ".join(w[::-1] for w in logical.split())  # how some PDFs store Hebrew
    assert tokens(logical) == tokens(visual)
    assert tokens("مرحبا بالعالم") == tokens("ابحرم ملاعلاب")
    # Arabic presentation forms (what PDF fonts often map to) fold to the base letters
    assert tokens("\ufedf\ufeb3") == tokens("لس")


# --- matching -------------------------------------------------------------------------------


def block(text: str, box: tuple[int, int, int, int], index: int = 0) -> Block:
    return Block("text", (box,), text, index)


def test_full_reading_covers_everything_and_invents_nothing() -> None:
    words = words_on_lines("Dense passage retrieval", "for open domain answers")
    blocks = [block("Dense passage retrieval for open domain answers", (50, 100, 700, 200))]
    found = check_page(words, blocks, 600, 800)
    assert found.coverage == 1.0
    assert found.unsupported == 0.0
    assert found.missed_words == ()
    assert found.blocks[0].coverage == 1.0


def test_the_counts_only_check_agrees_with_the_full_one() -> None:
    """``flag`` counts tokens without token objects; the figures are the full check's."""
    words = words_on_lines("The exam-", "ple of Baden-", "Württemberg, the ﬁrst", "日本語 text")
    assert layer_counts(words) == Counter(t.token for t in layer_tokens(words))
    assert layer_counts(words)["example"] == 1 and layer_counts(words)["the"] == 2
    blocks = [
        block("The example of Baden-Württemberg", (0, 0, 999, 500)),
        block("made up words here, the 日本", (0, 500, 999, 999)),
    ]
    full, counted = (check_page(words, blocks, 600, 800, geometry=g) for g in (True, False))
    assert (counted.layer_tokens, counted.ocr_tokens, counted.matched, counted.invented) == (
        full.layer_tokens,
        full.ocr_tokens,
        full.matched,
        full.invented,
    )
    assert 0 < counted.coverage < 1 and counted.blocks == ()


def test_coverage_is_a_multiset_share_and_order_free() -> None:
    words = words_on_lines("the cat and the dog")
    # reversed order: still all found
    assert (
        check_page(words, [block("dog the and cat the", (0, 0, 999, 999))], 600, 800).coverage
        == 1.0
    )
    # "the" once only: 4 of 5
    found = check_page(words, [block("the cat and dog", (0, 0, 999, 999))], 600, 800)
    assert found.coverage == pytest.approx(0.8)


def test_dropped_and_made_up_text_show() -> None:
    words = words_on_lines("alpha beta gamma delta", "epsilon zeta eta theta")
    half = check_page(words, [block("alpha beta gamma delta", (50, 100, 999, 140))], 600, 800)
    assert half.coverage == pytest.approx(0.5)
    # the second line's words lie outside every box: missed
    assert len(half.missed_words) == 4
    invented = check_page(
        words,
        [
            block(
                "alpha beta gamma delta epsilon zeta eta theta one two three four", (0, 0, 999, 999)
            )
        ],
        600,
        800,
    )
    assert invented.coverage == 1.0
    assert invented.unsupported == pytest.approx(4 / 12)


def test_block_coverage_uses_the_words_inside_its_box() -> None:
    words = words_on_lines("alpha beta gamma delta", "epsilon zeta eta theta")
    # page 600 x 800: line 0 at y 100..112 -> bins 125..140, line 1 at 120..132 -> 150..165
    blocks = [
        block("alpha beta gamma delta", (0, 120, 999, 142), 0),
        block("epsilon zeta", (0, 148, 999, 168), 1),
    ]
    found = check_page(words, blocks, 600, 800)
    assert [b.coverage for b in found.blocks] == [1.0, 0.5]
    assert found.missed_words == ()


def test_cjk_page_matches_despite_different_spacing() -> None:
    words = words_on_lines("한국어 텍스트와 표", "深度 学习")
    found = check_page(words, [block("한국어텍스트와 표 深度学习", (0, 0, 999, 999))], 600, 800)
    assert found.coverage == 1.0 and found.unsupported == 0.0


# --- garbage layers -------------------------------------------------------------------------

GARBAGE = (
    "«POAH «3E*»CM tanntxim ¦lHe rnOdEl 1t5 v3ry g*od aT r3a|dlng s¢ans wlth tHe "
    "c0rrect p»ges ~nd lt dOes «ot h*lp m^ch tO f1nd tAbLes ln tHe scaNs"
)


def test_a_garbage_layer_is_detected() -> None:
    assert implausible("«3E*»CM")
    assert implausible("tAnNt")
    assert implausible("xkcdwrtz")
    assert implausible("Bоok")  # a Cyrillic o inside a Latin word
    assert is_garbage_text(GARBAGE)
    assert layer_quality(["\ufffd\ufffd", "\ue000x"] * 5).garbage


def test_real_text_is_not_garbage() -> None:
    prose = (
        "Dense passage retrieval (DPR) uses a dual-encoder framework; see Section 3.2, "
        "Table 1 and Fig. 4. The U.S. Copyright Office's 1998 summary, pp. 12-18, e-mail: "
        "info@example.org. Für alle x ∈ U gilt f(x) = 0, also ist f: X → Y stetig. "
        "NICS checks in 2015: 1,234,567 (+3.5%) across 50 states."
    )
    assert not is_garbage_text(prose)
    assert not implausible("COVID-19")
    assert not implausible("H2O") and not implausible("x∈U")


# --- policy and budget ----------------------------------------------------------------------


def test_verdict_thresholds() -> None:
    words = words_on_lines("a b c d e f g h i j")
    settings = VerifySettings(verify_min_coverage=0.85, verify_max_unsupported=0.25)
    nine = check_page(words, [block("a b c d e f g h i", (0, 0, 999, 999))], 600, 800)
    assert verdict(nine, settings) == "ok"
    eight = check_page(words, [block("a b c d e f g h", (0, 0, 999, 999))], 600, 800)
    assert verdict(eight, settings) == "flagged"
    page = Page(1, "1", 600, 800, 600, 800, (), "", status="truncated", loop_cut=True)
    assert risk_reasons(page, "lossy", eight, settings) == ("lossy", "loop", "coverage")


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="verify must be"):
        VerifySettings(verify="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="repair_budget"):
        VerifySettings(repair_budget=-0.5)
    with pytest.raises(ConfigError, match="verify_min_coverage"):
        VerifySettings(verify_min_coverage=1.5)
    with pytest.raises(ConfigError, match="repair_max_requests"):
        VerifySettings(repair_max_requests=-1)


def test_the_run_budget_is_exact() -> None:
    budget = RepairBudget(0.2)
    granted = 0
    for _ in range(50):
        budget.page_started()
        if budget.take(2):
            granted += 2
        assert budget.spent <= 0.2 * budget.pages
    assert granted == budget.spent == 10  # floor(0.2 * 50)
    assert not budget.take(1)


def test_a_made_up_block_is_flagged_even_when_the_page_share_is_small() -> None:
    korean = "한국어 텍스트와 표가 있는 문서입니다 " * 20  # ~240 character tokens
    words = words_on_lines(korean)
    blocks = [
        block(korean, (0, 0, 999, 500), 0),
        block("The committee postponed its ruling on the harbour expansion", (0, 600, 999, 700), 1),
    ]
    found = check_page(words, blocks, 600, 800)
    assert found.unsupported < 0.25 and found.invented == 1
    assert verdict(found, VerifySettings()) == "flagged"


def _page_image(two_columns: bool) -> PageImage:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    for n in range(40):
        if two_columns:
            page.insert_text((40, 60 + 18 * n), "left column words here", fontsize=10)
            page.insert_text((320, 60 + 18 * n), "right column words here", fontsize=10)
        else:
            line = "a single column of text that runs across the whole width, margin to margin"
            page.insert_text((40, 60 + 18 * n), line, fontsize=10)
    pix = page.get_pixmap(dpi=144)
    info = SourceInfo("x.pdf", "x.pdf", "x.pdf", "0" * 64, "pdf", 1)
    return PageImage(info, 1, "1", 595, 842, pix.tobytes("png"), "image/png", pix.width, pix.height)


def test_tiles_follow_the_density_and_a_gutter() -> None:
    single, double = _page_image(False), _page_image(True)
    assert [(t.row, t.col) for t in choose_tiles(single, 500, 5.0, 4, "deepseek-ocr")] == [
        (0, 0),
        (1, 0),
    ]
    dense = choose_tiles(single, 40_000, 5.0, 4, "deepseek-ocr")
    assert {t.col for t in dense} == {0} and 2 <= len(dense) <= 4  # no gutter: bands only
    grid = choose_tiles(double, 40_000, 5.0, 4, "deepseek-ocr")
    assert {(t.row, t.col) for t in grid} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert len(choose_tiles(double, 40_000, 5.0, 2, "deepseek-ocr")) == 2  # the page's limit
    for t in grid:  # inside the image, overlapping neighbours
        assert 0 <= t.x0 < t.x1 <= double.image_width and 0 <= t.y0 < t.y1 <= double.image_height
    assert grid[0].y1 > grid[2].y0 and grid[0].x1 > grid[1].x0
