"""Saturation under real-world variance: stragglers, loops and retries (issue 18).

    python benchmarks/variance.py              # ~3 minutes; rewrites its section of the docs
    python benchmarks/variance.py --timeline   # also requests at the server, second by second

A fake DeepSeek-OCR server with 40 slots runs in this process (a thread); the CLI converts a
400-page PDF against it with ``--concurrency 64`` in its own process. The PDF's pages hold text
in amounts drawn from the real DeepSeek-OCR outputs' lengths
(:data:`ocr_loaders.testing.workload.RAW_OUTPUT_TOKENS`, +/-25 %; one page in 30 a dense one of
4000-6000 words). Server behaviours:

1. every page 2 s, clean answers;
2. every page 2 s, ~1 answer in 15 a loop (``finish_reason="length"``) that the client retries;
3. service 0.3 s + 1.2 ms per output token, each answer as long as its page's text (its ink,
   +/-25 %), the same loops (a loop runs to ``max_tokens``: ~9 s);
4. every page 2 s, but the first request takes 25 s: it holds back every page after it
   in the output order;
5-7. rows 2 and 3 with ``--stream``, and row 3's service with lengths drawn at random,
   unrelated to the page (as the earlier version of this benchmark did), with ``--stream``.

The figure is the share of the best possible time: the slots' total busy time over the slot
count (or the longest request, if longer), against the span from the first request's arrival
to the last answer, both from the server's own records, so it does not depend on this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pymupdf  # noqa: E402

from ocr_loaders.testing import FakeOCRServer  # noqa: E402
from ocr_loaders.testing.images import image_ink  # noqa: E402
from ocr_loaders.testing.workload import (  # noqa: E402
    RAW_OUTPUT_TOKENS,
    Saturation,
    Workload,
    page_tokens,
    saturation,
    workload_responder,
)

DOC_OUT = ROOT / "docs" / "benchmarks.md"
SECTION = "## Saturation under variance"
SLOTS, PAGES, CONCURRENCY = 40, 400, 64
WORDS = ("the", "page", "model", "text", "and", "of", "table", "order", "image", "region")


def make_text_pdf(path: Path, pages: int) -> float:
    """``pages`` Letter pages of filler words, a quarter as many on each as a real answer's
    tokens (drawn as :func:`page_tokens` draws them; a quarter, in 7 pt type, so a dense page
    holds as many words as a dense real page and costs the client what one does); returns
    ``ink_tokens``, the tokens per unit of ink (:func:`image_ink`) on these pages, for
    :class:`Workload`."""
    spec = Workload(loop_every=0)
    doc = pymupdf.open()
    counts = []
    for i in range(pages):
        n = page_tokens(spec, 7919 * i + 1)
        counts.append(n)
        page = doc.new_page(width=612, height=792)
        text = " ".join(WORDS[(i + k * 7) % len(WORDS)] for k in range(max(1, n // 4)))
        page.insert_textbox(pymupdf.Rect(24, 24, 588, 768), text, fontsize=7)
    doc.save(path, garbage=3, deflate=True)
    ratios = []
    for i in range(0, pages, max(1, pages // 40)):
        png = doc[i].get_pixmap(dpi=144, colorspace=pymupdf.csGRAY).tobytes("png")
        ratios.append(counts[i] / max(image_ink(png), 1e-6))
    return sorted(ratios)[len(ratios) // 2]


@dataclass(frozen=True)
class Scenario:
    name: str
    service: float
    per_token: float
    workload: Workload
    cli: tuple[str, ...] = ()
    """More CLI arguments for this row."""


def scenarios(ink_tokens: float) -> tuple[Scenario, ...]:
    """The rows of the table; ``ink_tokens`` from :func:`make_text_pdf`."""
    by_text = Workload(ink_tokens=ink_tokens)
    return (
        Scenario("every page 2 s, clean answers", 2.0, 0.0, Workload(loop_every=0)),
        Scenario("every page 2 s, ~1 in 15 answers a loop, retried", 2.0, 0.0, Workload()),
        Scenario(
            "0.3 s + 1.2 ms per output token (answers as long as the page's text), same loops",
            0.3,
            0.0012,
            by_text,
        ),
        Scenario(
            "every page 2 s, clean, but the first request a 25 s straggler",
            2.0,
            0.0,
            Workload(loop_every=0, head_delay=23.0),
        ),
        Scenario(
            "the second row with `--stream` (each answer streamed over its 2 s)",
            2.0,
            0.0,
            Workload(),
            ("--stream",),
        ),
        Scenario(
            "the third row with `--stream` (loops stopped while generated)",
            0.3,
            0.0012,
            by_text,
            ("--stream",),
        ),
        Scenario(
            "the sixth row, but lengths drawn at random, unrelated to the page",
            0.3,
            0.0012,
            Workload(),
            ("--stream",),
        ),
    )


def run_once(
    scenario: Scenario, pdf: Path, out: Path, scale: float, extra: list[str], timeline: bool
) -> tuple[Saturation, float]:
    """One CLI run against a fresh server; its saturation and the CLI's wall time."""
    with FakeOCRServer(
        workload_responder(scenario.workload),
        slots=SLOTS,
        service_time=scenario.service * scale,
        time_per_token=scenario.per_token * scale,
        keep_alive_timeout=None,
    ) as server:
        env = dict(os.environ)
        env.pop("DEEPSEEK_OCR_BASE_URL", None)
        cmd = [sys.executable, "-m", "ocr_loaders", "convert", str(pdf), "-o", str(out)]
        cmd += ["--base-url", server.base_url, "-q", "--no-cache"]
        cmd += ["--concurrency", str(CONCURRENCY), *scenario.cli, *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
        records = server.requests
    if timeline:
        print_timeline(records)
    return saturation(records, SLOTS), wall


def print_timeline(records: list[object]) -> None:
    """Requests at the server and in service, averaged per second of the run."""
    from ocr_loaders.testing import RecordedRequest

    rows = [r for r in records if isinstance(r, RecordedRequest)]
    t0 = min(r.started for r in rows)
    end = max(r.finished for r in rows)
    second = 0
    while t0 + second < end:
        a, b = t0 + second, t0 + second + 1

        def overlap(s: float, e: float, a: float = a, b: float = b) -> float:
            return max(0.0, min(e, b) - max(s, a))

        present = sum(overlap(r.started, r.finished) for r in rows)
        busy = sum(overlap(r.service_started or 0, r.service_ended or 0) for r in rows)
        print(f"  t={second:3d}s  at server {present:5.1f}  in service {busy:5.1f}")
        second += 1


def section(results: Sequence[tuple[Scenario, Saturation, float]], command: str) -> str:
    rows = "\n".join(
        f"| {s.name} | {sat.requests} | {sat.best:.1f} s | {sat.span:.1f} s | "
        f"**{sat.share:.1%}** | {sat.mean_in_flight:.0f} |"
        for s, sat, _wall in results
    )
    lengths = ", ".join(str(n) for n in RAW_OUTPUT_TOKENS)
    share = {i: sat.share for i, (_s, sat, _w) in enumerate(results, 1)}
    return f"""{SECTION}

Reproduce with `{command}` (about 6 minutes). A 400-page PDF through the CLI with
`--concurrency {CONCURRENCY}` and otherwise default settings, against a fake server of {SLOTS}
slots in the benchmark's process. The PDF's pages hold filler words in amounts drawn from the
six clean real DeepSeek-OCR answers in `../shared/fixtures/raw_outputs` ({lengths} tokens,
each +/-25 %; a quarter as many words as tokens, in 7 pt type), one page in 30 a dense one of
4000-6000 tokens. Service time is
`0.3 s + 1.2 ms x output tokens` in the variable rows (0.6 to 4.9 s, mean ~2.1 s; a dense page
5 to 7.5 s), each answer as long as its page's text (the fake measures the ink of the image it
is sent, +/-25 %), as the real model's answers are; about one answer in 15 is a repetition loop
that runs to `max_tokens` (~9 s) and is retried by the client with a tighter guard
(`ocr_loaders.testing.workload`). "Best" is the server's total busy slot-time divided by its
slots (or the longest request, if longer); "span" runs from the first request's arrival to the
last answer; both come from the server's own records, so the share does not depend on this
machine's speed; it does move by a few points when the client is starved of CPU (this
machine's 2 cores are shared).

| server behaviour | requests | best | span | share of best | mean requests at the server |
|---|---|---|---|---|---|
{rows}

What held the runs back, found from the server's records second by second (`--timeline`) and
a simulation of the same queue: while pages remain to be sent, the client keeps all
{CONCURRENCY} requests at the server and every slot is busy; the reorder window never stops new
pages being sent (below). The loss is the end of the run, in two parts:

- **Loops found late.** Without streaming, a client learns that an answer looped only when it
  ends at `max_tokens`, ~9 s later, and its retry starts after that: rows 2 and 3. With
  `--stream` (rows 5 to 7) the client reads each answer as it is generated and probes its end
  for a repetition every 400 characters (a cheap test, tens of microseconds; the full loop test
  runs only when the probe says yes); it closes a looping stream within a few hundred
  characters of the loop's start, the server aborts the request, and the retry starts a second
  or so later. A client cannot know which page will loop before it does, so this is the one
  lever on loops; it is the documented flag for servers whose answers loop.
- **Dense pages sent last.** A 5-7.5 s page sent in the last seconds ends the run seconds after
  the other slots ran dry. The loader now guesses each PDF page's weight before rendering it
  (the compressed bytes of its content streams and images, which grow with its text;
  `_page_weights.py`, well under a millisecond a page) and sends the heaviest waiting pages
  first (`_limits.Slots`); results still come out in page order (the reorder window holds the
  finished light pages, a few KB each). Row 7 is row 6 with answer lengths drawn at random,
  unrelated to the page, so no guess can help: the difference between the two
  ({share.get(6, 0):.1%} against {share.get(7, 0):.1%}) is what sending heavy pages first buys.

Row 2 (constant 2 s service, loops, no streaming) moves around the 90 % from run to run: a loop
answered in the last 2 s wave needs one more wave. Row 1 meets its 95 % on an idle machine.
The requests column counts answers: the loops stopped early in rows 5 to 7 are not in it (their
slot time is in "best").

The reorder window used to hold at most `4 x concurrency + concurrency / 4` pages (272 at 64).
A page pending longer than 272 pages take to go through stopped new pages being sent: with the
first request a 25 s straggler (row 4) the share was 75.0 % and the mean at the server 36
requests (measured before the change, same set-up). The window is now bounded by the
estimated memory of the finished results it holds (64 MB) and a count of 4096 pages (a page not
yet rendered is a suspended task of a few KB); the next document opens only below the old
bound, and images stay bounded by the render-ahead (`concurrency + concurrency / 4` pages
rendered or at the engine). `tests/test_saturation.py` holds page 1 (or each of its retries) at
the server until 35 (12) later pages have been sent, with `concurrency` 2, and checks that a
heavy page is sent before the light pages ahead of it while the output stays in page order.

Memory (issue 18 asks for peak RSS at 400 pages <= 1.15x that at 20), measured as
`benchmarks/run.py` does (the CLI at `--concurrency 64`, a cache being written, the 40 x 2 s
server), three runs each on 2026-12-02: the client's process tree peaks at 394-396 MB for 20
pages and 438-443 MB for 400, **1.11-1.12x** (main process 242 -> 270 MB, render worker 152 ->
168-172 MB). The version before (stop 24's) peaked at 490 MB for 400 pages on the same machine
the same hour. What changed, found with `tracemalloc` and by rendering alone:
- a request in flight held its page three times (the PNG, its base64 data URL in the request,
  and the OpenAI client's JSON body of the request, ~0.8 MB for these pages); 20 pages never
  fill 64 requests, 400 do. Now the request holds the page's PNG by reference and its body is
  written from it a piece at a time as it is sent, with its exact `Content-Length`
  (`ocr_loaders._engines.body`; through the OpenAI client's `post`, its auth, timeouts and
  errors kept; with openai 1.100-2.x, which cannot stream a body, the body is built whole).
  Client CPU went down too (21.5-23.0 s for the 400 pages against 23.7-24.1 s);
- MuPDF's own cache of decoded fonts and images (process-wide, up to 256 MB) grew in the
  render worker with the document; it is now emptied every 64 pages and after any page whose
  images hold over 1 Mpx (a scan's page image): 60 scanned pages rendered in one process went
  from 440 MB to 163 MB, lecture notes from 176 to 162 MB at 400 pages.
What is left of the difference is bounded by `concurrency`, not by the document's length (64
PNGs in flight instead of 20) and the render worker meeting heavier pages (the German notes'
page 31, rendered with its text layer, first appears after page 20).
"""


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    from doc_sections import replace_section  # benchmarks/ is on sys.path when run

    replace_section(DOC_OUT, SECTION, text)


Row = tuple[Scenario, Saturation, float]


def measure_all(
    pdf: Path,
    work: Path,
    ink_tokens: float,
    *,
    scale: float = 1.0,
    extra: Sequence[str] = (),
    timeline: bool = False,
    only: Sequence[int] = (),
) -> list[Row]:
    """Run the scenarios (``only``: their 1-based numbers) on ``pdf``; print each row."""
    results: list[Row] = []
    for i, scenario in enumerate(scenarios(ink_tokens), 1):
        if only and i not in only:
            continue
        sat, wall = run_once(scenario, pdf, work / f"variance{i}", scale, list(extra), timeline)
        results.append((scenario, sat, wall))
        print(
            f"{i}. {scenario.name}: {sat.requests} requests, best {sat.best:.1f} s, "
            f"span {sat.span:.1f} s, share {sat.share:.1%}, mean at server "
            f"{sat.mean_in_flight:.1f}, peak {sat.peak_in_flight} (CLI {wall:.1f} s)",
            flush=True,
        )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="scale every service time")
    p.add_argument("--only", type=int, action="append", help="run scenario N (1-7) only")
    p.add_argument("--timeline", action="store_true", help="print requests at the server")
    p.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    p.add_argument("cli_args", nargs="*", help="extra CLI arguments (after --)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocr-variance-"))
    pdf = work / "long400.pdf"
    ink_tokens = make_text_pdf(pdf, PAGES)
    results = measure_all(
        pdf,
        work,
        ink_tokens,
        scale=args.scale,
        extra=args.cli_args,
        timeline=args.timeline,
        only=args.only or (),
    )
    if not args.no_write and not args.only and args.scale == 1.0 and not args.cli_args:
        write_section(section(results, "python benchmarks/variance.py"))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
