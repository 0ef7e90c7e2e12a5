"""ocr_loaders: DeepSeek-OCR document loaders for LlamaIndex and LangChain.

``import ocr_loaders`` needs neither framework: the adapters import theirs on first use and
name the extra to install when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import OCRLoadersError
from .grounding import parse_grounded, to_markdown
from .model import Block, Chunk, Page, PageResult, PageStats, Region
from .tokens import vision_tokens

if TYPE_CHECKING:
    from .langchain import DeepSeekOCRLoader, DeepSeekOCRParser
    from .llamaindex import DeepSeekOCRReader

__version__ = "0.1.0"

_LAZY = {
    "DeepSeekOCRReader": "llamaindex",
    "DeepSeekOCRLoader": "langchain",
    "DeepSeekOCRParser": "langchain",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ocr_loaders' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


__all__ = [
    "Block",
    "Chunk",
    "DeepSeekOCRLoader",
    "DeepSeekOCRParser",
    "DeepSeekOCRReader",
    "OCRLoadersError",
    "Page",
    "PageResult",
    "PageStats",
    "Region",
    "parse_grounded",
    "to_markdown",
    "vision_tokens",
]
