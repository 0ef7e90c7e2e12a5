"""The visual inspector on a long document, and its screenshot for the docs.

``python benchmarks/inspector.py --pages 400`` builds the outputs ``convert --html`` writes for
a ``--pages``-page PDF of dense text (40 lines a page; 12 blocks of about 200 characters, five
chunks of three blocks) without running OCR, then times ``write_inspector``, measures the
HTML's size and the page images' total size, and writes its section of docs/benchmarks.md
(``benchmarks/run.py`` keeps that section when it rewrites the page).

``python benchmarks/inspector.py --screenshot OUT/x.html --png docs/inspector.png`` opens a
report in the system Chromium (``/usr/bin/chromium``, through Playwright), selects chunk
``--chunk`` (or box ``--box``, ``PAGE:INDEX``), scrolls back to the top and saves a
screenshot of the window.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pymupdf

from ocr_loaders._inspect import write_inspector

WORDS = [
    "retrieval",
    "layout",
    "chunk",
    "region",
    "page",
    "table",
    "figure",
    "caption",
    "token",
    "vision",
]


def fake_outputs(root: Path, pages: int) -> Path:
    """A ``pages``-page PDF and the files ``convert --html`` would write for it."""
    pdf = root / "long.pdf"
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page(width=612, height=792)
        for row in range(40):
            line = " ".join(WORDS[(n + row + k) % len(WORDS)] for k in range(12))
            page.insert_text((60, 60 + 17 * row), line, fontsize=10)
    doc.save(pdf)
    out = root / "out"
    (out / "long").mkdir(parents=True)
    details, layouts, chunks = [], [], []
    for n in range(1, pages + 1):
        details.append({"page": n, "status": "ok", "compression_ratio": 1.2, "risk": "fine"})
        blocks = []
        for i in range(12):
            y = 50 + 58 * i
            text = " ".join(WORDS[(n * i + k) % len(WORDS)] for k in range(30))[:208]
            blocks.append(
                {"order": i, "label": "text", "text": text, "boxes": [[60, y, 552, y + 50]]}
            )
        layouts.append(
            json.dumps({"page": n, "label": str(n), "width": 612, "height": 792, "blocks": blocks})
        )
        for c in range(5):
            part = blocks[c * 2 : c * 2 + 3]
            regions = [{"page": n, "label": "text", "bbox": b["boxes"][0]} for b in part]
            meta = {
                "file_path": str(pdf),
                "chunk_index": len(chunks),
                "page_start": n,
                "page_end": n,
                "regions": json.dumps(regions),
            }
            text = "\n\n".join(b["text"] for b in part)
            chunks.append(json.dumps({"id": f"c{len(chunks)}", "text": text, "metadata": meta}))
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    stats = {"source": str(pdf), "doc_hash": digest, "pages_detail": details}
    (out / "long.stats.json").write_text(json.dumps(stats))
    (out / "long.jsonl").write_text("\n".join(chunks) + "\n")
    (out / "long" / "pages.jsonl").write_text("\n".join(layouts) + "\n")
    return out


DOC_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## The inspector"


def measure(pages: int) -> str:
    """The section of docs/benchmarks.md, measured."""
    root = Path(tempfile.mkdtemp())
    try:
        out = fake_outputs(root, pages)
        start, cpu = time.perf_counter(), time.process_time()
        (html,) = write_inspector(out)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        images = sum(p.stat().st_size for p in (out / "long" / "pages").iterdir())
        size = html.stat().st_size
    finally:
        shutil.rmtree(root)
    load = os.getloadavg()[0]
    return (
        f"{SECTION}\n\n"
        f"`python benchmarks/inspector.py --pages {pages}`: the report of a {pages}-page document "
        "of dense text (12 blocks and 5 chunks a page), written from the outputs of a run by "
        "`write_inspector` (what `convert --html` does after a document), page images "
        f"rendered from the PDF. Load average {load:.1f} on 2 "
        "cores shared with other jobs during the run: the CPU time is the steadier figure.\n\n"
        "| pages | HTML file | page images (JPEG, 100 dpi, beside it) | write time (CPU) |\n"
        "|---|---|---|---|\n"
        f"| {pages} | {size / 1e6:.2f} MB | {images / 1e6:.1f} MB "
        f"({images / pages / 1e3:.0f} KB a page) | {seconds:.1f} s ({cpu:.1f} s) |\n\n"
        "The HTML holds every block's text and box and every chunk; images load only as pages "
        "scroll near the screen (`tests/test_inspect_browser.py` checks that a 400-page report "
        "requests only the images of the first screens, then those it is scrolled to).\n"
    )


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    from doc_sections import replace_section  # benchmarks/ is on sys.path when run

    replace_section(DOC_OUT, SECTION, text)


def screenshot(html: Path, png: Path, chunk: int, box: str) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(html.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.click(f".chunk[data-chunk='{chunk}']")
        if box:
            number, index = box.split(":")
            page.click(f"#page-{number} .box[data-box='{index}']")
        page.evaluate("window.scrollTo(0, 0)")  # the summary, with the selection below it
        page.wait_for_timeout(800)  # lazy images in view load
        shot = page.screenshot()
        browser.close()
    # a palette PNG: a screenshot of text and boxes keeps its look at a third of the size
    image = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=128)
    image.save(png, optimize=True)
    print(f"{png}: {png.stat().st_size / 1e3:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--screenshot", type=Path, help="a report to photograph")
    parser.add_argument("--png", type=Path, default=Path("docs/inspector.png"))
    parser.add_argument("--chunk", type=int, default=0)
    parser.add_argument("--box", default="", help="PAGE:INDEX of a box to select")
    args = parser.parse_args()
    if args.screenshot is not None:
        screenshot(args.screenshot, args.png, args.chunk, args.box)
    else:
        text = measure(args.pages)
        print(text)
        write_section(text)


if __name__ == "__main__":
    main()
