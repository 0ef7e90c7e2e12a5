"""OCR engines: an OpenAI-compatible endpoint (vLLM / SGLang), the embedded local engine."""

from .base import Engine, PageHook

__all__ = ["Engine", "PageHook"]
