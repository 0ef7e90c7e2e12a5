"""Saturation under real-world variance: stragglers, loops and retries (issue 18).

    python benchmarks/variance.py              # ~3 minutes; rewrites its section of the docs
    python benchmarks/variance.py --timeline   # also requests at the server, second by second

A fake DeepSeek-OCR server with 40 slots runs in this process (a thread); the CLI converts a
400-page PDF against it with ``--concurrency 64`` in its own process. Four server behaviours:

1. every page 2 s, clean answers;
2. every page 2 s, ~1 answer in 15 a loop (``finish_reason="length"``) that the client retries;
3. service 0.3 s + 1.2 ms per output token, lengths drawn from the real DeepSeek-OCR outputs
   (:data:`ocr_loaders.testing.workload.RAW_OUTPUT_TOKENS`, +/-25 %), one page in 30 a dense
   one of 4000-6000 tokens, the same loops (a loop runs to ``max_tokens``: ~8 s);
4. every page 2 s, but the first request (page 1) takes 25 s: it holds back every page after it
   in the output order.

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

from run import make_long_pdf  # noqa: E402

from ocr_loaders.testing import FakeOCRServer  # noqa: E402
from ocr_loaders.testing.workload import (  # noqa: E402
    RAW_OUTPUT_TOKENS,
    Saturation,
    Workload,
    saturation,
    workload_responder,
)

DOC_OUT = ROOT / "docs" / "benchmarks.md"
SECTION = "## Saturation under variance"
SLOTS, PAGES, CONCURRENCY = 40, 400, 64


@dataclass(frozen=True)
class Scenario:
    name: str
    service: float
    per_token: float
    workload: Workload
    cli: tuple[str, ...] = ()
    """More CLI arguments for this row."""


SCENARIOS = (
    Scenario("every page 2 s, clean answers", 2.0, 0.0, Workload(loop_every=0)),
    Scenario("every page 2 s, ~1 in 15 answers a loop, retried", 2.0, 0.0, Workload()),
    Scenario(
        "0.3 s + 1.2 ms per output token (real output lengths, 1 in 30 dense), same loops",
        0.3,
        0.0012,
        Workload(),
    ),
    Scenario(
        "every page 2 s, clean, but page 1 a 25 s straggler",
        2.0,
        0.0,
        Workload(loop_every=0, head_delay=23.0),
    ),
    Scenario(
        "the third row with `--stream` (loops stopped while generated)",
        0.3,
        0.0012,
        Workload(),
        ("--stream",),
    ),
    Scenario(
        "the second row with `--stream` (each answer streamed over its 2 s)",
        2.0,
        0.0,
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
    return f"""{SECTION}

Reproduce with `{command}` (about 5 minutes). A 400-page PDF through the CLI with
`--concurrency {CONCURRENCY}`, against a fake server of {SLOTS} slots in the benchmark's
process. Service time is `0.3 s + 1.2 ms x output tokens` in the variable case, with output
lengths drawn from the six clean real DeepSeek-OCR answers in `../shared/fixtures/raw_outputs`
({lengths} tokens, each +/-25 %: 0.6 to 4.9 s, mean ~2.1 s), one page in
30 a dense one of 4000-6000 tokens (5 to 7.5 s), and about one answer in 15 a repetition loop
that runs to `max_tokens` (~9 s) and is retried by the client with a tighter guard
(`ocr_loaders.testing.workload`). "Best" is the server's total busy slot-time divided by its
slots (or the longest request, if longer); "span" runs from the first request's arrival to the
last answer; both come from the server's own records, so the share does not depend on this
machine's speed; it does move by a few points when the client is starved of CPU (this
machine's 2 cores are shared: the straggler row gave 92 % to 100 % over three runs).

| server behaviour | requests | best | span | share of best | mean requests at the server |
|---|---|---|---|---|---|
{rows}

Where the idle slot-time is, from the server's records second by second (`--timeline`): while
pages remain to be sent, the client keeps all {CONCURRENCY} requests at the server and every
slot is busy, in every case; the reorder window never stopped new pages being sent (the
straggler row aside, before the change below). The loss is the end of the run. With lock-step
2 s waves, 418 requests fill ten waves and part of an eleventh, and a loop answered in that
last wave needs a twelfth (2 s of ~24). With varying service, the last pages sent (queued
~1.4 s behind the {CONCURRENCY - SLOTS} requests ahead of them) include loops that hold a slot
for ~9 s until `max_tokens`, and their retries start only after that: the last ~10 s of the run
have fewer than {SLOTS} requests to serve. A client cannot know which page will loop before its
answer ends, so no send order or reorder window removes that tail. What does shorten it is
`--stream` (rows 5 and 6): the client reads each answer as it is generated, checks its end for a
repetition every 2000 characters, and closes the stream of one that loops; the server aborts it
(its record shows the client gone) and the tighter-guard retry starts after ~2 s instead of ~9 s.
The loops' slot time shrinks (the "best" column with it) and the run ends sooner (span); what
remains, per `--timeline`, is the last few seconds, when the dense 5-7.5 s pages and retries
sent last finish with most slots idle. Their cost cannot be told from their images here (page
lengths are drawn at random), so sending the slowest first is not possible in this set-up.
In row 6 (row 2 with `--stream`) the fake streams each 2 s answer over its 2 s, as a real
server streams what it generates, so a loop is closed after its first few thousand characters
and its retry joins the current wave instead of the next: that row meets the 90 % (95 %).
Without `--stream` (row 2) a loop costs a whole 2 s slot before its retry can start, and a loop
in the last wave needs one more wave: row 2 moves around the 90 % from run to run (86.5 %,
90.3 % and 91.4 % in three runs). Row 5 stays under the 90 %, for the dense pages sent last.
Earlier
measurements: `--concurrency 48` gave 85.3 % and 75.0 % on rows 2 and 3, `--concurrency 128`
86.6 % and 75.1 %. Row 1 meets its 95 % on an idle machine (a busy one costs it a few
points). The requests column counts answers: the loops stopped early in rows 5 and 6 are not
in it (their slot time is in "best").

The reorder window used to hold at most `4 x concurrency + concurrency / 4` pages (272 at 64).
A page pending longer than 272 pages take to go through (~14 s at 19 pages/s: a page that
loops twice, 1 in 225 at these rates, is pending ~23 s) stopped new pages being sent: with page
1 a 25 s straggler (the last row) the share was 75.0 % and the mean at the server 36 requests
(measured before the change, same set-up). The window is now bounded by the estimated memory
of the finished results it holds (64 MB) and a count of 4096 pages (a page not yet rendered is
a suspended task of a few KB); the next document opens only below the old bound, and images
stay bounded by the render-ahead (`concurrency + concurrency / 4` pages rendered or at the
engine). `tests/test_saturation.py` holds page 1 (or each of its retries) at the server until
35 (12) later pages have been sent, with `concurrency` 2.
"""


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    from doc_sections import replace_section  # benchmarks/ is on sys.path when run

    replace_section(DOC_OUT, SECTION, text)


Row = tuple[Scenario, Saturation, float]


def measure_all(
    pdf: Path,
    work: Path,
    *,
    scale: float = 1.0,
    extra: Sequence[str] = (),
    timeline: bool = False,
    only: Sequence[int] = (),
) -> list[Row]:
    """Run the scenarios (``only``: their 1-based numbers) on ``pdf``; print each row."""
    results: list[Row] = []
    for i, scenario in enumerate(SCENARIOS, 1):
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
    p.add_argument("--only", type=int, action="append", help="run scenario N (1-6) only")
    p.add_argument("--timeline", action="store_true", help="print requests at the server")
    p.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md alone")
    p.add_argument("cli_args", nargs="*", help="extra CLI arguments (after --)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocr-variance-"))
    pdf = work / "long400.pdf"
    make_long_pdf(pdf, PAGES)
    results = measure_all(
        pdf,
        work,
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
