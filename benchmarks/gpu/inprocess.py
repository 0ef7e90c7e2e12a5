"""On the GPU machine: the in-process engine (``engine="vllm"``) on real rendered pages.

Runs this repository's :class:`VLLMEngine` through the LangChain loader (the same streaming
pipeline as every engine) with ``vllm.LLM`` built from the model folder with random weights
(``load_format="dummy"``), and writes ``inprocess.json`` to ``--out``: pages by status, tries
per page, the batch sizes the engine sent, the prompt token ids vLLM returned against the
vision-token formula, and pages/s. A short ``max_model_len`` keeps the random outputs (which
loop until ``max_tokens``) short. Usage, after ``remote.sh`` installed the bundle:

    PYTHONPATH=/tmp/site:src python3 benchmarks/gpu/inprocess.py --model-dir /tmp/bundle/model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import traceback
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
    from ocr_loaders._engines.vllm_inprocess import InProcessSettings, VLLMEngine

    report: dict[str, Any] = {"model_dir": args.model_dir, "pages": args.pages}
    settings = InProcessSettings(
        model=args.model_dir,
        max_batch=args.batch,
        max_model_len=args.max_model_len,
        llm_options=(
            ("load_format", "dummy"),
            ("enforce_eager", True),
            ("gpu_memory_utilization", 0.45),
            ("served_model_name", "deepseek-ai/DeepSeek-OCR"),
        ),
    )
    engine = VLLMEngine(settings)
    pdf = make_pdf(Path(args.work) / "inprocess.pdf", args.pages)
    options = LoaderOptions.from_kwargs(engine=engine, concurrency=args.batch)

    async def pages() -> list[PageResult]:
        pipeline = Pipeline(options)
        return [e async for e in pipeline.events(pdf) if isinstance(e, PageResult)]

    # first load: builds vllm.LLM (timed with it), then every page, in order
    t0 = time.perf_counter()
    first = asyncio.run(pages())
    report["first_load_s"] = round(time.perf_counter() - t0, 1)
    report["status"] = [r.page.status for r in first]
    report["pages_in_order"] = [r.page.number for r in first] == list(range(1, args.pages + 1))
    report["batch_sizes_first_load"] = list(engine.batch_sizes)

    # second load on the warm engine (another event loop): throughput, usage per page
    engine.batch_sizes.clear()
    t1 = time.perf_counter()
    results = asyncio.run(pages())
    wall = time.perf_counter() - t1
    report["second_load"] = {
        "seconds": round(wall, 2),
        "pages_per_s": round(len(results) / wall, 2),
        "batch_sizes": list(engine.batch_sizes),
        "pages": [
            {
                "page": r.page.number,
                "status": r.page.status,
                "attempts": r.stats.attempts,
                "image": [r.stats.image_width, r.stats.image_height],
                "vision_tokens_formula": r.stats.vision_tokens,
                "vision_tokens_from_prompt_ids": r.stats.server_vision_tokens,
                "output_tokens": r.stats.output_tokens,
            }
            for r in results
        ],
    }
    report["vision_tokens_match"] = all(
        r.stats.server_vision_tokens is not None
        and abs(r.stats.server_vision_tokens - r.stats.vision_tokens) <= 16
        for r in results
    )
    asyncio.run(engine.aclose())
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", default="/tmp/bundle/model")
    p.add_argument("--pages", type=int, default=24)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=1100)
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
