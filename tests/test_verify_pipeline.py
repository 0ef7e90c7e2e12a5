"""The cross-check and repair end to end: a real PDF, an engine answering from its text layer
(faithfully, with faults, or losing text on whole pages while tiles answer fully)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Sequence
from pathlib import Path

import pymupdf
import pytest

from ocr_loaders._config import LoaderOptions
from ocr_loaders._engines.local_textlayer import extract_page
from ocr_loaders._grounding import format_grounded
from ocr_loaders._model import Block, PageImage, RawPage, model_box
from ocr_loaders._records import Record
from ocr_loaders._rendering.raster import RenderSettings, open_document
from ocr_loaders._run import Run
from ocr_loaders._sources import resolve_inputs
from ocr_loaders._verify.textlayer import read_text_layer
from ocr_loaders._verify.tiling import Tile, plan_tiles, stitch
from ocr_loaders._verify.words import LayerWord, tokens
from ocr_loaders.testing import loop_text

from .conftest import make_pdf

VOCAB = [
    "river",
    "stone",
    "maple",
    "copper",
    "lantern",
    "orbit",
    "velvet",
    "harbor",
    "signal",
    "meadow",
    "quartz",
    "ember",
    "falcon",
    "glacier",
    "summit",
    "anchor",
    "prairie",
    "cobalt",
    "willow",
    "thunder",
    "canyon",
    "marble",
    "beacon",
    "saffron",
    "tundra",
    "violet",
    "cedar",
    "comet",
    "pebble",
    "fjord",
]


def write_pdf(path: Path, pages: int = 1, lines: int = 36) -> list[list[str]]:
    """A PDF of ``pages`` A4 pages with ``lines`` lines of seeded words; the lines back."""
    rng = random.Random(7)
    doc = pymupdf.open()
    text: list[list[str]] = []
    for _ in range(pages):
        page = doc.new_page(width=595, height=842)
        mine = []
        for n in range(lines):
            line = " ".join(rng.choice(VOCAB) for _ in range(8)) + f" {n}"
            page.insert_text((60, 70 + 20 * n), line, fontsize=11)
            mine.append(line)
        text.append(mine)
    doc.save(path)
    doc.close()
    return text


def paragraphs(
    words: Sequence[LayerWord], width: float, height: float, per: int = 4
) -> list[Block]:
    """Blocks of ``per`` layer lines each, boxed in a ``width`` x ``height`` frame."""
    lines: dict[int, list[LayerWord]] = {}
    for w in words:
        lines.setdefault(w.line, []).append(w)
    groups = list(lines.values())
    out = []
    for k in range(0, len(groups), per):
        chunk = [w for g in groups[k : k + per] for w in g]
        box = (
            min(w.bbox[0] for w in chunk),
            min(w.bbox[1] for w in chunk),
            max(w.bbox[2] for w in chunk),
            max(w.bbox[3] for w in chunk),
        )
        text = "\n".join(" ".join(w.text for w in g) for g in groups[k : k + per])
        out.append(Block("text", (model_box(box, width, height),), text, len(out)))
    return out


class LayerEngine:
    """Answers from the page's own text layer (``PageImage.text_layer``).

    ``fault``: ``none``; ``drop`` (every other block left out); ``invent`` (made-up
    sentences added); ``lossy`` (whole pages drop every other block, tiles answer fully: the
    tiles of a page arrive in order, right after it).
    """

    name = "openai"
    model = "deepseek-ai/DeepSeek-OCR"
    prompt = "<image>\n<|grounding|>Convert the document to markdown."
    page_hook = None
    cache_identity = "layer-engine"

    def __init__(self, fault: str = "none") -> None:
        self.fault = fault
        self.requests = 0
        self._pending: list[tuple[PageImage, Tile]] = []
        self._words: tuple[LayerWord, ...] = ()

    async def recognize(self, page: PageImage) -> RawPage:
        self.requests += 1
        if page.text_layer is None:  # a tile: the next of the last whole page's tiles
            full, tile = self._pending.pop(0)
            sx, sy = full.width / full.image_width, full.height / full.image_height
            x0, y0, x1, y1 = tile.x0 * sx, tile.y0 * sy, tile.x1 * sx, tile.y1 * sy
            inside = [
                LayerWord(
                    w.text, (w.bbox[0] - x0, w.bbox[1] - y0, w.bbox[2] - x0, w.bbox[3] - y0), w.line
                )
                for w in self._words
                if x0 <= w.center[0] <= x1 and y0 <= w.center[1] <= y1
            ]
            pw, ph = tile.padded  # the frame the tile is sent in (white space added)
            return self._raw(format_grounded(paragraphs(inside, pw * sx, ph * sy)))
        blocks = paragraphs(page.text_layer.words, page.width, page.height)
        if self.fault in ("drop", "lossy"):
            blocks = blocks[::2]
        if self.fault == "invent":
            blocks.append(Block("text", ((60, 900, 900, 950),), "Invented words " * 80, 99))
        if self.fault == "lossy":
            self._words = page.text_layer.words
            self._pending = [(page, t) for t in plan_tiles(page)]
        return self._raw(format_grounded(blocks))

    def _raw(self, text: str) -> RawPage:
        return RawPage(text, "stop", self.name, self.model, self.prompt, latency_s=0.01)

    def drain(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def load(path: Path, engine: LayerEngine, **options: object) -> tuple[list[Record], Run]:
    options.setdefault("verify", "flag")
    opts = LoaderOptions.from_kwargs(engine=engine, render_workers=0, concurrency=1, **options)
    run = Run(opts)

    async def collect() -> list[Record]:
        return [r async for r in run.records([path])]

    return asyncio.run(collect()), run


def test_faithful_pages_are_ok_with_full_coverage(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf, pages=2)
    opts = LoaderOptions.from_kwargs(engine=LayerEngine(), concurrency=2, verify="flag")
    run = Run(opts)

    async def collect() -> list[Record]:
        return [r async for r in run.records([pdf])]

    records = asyncio.run(collect())
    assert records and all(r.metadata["verification"] == "ok" for r in records)
    assert all(r.metadata["text_coverage"] == 1.0 for r in records)
    pages = run.pipeline.stats.pages
    assert [(s.verification, s.text_coverage, s.unsupported) for s in pages] == [
        ("ok", 1.0, 0.0)
    ] * 2
    totals = run.totals().verification
    assert (totals.pages_verified, totals.pages_ok, totals.pages_flagged) == (2, 2, 0)


def test_dropped_and_invented_text_is_flagged_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf)
    with caplog.at_level(logging.WARNING):
        records, run = load(pdf, LayerEngine("drop"))
    assert {r.metadata["verification"] for r in records} == {"flagged"}
    coverage = records[0].metadata["text_coverage"]
    assert isinstance(coverage, float) and 0.4 < coverage < 0.6
    assert "1 of 1 page(s) flagged by the text-layer check" in caplog.text
    assert "1 (56% covered, 0% unsupported)" in caplog.text
    records, run = load(pdf, LayerEngine("invent"))
    stats = run.pipeline.stats.pages[0]
    assert stats.verification == "flagged" and stats.text_coverage == 1.0
    assert stats.unsupported > 0.25
    assert run.totals().verification.pages_flagged == 1


def test_images_are_unverified_and_off_reads_no_layer(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf)
    png = tmp_path / "page.png"
    with pymupdf.open(pdf) as doc:
        doc[0].get_pixmap(dpi=50).save(png)

    seen: list[PageImage] = []

    class Echo(LayerEngine):
        async def recognize(self, page: PageImage) -> RawPage:
            seen.append(page)
            return self._raw(format_grounded([Block("text", ((0, 0, 999, 999),), "words", 0)]))

    records, run = load(png, Echo())
    assert records[0].metadata["verification"] == "unverified"
    assert records[0].metadata["text_coverage"] == -1.0
    assert run.pipeline.stats.pages[0].text_coverage == -1.0
    records, run = load(pdf, Echo(), verify="off")
    assert records[0].metadata["verification"] == "unverified"
    assert seen[-1].text_layer is None


def test_repair_by_tiles_recovers_the_page(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    lines = write_pdf(pdf)[0]
    engine = LayerEngine("lossy")
    records, run = load(pdf, engine, verify="repair")  # 20 % of one page: no request to spend
    assert run.pipeline.stats.pages[0].verification == "flagged" and engine.requests == 1
    engine = LayerEngine("lossy")
    records, run = load(pdf, engine, verify="repair", repair_budget=2.0)
    stats = run.pipeline.stats.pages[0]
    assert stats.verification == "repaired"
    assert stats.repair_method == "tiles"
    assert stats.extra_requests == 2 and engine.requests == 3
    assert stats.text_coverage == 1.0 and stats.coverage_gain > 0.4
    assert run.totals().requests == 3
    text = "\n".join(r.text for r in records)
    # every line once, in reading order
    found = [text.find(line) for line in lines]
    assert all(i >= 0 for i in found) and found == sorted(found)
    assert all(text.count(line) == 1 for line in lines)
    for r in records:
        for region in json.loads(str(r.metadata["regions"])):
            x0, y0, x1, y1 = region["bbox"]
            assert 0 <= x0 <= x1 <= 595 and 0 <= y0 <= y1 <= 842


def test_gap_filling_adds_the_missing_words_marked_as_text_layer(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    lines = write_pdf(pdf)[0]
    records, run = load(
        pdf, LayerEngine("drop"), verify="repair", repair_max_requests=0, gap_fill=True
    )
    stats = run.pipeline.stats.pages[0]
    assert (stats.verification, stats.repair_method, stats.extra_requests) == (
        "repaired",
        "gap_fill",
        0,
    )
    assert stats.text_coverage == 1.0
    text = "\n".join(r.text for r in records)
    assert all(line in text for line in lines)
    sources = {
        reg.get("source", "model")
        for r in records
        for reg in json.loads(str(r.metadata["regions"]))
    }
    assert sources == {"model", "text_layer"}


def test_the_run_budget_bounds_repairs_exactly(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf, pages=6, lines=12)
    engine = LayerEngine("lossy")
    _records, run = load(pdf, engine, verify="repair", repair_budget=0.34)
    pages = run.pipeline.stats.pages
    extra = sum(s.extra_requests for s in pages)
    # floor(0.34 * pages started) at each repair: 2 tiles at page 6 at the earliest... and
    # never more than 34 % of the pages
    assert extra <= 0.34 * len(pages)
    assert extra == 2 and engine.requests == len(pages) + extra
    assert sum(s.verification == "repaired" for s in pages) == 1
    assert sum(s.verification == "flagged" for s in pages) == 5


def test_tiles_are_stitched_without_duplicates() -> None:
    upper = [
        Block("text", ((50, 100, 900, 300),), "first paragraph here", 0),
        Block("text", ((50, 450, 900, 540),), "alpha beta gamma delta epsilon", 1),
    ]
    lower = [
        Block("text", ((50, 460, 900, 540),), "alpha beta gamma delta epsilon", 0),  # overlap
        Block("text", ((50, 500, 900, 700),), "delta epsilon zeta eta theta", 1),  # continued
        Block("text", ((50, 720, 900, 800),), "last words", 2),
    ]
    out = stitch([upper, lower])
    assert [b.text for b in out] == [
        "first paragraph here",
        "alpha beta gamma delta epsilon",
        "delta epsilon zeta eta theta",
        "last words",
    ]
    assert [b.index for b in out] == [0, 1, 2, 3]
    cont = stitch(
        [
            [Block("text", ((0, 400, 999, 520),), "one two three four five", 0)],
            [Block("text", ((0, 480, 999, 700),), "three four five six seven eight nine ten", 0)],
        ]
    )
    assert tokens(" ".join(b.text for b in cont)) == tokens(
        "one two three four five six seven eight nine ten"
    )
    # a page-tall table each tile answers whole: kept once, no markup left over from the cut
    rows = "".join(f'<tr><td colspan="2">State {i}</td><td>{i * 7}</td></tr>' for i in range(12))
    table = f"<table>{rows}</table>"
    both = stitch(
        [
            [Block("table", ((30, 40, 970, 930),), table, 0)],
            [Block("table", ((30, 460, 970, 930),), table, 0)],
        ]
    )
    assert [b.text for b in both] == [table]


@pytest.mark.parametrize(("rotate", "crop"), [(0, False), (90, False), (270, True)])
def test_the_renderer_reads_the_layer_from_the_page_it_drew(
    tmp_path: Path, rotate: int, crop: bool
) -> None:
    """``text_layer=True`` gives the page's words (as read on their own, in the displayed
    frame) with the very pixels a render without it sends; without it there is no layer."""
    pdf = make_pdf(tmp_path / "layer.pdf", 2, rotate=rotate)
    if crop:  # a crop box away from the origin: the displayed frame starts at its corner
        with pymupdf.open(pdf) as cropped:
            cropped[1].set_cropbox(pymupdf.Rect(40, 60, 560, 700))
            cropped.save(tmp_path / "cropped.pdf")
        pdf = tmp_path / "cropped.pdf"
    doc = open_document(resolve_inputs([pdf])[0], None)
    try:
        plain = doc.render(2, RenderSettings(), None)
        layered = doc.render(2, RenderSettings(text_layer=True), None)
    finally:
        doc.close()
    assert plain.text_layer is None and layered.text_layer is not None
    assert layered.image == plain.image
    with pymupdf.open(pdf) as opened:
        alone = read_text_layer(opened[1])
    got = layered.text_layer
    assert got.state == alone.state == "usable"
    assert [(w.text, w.line) for w in got.words] == [(w.text, w.line) for w in alone.words]
    for a, b in zip(got.words, alone.words, strict=True):  # float32 rounding apart
        assert a.bbox == pytest.approx(b.bbox, abs=0.01)
    assert "paragraph" in [w.text for w in alone.words]
    x0, y0, x1, y1 = alone.words[0].bbox  # "Heading" in the frame a viewer shows
    assert (x1 - x0 > y1 - y0) == (rotate == 0)


def test_bands_of_a_two_column_page_read_down_each_column() -> None:
    """Two horizontal bands of a two-column page under a full-width title: the stitched page
    reads the title, the left column top to bottom, then the right, then the full-width end,
    although each band's model answer reads left, right; a stamp in the margin comes last."""

    def block(text: str, box: tuple[int, int, int, int]) -> Block:
        return Block("text", (box,), text, 0)

    upper = [
        block("title", (60, 40, 940, 80)),
        block("left one", (60, 100, 480, 300)),
        block("left two", (60, 320, 480, 500)),
        block("right one", (520, 100, 940, 300)),
        block("right two", (520, 320, 940, 500)),
        block("arXiv stamp", (10, 300, 40, 650)),
    ]
    lower = [
        block("left three", (60, 540, 480, 700)),
        block("left four", (60, 720, 480, 860)),
        block("right three", (520, 540, 940, 700)),
        block("right four", (520, 720, 940, 860)),
        block("closing words", (60, 900, 940, 960)),
    ]
    out = stitch([upper, lower])
    assert [b.text for b in out] == [
        "title",
        *(f"left {n}" for n in ("one", "two", "three", "four")),
        *(f"right {n}" for n in ("one", "two", "three", "four")),
        "closing words",
        "arXiv stamp",  # a margin note is read after the page
    ]
    assert [b.index for b in out] == list(range(11))
    single = stitch([upper[:3], lower[:2]])  # one column: the tile order stays
    assert [b.text for b in single] == ["title", "left one", "left two", "left three", "left four"]


GARBAGE_LINE = "«POAH «3E*»CM tanntxim ¦lHe rnOdEl 1t5 v3ry g*od aT r3a|dlng s¢ans wlth tHe c0rrect"


def test_a_garbage_layer_is_not_trusted_and_force_ocr_ocrs(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 200, 280), 0)
    pix.set_rect(pix.irect, (240, 240, 240))
    page.insert_image(page.rect, pixmap=pix)
    for n in range(20):  # an invisible OCR layer of poor quality over the scan
        page.insert_text((60, 70 + 30 * n), GARBAGE_LINE, fontsize=10, render_mode=3)
    good = doc.new_page(width=595, height=842)
    good.insert_text((60, 70), "A clean digital page with a proper text layer " * 2, fontsize=10)
    layer = read_text_layer(doc[0])
    assert layer.state == "garbage" and not layer.usable
    assert read_text_layer(doc[1]).usable
    assert extract_page(doc[0]).source == "ocr"
    assert "garbage" in extract_page(doc[0]).reason
    assert extract_page(doc[1]).source == "text"
    assert extract_page(doc[1], force_ocr=True).source == "ocr"
    doc.close()


def test_cached_pages_are_still_verified(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf)
    first_engine, again_engine = LayerEngine("drop"), LayerEngine("drop")
    _r, first = load(pdf, first_engine, cache=True, cache_dir=tmp_path / "cache")
    records, again = load(pdf, again_engine, cache=True, cache_dir=tmp_path / "cache")
    assert again_engine.requests == 0 and again.pipeline.stats.pages[0].cached
    before, after = first.pipeline.stats.pages[0], again.pipeline.stats.pages[0]
    assert (after.verification, after.text_coverage) == (before.verification, before.text_coverage)
    assert after.verification == "flagged"
    assert records[0].metadata["verification"] == "flagged"


def test_a_page_without_text_layer_is_repaired_when_it_looped(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf)
    png = tmp_path / "page.png"
    with pymupdf.open(pdf) as doc:
        doc[0].get_pixmap(dpi=72).save(png)

    class Looping(LayerEngine):
        async def recognize(self, page: PageImage) -> RawPage:
            self.requests += 1
            if self.requests == 1:  # the whole page runs into a loop
                return RawPage(loop_text(), "length", self.name, self.model, self.prompt)
            return self._raw(
                format_grounded([Block("text", ((0, 0, 999, 999),), f"tile {self.requests}", 0)])
            )

    engine = Looping()
    records, run = load(png, engine, verify="repair", repair_budget=2.0)
    stats = run.pipeline.stats.pages[0]
    assert (stats.verification, stats.repair_method, stats.text_coverage) == (
        "repaired",
        "tiles",
        -1.0,
    )
    assert stats.status == "ok" and engine.requests == 3
    assert "tile 2" in records[0].text and "tile 3" in records[0].text


def test_the_cli_table_shows_flagged_and_repaired_when_pages_were_checked(tmp_path: Path) -> None:
    from rich.console import Console

    from ocr_loaders._cli.report import stats_table

    pdf = tmp_path / "doc.pdf"
    write_pdf(pdf)

    def table(run: Run) -> str:
        console = Console(width=200, record=True)
        console.print(stats_table([("doc.pdf", str(pdf), run.totals())], [], run.totals()))
        return console.export_text()

    _r, flagged = load(pdf, LayerEngine("drop"))
    text = table(flagged)
    header = next(line for line in text.splitlines() if "flagged" in line)
    row = next(line for line in text.splitlines() if "doc.pdf" in line)
    cells = [c.strip() for c in re.split("[│┃]", row)]
    names = [c.strip() for c in re.split("[│┃]", header)]
    assert cells[names.index("flagged")] == "1" and cells[names.index("repaired")] == "0"
    _r, off = load(pdf, LayerEngine("drop"), verify="off")
    assert "flagged" not in table(off)  # nothing checked: the table as before
