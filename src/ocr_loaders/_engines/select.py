"""Which engine a load uses: the one given, else an endpoint when a base URL is set, else the
embedded local engine. Each is imported only when chosen."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .base import Engine

if TYPE_CHECKING:  # the options sit above the engines; only their type is needed here
    from .._config import LoaderOptions

log = logging.getLogger(__name__)


def make_engine(options: LoaderOptions) -> Engine:
    """The engine the options describe: an endpoint when a base URL is set, else local."""
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

    local: Engine = LocalEngine()
    log.info(
        "ocr_loaders: no endpoint configured (DEEPSEEK_OCR_BASE_URL); using the embedded "
        "local engine (PyMuPDF text layer + RapidOCR), not DeepSeek-OCR"
    )
    return local


__all__ = ["make_engine"]
