"""OCR in-process on the cluster's GPUs: Ray Data's LLM processor with the vLLM engine.

With ``read_documents(..., engine="vllm")`` the OCR stage is not an actor pool of HTTP clients
but ``ray.data.llm``'s vLLM processor: each GPU actor runs DeepSeek-OCR itself with the
recipe's engine settings (no prefix caching, no multimodal processor cache, the n-gram
repetition guard as a per-request logits processor) and its sampling (``temperature=0``,
``skip_special_tokens=False``). Rendering, the page cache, parsing and chunking are the same
as over HTTP. Only one try per page: the endpoint engine's second chances (a tighter guard,
``Free OCR.``) are not applied here.

Untested here: CI has no GPU. Tests check the request rows and the answer mapping with plain
rows; the processor itself is built only where ``ray.data.llm`` and vLLM are installed.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from .._cache import read_entry
from .._errors import ConfigError
from .._model import RawPage
from .._tokens import vision_tokens
from ._rows import PAGE_COLUMNS, Row, encode_page
from ._stages import JobSpec

LOGITS_PROCESSOR = "vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor"


def engine_kwargs(spec: JobSpec, extra: dict[str, Any]) -> dict[str, Any]:
    """The vLLM engine settings of DeepSeek's recipe, then the caller's ``vllm_options``."""
    s = spec.options.endpoint
    kwargs: dict[str, Any] = {
        "enable_prefix_caching": False,
        "mm_processor_cache_gb": 0,
        "logits_processors": [LOGITS_PROCESSOR],
        "max_model_len": s.max_model_len,
        "trust_remote_code": True,
    }
    kwargs.update(extra)
    return kwargs


def request(row: Row, spec: JobSpec) -> Row:
    """The processor's input row of one rendered page: chat messages and sampling."""
    s = spec.options.endpoint
    geometry, _ = read_entry(row["cache_key"], row["entry"])
    url = f"data:{geometry.mime};base64," + base64.b64encode(row["png"]).decode("ascii")
    used = vision_tokens(geometry.image_width, geometry.image_height, s.model)
    budget = max(16, s.max_model_len - used - len(s.prompt.encode("utf-8")) - 8)
    return {
        **row,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": s.prompt},
                ],
            }
        ],
        "sampling_params": {
            "temperature": 0.0,
            "max_tokens": budget,
            "skip_special_tokens": False,
            "extra_args": {
                "ngram_size": s.ngram_size,
                "window_size": s.window_size,
                "whitelist_token_ids": list(s.whitelist_token_ids),
            },
        },
    }


def answer(row: Row, spec: JobSpec) -> Row:
    """The processor's output row back into a page row holding the answer."""
    s = spec.options.endpoint
    geometry, _ = read_entry(row["cache_key"], row["entry"])
    error = str(row.get("__inference_error__") or "")
    raw = RawPage(
        text=str(row.get("generated_text") or ""),
        finish_reason=row.get("finish_reason") or ("stop" if not error else None),
        engine="vllm",
        model=s.model,
        prompt=s.prompt,
        prompt_tokens=_int(row.get("num_input_tokens")),
        completion_tokens=_int(row.get("num_generated_tokens")),
        latency_s=float(row.get("time_taken_llm") or 0.0),
        error=error,
    )
    out = {k: row[k] for k in PAGE_COLUMNS}
    keep = spec.figures.mode != "none"
    entry = encode_page(row["cache_key"], geometry, raw)
    if spec.cache is not None and not error and raw.text.strip():
        spec.cache.put(row["cache_key"], entry)
    return {**out, "entry": entry, "png": row["png"] if keep else b"", "finished": time.time()}


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def llm_stage(
    pages: Any, spec: JobSpec, *, gpus: int, batch_size: int, extra: dict[str, Any]
) -> Any:
    """``pages`` (rendered page rows) with their answers from DeepSeek-OCR run by vLLM."""
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise ConfigError(
            "engine='vllm' needs ray.data.llm (Ray >= 2.44 with its 'llm' extra) and vLLM"
        ) from exc
    config = vLLMEngineProcessorConfig(
        model_source=spec.options.endpoint.model,
        engine_kwargs=engine_kwargs(spec, extra),
        concurrency=gpus,
        batch_size=batch_size,
        prepare_multimodal_stage=True,
        should_continue_on_error=True,
    )
    processor = build_processor(
        config,
        preprocess=lambda row: request(row, spec),
        postprocess=lambda row: answer(row, spec),
    )
    todo = pages.filter(lambda row: bool(row["png"]) and row["number"] > 0)
    done = pages.filter(lambda row: not row["png"] or row["number"] == 0)
    return done.union(processor(todo))
