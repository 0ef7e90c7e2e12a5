"""Scale-out on Ray Data against the single-process CLI (issue 15).

    python benchmarks/ray_scaleout.py            # ~3 minutes here; rewrites its section of
                                                 # docs/benchmarks.md and prints the numbers

The fake DeepSeek-OCR server runs in its own process simulating a GPU of 40 slots x 2 s per
page (20 pages/s), as in ``benchmarks/run.py``. The same 200-page PDF is converted by:

1. the CLI, one process, ``--concurrency 64``, no cache;
2. ``ocr_loaders.ray.read_documents`` on a local Ray cluster (``num_cpus=2``), 1 OCR actor with
   64 requests in flight, then 2 actors with 32 each (the same total in flight).

Rates are the server's own ("sustained": pages over the span from the first request's arrival
to the last answer) and end to end (the job's wall time, Ray's executor start included; Ray
itself is started and warmed once before). Then the client's CPU per page in each Ray stage,
measured in this process by calling the stage functions directly (no Ray) against a server
with no service time: the figures docs/scale-out.md sizes a cluster from.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import SERVICE, SLOTS, fake_server, make_long_pdf, run_cli, sustained  # noqa: E402

DOC_OUT = ROOT / "docs" / "benchmarks.md"
SECTION = "## Scale-out on Ray Data"
PAGES = 200
IN_FLIGHT = 64


def ray_job(pdf: Path, url: str, workers: int) -> dict[str, Any]:
    """One ``read_documents`` job to the end; its rates and run stats."""
    from ocr_loaders.ray import RunStats, read_documents

    sustained(url)  # clear the server's records
    stats = RunStats()
    start = time.perf_counter()
    rows = read_documents(
        str(pdf),
        base_url=url,
        workers=workers,
        concurrency=IN_FLIGHT // workers,
        pages_per_task=8,
        stats=stats,
    ).take_all()
    seconds = time.perf_counter() - start
    totals = stats.totals()
    rate, _aborted = sustained(url, pages=totals.pages)
    return {
        "workers": workers,
        "in_flight_per_worker": IN_FLIGHT // workers,
        "pages": totals.pages,
        "chunks": len(rows),
        "seconds": round(seconds, 2),
        "end_to_end": round(totals.pages / seconds, 2),
        "sustained": round(rate, 2),
        "run_stats_pages_per_s": totals.pages_per_second,
    }


def stage_costs(pdf: Path, url: str, pages: int = 60) -> dict[str, float]:
    """Client CPU ms per page of each Ray stage, the stage functions called in this process."""
    import pyarrow as pa

    from ocr_loaders.ray._documents import assemble
    from ocr_loaders.ray._job import job_spec
    from ocr_loaders.ray._stages import Recognizer, plan, render

    spec = job_spec({"base_url": url, "pages": f"1-{pages}", "concurrency": 16})
    doc = pa.Table.from_pylist([{"doc": "0", "name": str(pdf), "path": str(pdf), "uri": ""}])
    cost: dict[str, float] = {}

    def timed(key: str, fn: Any, *args: Any) -> Any:
        t = time.process_time()
        value = fn(*args)
        cost[key] = (time.process_time() - t) / pages * 1000
        return value

    planned = timed("plan (open the document, per page)", plan, doc, spec)
    rendered = timed("render (rasterize + PNG)", render, planned, spec)
    ocr = Recognizer(spec)
    ocr(rendered.slice(0, 4))  # connections and dialect probe out of the measurement
    answered = timed("OCR actor (request, answer; client side)", ocr, rendered)
    timed("assemble (parse, chunk, stats, records)", assemble, answered, spec, None)
    cost["total"] = sum(cost.values())
    return {k: round(v, 2) for k, v in cost.items()}


def section(r: dict[str, Any]) -> str:
    cli = r["cli"]
    lines = [
        "| run | in flight | sustained pages/s | end to end pages/s | wall s |",
        "|---|---|---|---|---|",
        f"| CLI, one process | {IN_FLIGHT} | {cli['sustained']} | {cli['end_to_end']} | "
        f"{cli['seconds']} |",
    ]
    for job in r["ray"]:
        lines.append(
            f"| Ray Data, {job['workers']} OCR actor(s) | {job['workers']} x "
            f"{job['in_flight_per_worker']} | {job['sustained']} | {job['end_to_end']} | "
            f"{job['seconds']} |"
        )
    costs = "\n".join(f"| {k} | {v} |" for k, v in r["stage_costs_ms"].items())
    return f"""{SECTION}

`python benchmarks/ray_scaleout.py` ({r["machine"]}). {PAGES} pages
({r["origin"]}) against the fake server in its own process simulating {SLOTS} slots x
{SERVICE:.0f} s ({SLOTS / SERVICE:.0f} pages/s); Ray on this machine (`ray.init(num_cpus=2)`,
started and warmed once: {r["ray_start_s"]} s to start, {r["warmup_s"]} s for a first 4-page
job that starts the worker processes). The machine's 1-minute load average was
{r["load"][0]} at the start and {r["load"][1]} at the end (other jobs share its 2 cores):
compare rows of one run, not runs. Sizing from these numbers: docs/scale-out.md.

{chr(10).join(lines)}

Client CPU per page in each Ray stage (the stage functions called in one process, server with
no service time, {r["stage_pages"]} pages):

| stage | CPU ms per page |
|---|---|
{costs}
"""


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    from doc_sections import replace_section  # benchmarks/ is on sys.path when run

    replace_section(DOC_OUT, SECTION, text)


def main() -> None:
    import ray
    import ray.data
    from run import machine

    work = Path(tempfile.mkdtemp(prefix="ray-scaleout-"))
    pdf = work / "long.pdf"
    origin = make_long_pdf(pdf, PAGES)
    small = work / "small.pdf"
    make_long_pdf(small, 4)
    result: dict[str, Any] = {"machine": machine(), "origin": origin, "ray": []}
    load_before = os.getloadavg()[0]
    with fake_server(SLOTS, SERVICE) as (url, _proc):
        run = run_cli(pdf, url, work / "cli", "--concurrency", str(IN_FLIGHT), "--no-cache")
        result["cli"] = {
            "pages": run.pages,
            "seconds": round(run.seconds, 2),
            "end_to_end": round(run.pages_per_s, 2),
            "sustained": round(run.sustained, 2),
        }
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        result["ray_start_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        ray_job(small, url, 1)
        result["warmup_s"] = round(time.perf_counter() - t, 1)
        for workers in (1, 2):
            result["ray"].append(ray_job(pdf, url, workers))
        ray.shutdown()
    with fake_server(256, 0.0) as (url, _proc):
        result["stage_pages"] = 60
        result["stage_costs_ms"] = stage_costs(pdf, url, 60)
    result["load"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print(json.dumps(result, indent=2))
    write_section(section(result))


if __name__ == "__main__":
    main()
