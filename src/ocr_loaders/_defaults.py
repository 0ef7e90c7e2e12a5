"""The names every layer agrees on: DeepSeek's model, its two prompts, the server dialects.

A leaf module (it imports nothing of the package), so the options, the engines and the fake
server share one definition without importing each other.
"""

from __future__ import annotations

from typing import Literal

DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
"""The served model name DeepSeek publishes (``DEEPSEEK_OCR_MODEL`` overrides it)."""

GROUNDING_PROMPT = "<|grounding|>Convert the document to markdown."
"""Markdown with layout tags (``<|ref|>`` / ``<|det|>``): what the parser reads."""

FREE_PROMPT = "Free OCR."
"""Plain text without layout: the last try for a page the grounding prompt cannot finish."""

ServerDialect = Literal["vllm", "sglang"]
"""The request shape a server wants: how the n-gram guard is sent (``vllm_xargs`` or SGLang's
custom logit processor); both take the plain prompt and insert ``<image>`` themselves."""

Dialect = Literal["vllm", "sglang", "auto"]
"""A :data:`ServerDialect`, or ``auto``: ask the server what it is."""

__all__ = ["DEFAULT_MODEL", "FREE_PROMPT", "GROUNDING_PROMPT", "Dialect", "ServerDialect"]
