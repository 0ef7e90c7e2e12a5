"""The inspector in a real headless browser: Debian's Chromium driven by Playwright.

Nothing downloads a browser: Playwright is pointed at the installed one (``chromium`` on PATH
or ``/usr/bin/chromium``; ``.ci/run`` installs Debian's package). Without it these tests skip
and say why. Reports open from ``file://``, as users open them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from ocr_loaders._grounding import format_grounded
from ocr_loaders._inspect import write_inspector
from ocr_loaders._model import Block, scale_box
from ocr_loaders.testing import FakeOCRServer, OCRReply, OCRRequest, static_responder

from .conftest import run_cli

# Three pages of different shapes, so the fake server knows which page it was sent.
SIZES = {1: (612, 792), 2: (792, 612), 3: (500, 700)}
BLOCKS = {
    1: [
        Block("title", ((80, 40, 920, 90),), "# Inspector Test Report", 0),
        Block("text", ((80, 120, 920, 400),), "Alpha paragraph about boxes and pages. " * 8, 1),
        Block(
            "text",
            ((80, 450, 480, 700), (520, 450, 920, 700)),
            "A two-box paragraph that flows over two columns, bravo. " * 6,
            2,
        ),
    ],
    2: [
        Block("sub_title", ((60, 50, 600, 100),), "## Landscape Section", 0),
        Block(
            "table",
            ((60, 150, 940, 700),),
            "<table><tr><td>charlie</td><td>42</td></tr><tr><td>delta</td><td>7</td></tr></table>",
            1,
        ),
        Block("table_caption", ((60, 720, 700, 780),), "Table 1: charlie and delta counts.", 2),
    ],
    3: [
        Block("text", ((100, 60, 900, 300),), "Echo text on the small page goes on. " * 6, 0),
        Block("image", ((150, 350, 850, 800),), "", 1),
        Block("image_caption", ((150, 820, 850, 870),), "Figure 1: a foxtrot diagram.", 2),
    ],
}


def chromium_path() -> str | None:
    """The system Chromium, if one is installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module; skipped, with the reason, when none is found."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("no system Chromium found (apt-get install -y chromium; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    """Open an HTML file from ``file://``; each page records dialogs and script errors."""
    opened: list[Any] = []

    def opener(path: Path, *, width: int = 1400, height: int = 1000) -> Any:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.dialogs, page.errors = [], []

        def on_dialog(dialog: Any) -> None:
            page.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=10_000)
        opened.append(page)
        return page

    yield opener
    for page in opened:
        page.close()


def three_page_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    for n, (w, h) in SIZES.items():
        page = doc.new_page(width=w, height=h)
        page.insert_text((50, 60), f"Page {n} of the inspector test", fontsize=14)
    doc.save(path)
    return path


def by_shape(request: OCRRequest) -> OCRReply:
    """The blocks of the page whose shape the image has."""
    aspect = request.width / request.height
    n = min(SIZES, key=lambda k: abs(SIZES[k][0] / SIZES[k][1] - aspect))
    return OCRReply(format_grounded(BLOCKS[n]))


def convert(pdf: Path, out: Path, server: FakeOCRServer, *extra: str) -> None:
    """``convert --html`` in a thread of its own: Playwright's sync API holds an event loop
    on this one while a browser is open, and the command line starts its own."""
    args = ["convert", str(pdf), "-o", str(out), "--base-url", server.base_url, "--no-cache"]
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(run_cli, *args, "--html", "-q", *extra).result()
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``convert --html`` of the three-page document against the fake server."""
    root = tmp_path_factory.mktemp("inspect")
    pdf = three_page_pdf(root / "three.pdf")
    with FakeOCRServer(by_shape) as server:
        convert(pdf, root / "out", server, "--chunk-size", "200")
    return root / "out"


def chunks_of(out: Path) -> list[dict[str, Any]]:
    """The chunks, then the figures, as the report lists them."""
    lines = (out / "three.jsonl").read_text(encoding="utf-8").splitlines()
    lines += (out / "three" / "figures.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def box_rects(page: Any, n: int) -> list[dict[str, float]]:
    return page.eval_on_selector_all(
        f"#page-{n} .box",
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {x: r.left, y: r.top, w: r.width, h: r.height}; })",
    )


def test_every_region_is_drawn_where_it_lies(report: Path, open_report: Any) -> None:
    page = open_report(report / "three.html")
    for n, (w, h) in SIZES.items():
        expected = [scale_box(box, w, h) for block in BLOCKS[n] for box in block.boxes]
        page.locator(f"#page-{n}").scroll_into_view_if_needed()
        page.wait_for_function(
            f"() => {{ const i = document.querySelector('#page-{n} img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        frame = page.eval_on_selector(
            f"#page-{n} img",
            "i => { const r = i.getBoundingClientRect();"
            " return {x: r.left, y: r.top, w: r.width, h: r.height, nw: i.naturalWidth,"
            " nh: i.naturalHeight}; }",
        )
        # the displayed image has the page's shape, so boxes scale with it
        assert abs(frame["h"] - frame["w"] * h / w) <= 2
        assert abs(frame["nh"] / frame["nw"] - h / w) < 0.01
        rects = box_rects(page, n)
        assert len(rects) == len(expected)
        for rect, (x0, y0, x1, y1) in zip(rects, expected, strict=True):
            sx, sy = frame["w"] / w, frame["h"] / h
            assert abs(rect["x"] - (frame["x"] + x0 * sx)) <= 2
            assert abs(rect["y"] - (frame["y"] + y0 * sy)) <= 2
            assert abs(rect["w"] - (x1 - x0) * sx) <= 2
            assert abs(rect["h"] - (y1 - y0) * sy) <= 2
    assert page.errors == []


def test_selecting_a_chunk_highlights_exactly_its_regions(report: Path, open_report: Any) -> None:
    chunks = chunks_of(report)
    spanning = [c for c in chunks if c["metadata"]["page_end"] > c["metadata"]["page_start"]]
    assert spanning, "the fixture must have a chunk that spans pages"
    page = open_report(report / "three.html")
    for k, chunk in enumerate(chunks):
        regions = json.loads(chunk["metadata"]["regions"])
        want = {(r["page"], tuple(r["bbox"])) for r in regions}
        page.click(f".chunk[data-chunk='{k}']")
        got = page.eval_on_selector_all(
            ".box.hl", "els => els.map(e => [Number(e.dataset.page), JSON.parse(e.dataset.bbox)])"
        )
        assert {(p, tuple(b)) for p, b in got} == want
        assert len(got) == len(want)
    # the last chunk clicked spans pages only if it is the spanning one; check that one too
    k = chunks.index(spanning[0])
    page.click(f".chunk[data-chunk='{k}']")
    pages_lit = page.eval_on_selector_all(".box.hl", "els => els.map(e => e.dataset.page)")
    assert len(set(pages_lit)) >= 2
    first = page.eval_on_selector(
        ".box.hl", "e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; }"
    )
    assert first[0] >= 0 and first[1] <= 1000  # scrolled into view


def test_selecting_a_box_shows_its_text_and_chunks(report: Path, open_report: Any) -> None:
    chunks = chunks_of(report)
    page = open_report(report / "three.html")
    block = BLOCKS[2][2]  # the table caption
    page.locator("#page-2").scroll_into_view_if_needed()
    page.click("#page-2 .box[data-box='2']")
    detail = page.inner_text("#detail")
    assert block.text in detail
    (x0, y0, x1, y1) = scale_box(block.boxes[0], *SIZES[2])
    holders = {
        k
        for k, c in enumerate(chunks)
        for r in json.loads(c["metadata"]["regions"])
        if r["page"] == 2 and r["label"] == "table_caption"
    }
    assert holders
    shown = page.eval_on_selector_all(
        "#detail-chunks button", "els => els.map(e => Number(e.dataset.chunk))"
    )
    assert set(shown) == holders
    marked = page.eval_on_selector_all(
        ".chunk.contains", "els => els.map(e => Number(e.dataset.chunk))"
    )
    assert set(marked) == holders
    assert page.get_attribute("#page-2 .box[data-box='2']", "title").endswith(block.text)
    assert x1 > x0 and y1 > y0


def test_search_filters_chunks_by_text(report: Path, open_report: Any) -> None:
    chunks = chunks_of(report)
    page = open_report(report / "three.html")
    page.fill("#search", "FOXTROT")
    visible = page.eval_on_selector_all(
        ".chunk", "els => els.filter(e => !e.hidden).map(e => Number(e.dataset.chunk))"
    )
    want = [k for k, c in enumerate(chunks) if "foxtrot" in c["text"].lower()]
    assert want and visible == want
    page.fill("#search", "")
    assert page.eval_on_selector_all(".chunk", "els => els.filter(e => !e.hidden).length") == len(
        chunks
    )


MALICIOUS = format_grounded(
    [
        Block("title", ((80, 40, 920, 90),), "# Harmless <b id='inj-b'>title</b>", 0),
        Block(
            "text",
            ((80, 120, 920, 300),),
            "<script>window.__pwned = 1; alert('script')</script> after the script",
            1,
        ),
        Block(
            "text",
            ((80, 320, 920, 500),),
            '<img id="inj-img" src=x onerror="window.__pwned = 2; alert(\'img\')"> and '
            "[click me](javascript:alert('md')) and "
            '<a id="inj-a" href="javascript:alert(\'a\')">link</a>',
            2,
        ),
        Block(
            "<img src=y onerror=alert('label')>",
            ((80, 520, 920, 700),),
            "</script><script>alert('breakout')</script><svg onload=alert('svg')>",
            3,
        ),
    ]
)


def test_malicious_ocr_output_executes_nothing(tmp_path: Path, open_report: Any) -> None:
    pdf = three_page_pdf(tmp_path / "evil.pdf")
    with FakeOCRServer(static_responder(MALICIOUS)) as server:
        convert(pdf, tmp_path / "out", server)
    html_path = tmp_path / "out" / "evil.html"
    page = open_report(html_path)
    # every chunk and box is clickable and shows its text: still nothing runs
    page.click(".chunk[data-chunk='0']")
    shown = {}
    for i, box in enumerate(page.query_selector_all("#page-1 .box")):
        box.click()
        shown[i] = page.inner_text("#detail .text")
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 2  # the data island and the inspector
    injected = page.evaluate(
        "() => ['#inj-b', '#inj-img', '#inj-a', 'svg', 'img[src=\"x\"]', 'img[src=\"y\"]',"
        " 'a[href^=\"javascript\"]'].filter(s => document.querySelector(s) !== null)"
    )
    assert injected == []
    handlers = page.evaluate(
        "() => Array.from(document.querySelectorAll('*')).flatMap(e =>"
        " Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => a.name))"
    )
    assert handlers == []
    # the model's text is shown as text, verbatim
    assert shown[1].startswith("<script>window.__pwned = 1;")
    assert '<a id="inj-a" href="javascript:alert(\'a\')">link</a>' in shown[2]
    assert page.errors == []
    policy = page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy


def big_outputs(root: Path, pages: int) -> Path:
    """What ``convert --html`` writes for a ``pages``-page PDF, made directly (no OCR run):
    small pages, three blocks each, one chunk per page."""
    pdf = root / "big.pdf"
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        doc.new_page(width=200, height=260).insert_text((20, 40), f"page {n}", fontsize=12)
    doc.save(pdf)
    out = root / "out"
    (out / "big").mkdir(parents=True)
    boxes = [[20.0, 20.0, 180.0, 50.0], [20.0, 60.0, 180.0, 150.0], [20.0, 160.0, 180.0, 240.0]]
    details, layouts, chunks = [], [], []
    for n in range(1, pages + 1):
        details.append({"page": n, "status": "ok", "compression_ratio": 1.5, "risk": "fine"})
        blocks = [
            {"order": i, "label": "text", "text": f"block {i} of page {n}", "boxes": [b]}
            for i, b in enumerate(boxes)
        ]
        layouts.append(
            json.dumps({"page": n, "label": str(n), "width": 200, "height": 260, "blocks": blocks})
        )
        regions = [{"page": n, "label": "text", "bbox": b} for b in boxes]
        meta = {"file_path": str(pdf), "chunk_index": n - 1, "page_start": n, "page_end": n}
        meta["regions"] = json.dumps(regions)
        chunks.append(json.dumps({"id": f"c{n}", "text": f"chunk of page {n}", "metadata": meta}))
    details[2] |= {"compression_ratio": 24.0, "risk": "lossy"}  # page 3
    details[6] |= {"status": "truncated", "error": "finish_reason length"}  # page 7
    details[8] |= {"status": "failed", "error": "server error"}  # page 9
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    stats = {"source": str(pdf), "doc_hash": digest, "pages_detail": details}
    (out / "big.stats.json").write_text(json.dumps(stats))
    (out / "big.jsonl").write_text("\n".join(chunks) + "\n")
    (out / "big" / "pages.jsonl").write_text("\n".join(layouts) + "\n")
    return out


def test_a_long_document_loads_page_images_lazily(tmp_path: Path, open_report: Any) -> None:
    out = big_outputs(tmp_path, 400)
    (html_path,) = write_inspector(out)
    assert len(list((out / "big" / "pages").iterdir())) == 400
    page = open_report(html_path, height=900)
    assert page.eval_on_selector_all(".box", "els => els.length") == 1200
    # the summary: counts by status, flagged pages worst first
    counts = page.eval_on_selector_all(
        "#status-counts .count", "els => els.map(e => e.textContent)"
    )
    assert {"ok: 398", "truncated: 1", "failed: 1", "risk lossy: 1"} <= set(counts)
    flagged = page.eval_on_selector_all("#flagged button", "els => els.map(e => e.textContent)")
    assert flagged == ["page 9: failed", "page 7: truncated", "page 3: lossy"]
    requested = "() => document.querySelectorAll('#pages img[src]').length"
    assert 1 <= page.evaluate(requested) <= 40  # the first screens only
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(
        "() => { const i = document.querySelector('#page-400 img');"
        " return i.getAttribute('src') && i.complete && i.naturalWidth > 0; }"
    )
    assert page.evaluate(requested) <= 80  # the pages in between were never requested
    page.click(".chunk[data-chunk='199']")
    lit = page.eval_on_selector_all(".box.hl", "els => els.map(e => e.dataset.page)")
    assert lit == ["200"] * 3
    assert page.errors == []
