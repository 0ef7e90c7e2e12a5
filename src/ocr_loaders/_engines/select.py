"""Which engine a load uses: the one given, else an endpoint when a base URL is set, else the
embedded local engine. Each is imported only when chosen."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .base import Engine

if TYPE_CHECKING:  # the options sit above the engines; only their type is needed here
    from .._config import LoaderOptions

log = logging.getLogger(__name__)


def make_engine(options: LoaderOptions) -> Engine:
    """The engine the options describe: the one given; in-process vLLM for ``"vllm"``; an
    endpoint when a base URL is set; else the embedded local engine."""
    if options.engine == "vllm":
        from .vllm_inprocess import InProcessSettings

        s = options.endpoint
        llm_options = dict(options.vllm_options)
        max_len = llm_options.pop("max_model_len", s.max_model_len)
        if not isinstance(max_len, int):
            raise ConfigError(f"vllm_options max_model_len must be an int, got {max_len!r}")
        inprocess: Engine = _inprocess_engine(
            InProcessSettings(
                model=s.model,
                prompt=s.prompt,
                max_batch=options.concurrency,
                output_retries=s.output_retries,
                ngram_size=s.ngram_size,
                window_size=s.window_size,
                whitelist_token_ids=s.whitelist_token_ids,
                max_model_len=max_len,
                llm_options=tuple(llm_options.items()),
            )
        )
        log.info("ocr_loaders: running %s with vLLM in this process", s.model)
        return inprocess
    if options.engine is not None:
        return options.engine
    if options.uses_endpoint:
        from .openai_compat import OpenAICompatEngine

        engine: Engine = OpenAICompatEngine(options.endpoint)
        log.info(
            "ocr_loaders: using the DeepSeek-OCR endpoint at %s (model %s)",
            ", ".join(options.base_urls),
            options.model,
        )
        return engine
    from .local import LocalEngine

    local: Engine = LocalEngine(force_ocr=options.force_ocr)
    log.info(
        "ocr_loaders: no endpoint configured (DEEPSEEK_OCR_BASE_URL); using the embedded "
        "local engine (PyMuPDF text layer + RapidOCR), not DeepSeek-OCR"
    )
    return local


_INPROCESS: dict[object, Engine] = {}


def _inprocess_engine(settings: object) -> Engine:
    """One in-process engine per settings for the life of the process: loading the model
    takes minutes and most of the GPU's memory, so every load with the same options shares it."""
    from .vllm_inprocess import InProcessSettings, VLLMEngine

    assert isinstance(settings, InProcessSettings)
    try:
        engine = _INPROCESS.get(settings)
    except TypeError:  # an unhashable vllm_options value: no sharing
        return VLLMEngine(settings)
    if engine is None:
        engine = _INPROCESS[settings] = VLLMEngine(settings)
    return engine


__all__ = ["make_engine"]
