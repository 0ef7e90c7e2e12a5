"""Figure crops: what one costs, and that a load without crops costs what it did (issue 12).

    python benchmarks/figures.py                                # ~7 minutes on 2 cores
    python benchmarks/figures.py --baseline-src ../other/src    # the same runs on another checkout

Both rewrite this benchmark's section of docs/benchmarks.md. Every run is the CLI in its own
process (``run.run_cli``: CPU of the whole client tree, peak RSS sampled every 20 ms),
``--no-cache``, runs of the variants interleaved, the median of ``--repeat`` runs reported.

1. **Cost per figure.** ``--pages`` pages of the shared lecture notes against a fake server
   (its own process, 40 slots x 0.25 s: more than the client can use, so the client's CPU sets
   the pace) that answers every page with a title, a paragraph, one ``image`` block over 80 %
   x 40 % of the page and its caption. Variants: ``--images none``, ``files``, ``files
   --figure-dpi 288`` (twice the 144 dpi sent) and ``files --figure-format jpeg``. The cost of
   a figure is the CPU over ``none`` divided by the figures written; its size, the crops'
   bytes on disk over their number.
2. **No crops, no change.** The headline run of ``benchmarks/run.py`` (400 pages, 40 slots x
   2 s, the ``grid`` answers: no figures) with ``--images none``, and run 1's ``none``; with
   ``--baseline-src`` both also on that checkout (``PYTHONPATH``), interleaved with this one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import DOC_OUT, Run, fake_server, make_long_pdf, run_cli  # noqa: E402

SECTION = "## Figure crops"
FIGURE_BOX = (100, 250, 900, 650)
"""The ``image`` block of every answer, 0..999 units: 80 % x 40 % of the page."""
VARIANTS: dict[str, tuple[str, ...]] = {
    "none": ("--images", "none"),
    "files": ("--images", "files"),
    "files, figure_dpi 288": ("--images", "files", "--figure-dpi", "288"),
    "files, JPEG": ("--images", "files", "--figure-format", "jpeg"),
}


def figure_answer() -> str:
    """The static grounded answer: title, paragraph, figure, caption (``\\n`` escaped)."""
    box = list(FIGURE_BOX)
    parts = [
        "<|ref|>title<|/ref|><|det|>[[80, 40, 920, 90]]<|/det|>\n# Lecture notes",
        "<|ref|>text<|/ref|><|det|>[[80, 120, 920, 220]]<|/det|>\n"
        + "The figure below shows the construction step by step. " * 6,
        f"<|ref|>image<|/ref|><|det|>[{box}]<|/det|>\n",
        "<|ref|>image_caption<|/ref|><|det|>[[100, 660, 900, 690]]<|/det|>\n"
        "Figure 1. The construction.",
    ]
    return "\n\n".join(parts).replace("\n", "\\n")


@dataclass
class Measured:
    runs: list[Run]
    figures: int = 0
    crop_bytes: int = 0

    def median(self, key: Callable[[Run], float]) -> float:
        return statistics.median(key(r) for r in self.runs)

    def spread(self, key: Callable[[Run], float]) -> str:
        values = [key(r) for r in self.runs]
        return f"{min(values):.1f}-{max(values):.1f}"


def crop_costs(pdf: Path, pages: int = 30) -> dict[str, tuple[float, float]]:
    """CPU ms and KiB per figure, in this process, for the crop paths themselves, on the same
    pages and box: a PDF's box rendered from the open document at the 144 dpi sent (PNG,
    JPEG) and at 288 dpi (``figure_dpi``), and an image input's cut from the image sent."""
    import time

    from ocr_loaders._rendering.crops import CropSettings, clip_pdf, cut_image
    from ocr_loaders._rendering.raster import RenderSettings, open_document
    from ocr_loaders._sources import DocumentSource

    doc = open_document(DocumentSource(str(pdf), path=pdf))
    targets = ((0, FIGURE_BOX),)
    images = [doc.render(n, RenderSettings()).image for n in range(1, pages + 1)]
    variants: dict[str, tuple[CropSettings, Callable[[CropSettings, int], Any]]] = {
        "PDF: the box rendered at 144 dpi (as sent), PNG": (
            CropSettings(),
            lambda s, n: clip_pdf(doc, n, targets, s, 2.0),
        ),
        "PDF: the box rendered at 144 dpi, JPEG": (
            CropSettings(image_format="jpeg"),
            lambda s, n: clip_pdf(doc, n, targets, s, 2.0),
        ),
        "PDF: the box rendered at 288 dpi (`figure_dpi=288`), PNG": (
            CropSettings(dpi=288),
            lambda s, n: clip_pdf(doc, n, targets, s, 4.0),
        ),
        "image input: cut from the image sent (decoding it), PNG": (
            CropSettings(),
            lambda s, n: cut_image(images[n - 1], targets, s),
        ),
    }
    out = {}
    for name, (settings, crop) in variants.items():
        start, size = time.process_time(), 0
        for n in range(1, pages + 1):
            size += sum(len(c.data) for c in crop(settings, n))
        out[name] = ((time.process_time() - start) / pages * 1000, size / pages / 1024)
        print(f"{name}: {out[name][0]:.1f} ms, {out[name][1]:.0f} KiB per figure", flush=True)
    doc.close()
    return out


@contextmanager
def source_tree(src: Path | None) -> Any:
    """Run the CLI from ``src`` (a checkout's ``src`` folder) instead of this tree's."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src if src is not None else ROOT / "src")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def crops_on_disk(out: Path) -> tuple[int, int]:
    """(crop files, their bytes) under ``out/*/images``."""
    files = [p for p in out.glob("*/images/*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def interleaved(
    cases: dict[str, tuple[Path | None, Path, str, tuple[str, ...]]],
    work: Path,
    repeat: int,
) -> dict[str, Measured]:
    """Each case ``(src, pdf, url, CLI options)`` ``repeat`` times, round-robin."""
    out: dict[str, Measured] = {name: Measured([]) for name in cases}
    for r in range(repeat):
        for i, (name, (src, pdf, url, extra)) in enumerate(cases.items()):
            target = work / f"out-{i}-{r}"
            with source_tree(src):
                run = run_cli(pdf, url, target, "--no-cache", "--concurrency", "32", *extra)
            out[name].runs.append(run)
            out[name].figures, out[name].crop_bytes = crops_on_disk(target)
            print(
                f"{name}: {run.pages_per_s:.1f} pages/s end to end, {run.cpu_s:.2f} s CPU, "
                f"{run.peak_rss_mb:.0f} MB, {out[name].figures} crops",
                flush=True,
            )
            shutil.rmtree(target, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--long-pages", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ocr-figures-"))
    try:
        figures_pdf, long_pdf = work / "figures.pdf", work / "long400.pdf"
        make_long_pdf(figures_pdf, args.pages)
        make_long_pdf(long_pdf, args.long_pages)
        per_figure = crop_costs(figures_pdf, min(30, args.pages))
        with fake_server(40, 0.25, responder=f"static:{figure_answer()}") as (url, _p):
            cases = {name: (None, figures_pdf, url, extra) for name, extra in VARIANTS.items()}
            if args.baseline_src is not None:
                cases["none (baseline)"] = (args.baseline_src, figures_pdf, url, VARIANTS["none"])
                cases["files (baseline)"] = (args.baseline_src, figures_pdf, url, VARIANTS["files"])
            cost = interleaved(cases, work, args.repeat)
        with fake_server(40, 2.0) as (url, _p):
            grid = {"none": (None, long_pdf, url, VARIANTS["none"])}
            if args.baseline_src is not None:
                grid["none (baseline)"] = (args.baseline_src, long_pdf, url, VARIANTS["none"])
            headline = interleaved(grid, work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = f"python benchmarks/figures.py --pages {args.pages} --repeat {args.repeat}" + (
        " --baseline-src MAIN/src" if args.baseline_src is not None else ""
    )  # MAIN: a checkout of the main branch (the path is this machine's business)
    text = section(per_figure, cost, headline, args.pages, args.long_pages, args.repeat, command)
    write_section(text)
    print(f"wrote {SECTION!r} in {DOC_OUT}", flush=True)


def section(
    per_figure: dict[str, tuple[float, float]],
    cost: dict[str, Measured],
    headline: dict[str, Measured],
    pages: int,
    long_pages: int,
    repeat: int,
    command: str,
) -> str:
    """This benchmark's section of docs/benchmarks.md."""
    none = cost["none"]
    rows = []
    for name, m in cost.items():
        cpu_ms = m.median(lambda r: r.cpu_s) / pages * 1000
        extra = ""
        if m.figures and name != "none" and "baseline" not in name:
            over = (m.median(lambda r: r.cpu_s) - none.median(lambda r: r.cpu_s)) * 1000
            extra = f"{over / m.figures:.1f} ms, {m.crop_bytes / m.figures / 1024:.0f} KiB"
        elif m.figures and name == "files (baseline)":
            base = cost["none (baseline)"].median(lambda r: r.cpu_s)
            over = (m.median(lambda r: r.cpu_s) - base) * 1000
            extra = f"{over / m.figures:.1f} ms, {m.crop_bytes / m.figures / 1024:.0f} KiB"
        rows.append(
            f"| {name} | {m.median(lambda r: r.pages_per_s):.1f} | {cpu_ms:.1f} "
            f"({m.spread(lambda r: r.cpu_s / pages * 1000)}) | "
            f"{m.median(lambda r: r.peak_rss_mb):.0f} | {m.figures} | {extra} |"
        )
    crop_rows = [f"| {name} | {ms:.1f} | {kib:.0f} |" for name, (ms, kib) in per_figure.items()]
    head_rows = [
        f"| {name} | {m.median(lambda r: r.sustained):.2f} "
        f"({m.spread(lambda r: r.sustained)}) | {m.median(lambda r: r.peak_rss_mb):.0f} "
        f"({m.spread(lambda r: r.peak_rss_mb)}) | {m.median(lambda r: r.cpu_s):.1f} |"
        for name, m in headline.items()
    ]
    return f"""{SECTION}

Reproduce with `{command}` (about 10 minutes on this
machine; `--baseline-src` runs the same CLI from another checkout's `src`, here `MAIN` a
checkout of the main branch, interleaved with this one). Every run is the CLI in its own
process, `--no-cache --concurrency 32`, the median of {repeat} runs (spread in brackets).

**Cost per figure, the crop itself**, in one process (CPU time, the mean over
{min(30, pages)} pages of the lecture notes; the box is 80 % x 40 % of the page, about
980 x 630 px at the 144 dpi sent). A PDF's crops are rendered in the render worker, just the
box; an image input's are cut from the image sent, which is decoded again for it (here the
same 144 dpi page rendering stands in for a scan of that size).

| crop | CPU ms per figure | KiB per figure |
|---|---|---|
{chr(10).join(crop_rows)}

**Cost per figure, whole CLI.** {pages} pages of the lecture notes; the fake server (40 slots x
0.25 s, more than the client can use, so client CPU sets the pace) answers every page with the
same `image` block and its caption.
"Per figure" is the CPU over `--images none` divided by the crops written, and the crops'
bytes on disk over their number.

| variant | pages/s end to end | client CPU ms/page | peak RSS MB | crops | per figure: CPU, bytes |
|---|---|---|---|---|---|
{chr(10).join(rows)}

**No crops, no change.** The headline run of `benchmarks/run.py` ({long_pages} pages, 40 slots
x 2 s, `grid` answers with no figures) with `--images none`: sustained pages/s as the server saw
them, peak RSS of the client tree, client CPU seconds.

| tree | sustained pages/s | peak RSS MB | CPU s |
|---|---|---|---|
{chr(10).join(head_rows)}
"""


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    from doc_sections import replace_section  # benchmarks/ is on sys.path when run

    replace_section(DOC_OUT, SECTION, text)


if __name__ == "__main__":
    main()
