"""On the GPU machine: the in-process engine (``engine="vllm"``) on real rendered pages.

Runs this repository's :class:`VLLMEngine` through the library's streaming pipeline (the one
every engine and front end uses) with ``vllm.LLM`` built from the model folder with random
weights (``load_format="dummy"``), and writes ``inprocess.json`` to ``--out``: pages by status,
tries per page, the batch sizes the engine sent, the prompt token ids vLLM returned against the
vision-token formula; then pages/s at each concurrency level on the warm model, with the
output policy's second chances off (as in the server measurement). ``max_model_len`` is sized
so each page may generate ``--max-tokens`` tokens: random outputs run until the budget is
spent. Usage, after ``remote.sh`` installed the bundle:

    PYTHONPATH=/tmp/site:src python3 benchmarks/gpu/inprocess.py --model-dir /tmp/bundle/model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymupdf


def make_pdf(path: Path, pages: int) -> Path:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=612, height=792)  # US Letter: 1224x1584 px at 144 dpi
        page.insert_text((72, 90), f"Section {i + 1}", fontsize=20)
        for line in range(30):
            text = f"Line {line + 1} of page {i + 1}: the quick brown fox jumps over the dog."
            page.insert_text((72, 130 + 20 * line), text, fontsize=11)
    doc.save(path)
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    # the pipeline itself, no framework: the GPU machine has neither LangChain nor LlamaIndex
    from ocr_loaders import LoaderOptions, PageResult, Pipeline
    from ocr_loaders._defaults import GROUNDING_PROMPT
    from ocr_loaders._engines.vllm_inprocess import InProcessSettings, VLLMEngine
    from ocr_loaders._tokens import vision_tokens

    levels = [int(x) for x in args.levels.split(",")]
    # US Letter at 144 dpi is 1224x1584 px: 903 vision tokens. The context is sized so that each
    # page may generate --max-tokens tokens (random weights loop until the budget runs out)
    max_model_len = vision_tokens(1224, 1584) + len(GROUNDING_PROMPT.encode()) + 8
    max_model_len += args.max_tokens
    report: dict[str, Any] = {
        "model_dir": args.model_dir,
        "max_model_len": max_model_len,
        "max_tokens_per_page": args.max_tokens,
        "eager": args.eager,
    }
    llm_options: list[tuple[str, object]] = [
        ("load_format", "dummy"),
        ("gpu_memory_utilization", 0.45),
        ("served_model_name", "deepseek-ai/DeepSeek-OCR"),
    ]
    if args.eager:
        llm_options.append(("enforce_eager", True))
    settings = InProcessSettings(
        model=args.model_dir,
        max_batch=max(levels),
        max_model_len=max_model_len,
        llm_options=tuple(llm_options),
    )
    engine = VLLMEngine(settings)

    def load(
        pages: int, concurrency: int, engine: VLLMEngine = engine
    ) -> tuple[list[PageResult], float, float]:
        pdf = make_pdf(Path(args.work) / f"inprocess-{pages}.pdf", pages)
        options = LoaderOptions.from_kwargs(engine=engine, concurrency=concurrency)

        async def results() -> list[PageResult]:
            pipeline = Pipeline(options)
            return [e async for e in pipeline.events(pdf) if isinstance(e, PageResult)]

        t0, c0 = time.perf_counter(), time.process_time()
        out = asyncio.run(results())
        return out, time.perf_counter() - t0, time.process_time() - c0

    # first load: builds vllm.LLM (timed with it), then every page, in order
    first, wall, _ = load(args.pages, 16)
    report["first_load_s"] = round(wall, 1)
    report["status"] = [r.page.status for r in first]
    report["pages_in_order"] = [r.page.number for r in first] == list(range(1, args.pages + 1))
    report["batch_sizes_first_load"] = list(engine.batch_sizes)
    report["pages"] = [
        {
            "page": r.page.number,
            "status": r.page.status,
            "error": r.page.error[:200],
            "attempts": r.stats.attempts,
            "image": [r.stats.image_width, r.stats.image_height],
            "vision_tokens_formula": r.stats.vision_tokens,
            "vision_tokens_from_prompt_ids": r.stats.server_vision_tokens,
            "output_tokens": r.stats.output_tokens,
        }
        for r in first
    ]
    report["vision_tokens_match"] = all(
        r.stats.server_vision_tokens is not None
        and abs(r.stats.server_vision_tokens - r.stats.vision_tokens) <= 16
        for r in first
    )

    # throughput on the warm model, one event loop per load, at each concurrency level; an
    # engine without second chances shares the vllm.LLM the first one built
    timed = VLLMEngine(replace(settings, output_retries=0), llm=engine._llm)
    report["throughput"] = []
    for level in levels:
        pages = max(args.min_pages, 2 * level)
        results, wall, cpu = load(pages, level, timed)
        row = {
            "concurrency": level,
            "pages": pages,
            "seconds": round(wall, 2),
            "pages_per_s": round(pages / wall, 2),
            "client_cpu_s_per_page": round(cpu / pages, 4),
            "output_tokens_per_page": round(
                sum(r.stats.output_tokens or 0 for r in results) / pages, 1
            ),
            "status": {
                s: [r.page.status for r in results].count(s) for s in ("ok", "truncated", "failed")
            },
            "batches": len(timed.batch_sizes),
            "largest_batch": max(timed.batch_sizes, default=0),
        }
        timed.batch_sizes.clear()
        report["throughput"].append(row)
        print(json.dumps(row), flush=True)
    asyncio.run(engine.aclose())
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", default="/tmp/bundle/model")
    p.add_argument("--pages", type=int, default=24, help="pages of the first load")
    p.add_argument("--levels", default="1,16,64,128", help="concurrency levels to time")
    p.add_argument("--min-pages", type=int, default=16, help="pages per level at least")
    p.add_argument("--max-tokens", type=int, default=64, help="output budget per page")
    p.add_argument("--eager", action="store_true", help="no CUDA graphs (slow decoding)")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    p.add_argument("--work", default="/tmp")
    args = p.parse_args()
    try:
        report = run(args)
    except Exception as exc:  # the report says what failed
        report = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    text = json.dumps(report, indent=2)
    Path(args.out, "inprocess.json").write_text(text)
    print(text[:4000])


if __name__ == "__main__":
    main()
