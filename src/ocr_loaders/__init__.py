"""ocr_loaders: DeepSeek-OCR document loaders for LlamaIndex and LangChain.

Everything a user imports lives here; the modules behind it are private (``_name``) and may
change. ``import ocr_loaders`` needs neither framework: the adapters import theirs on first use
and name the extra to install when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ConfigError,
    CorruptInputError,
    EmptyDocumentError,
    EndpointError,
    EndpointUnavailableError,
    EngineError,
    InputError,
    InputNotFoundError,
    OCRLoadersError,
    PageFailedError,
    PageRenderError,
    PasswordError,
    UnreadableInputError,
    UnsupportedInputError,
)
from ._grounding import parse_grounded, to_markdown
from ._model import Block, Chunk, Page, PageImage, PageResult, PageStats, RawPage, Region
from ._tokens import vision_tokens

if TYPE_CHECKING:
    from ._chunking import Chunker, ChunkOptions, chunk_pages
    from ._config import LoaderOptions
    from ._engines.base import Engine, PageHook
    from ._estimate import Estimate, estimate
    from ._folder_index import SyncPlan, SyncReport
    from ._index_langchain import HashingEmbeddings, document_key, sync_folder_langchain
    from ._index_llamaindex import ChunkNodes, HashingEmbedding, sync_folder_llamaindex
    from ._inspect import write_inspector
    from ._pipeline import DocumentFailed, DocumentFinished, DocumentStarted, Pipeline
    from ._rendering.raster import RenderSettings
    from ._stats import Totals
    from .langchain import DeepSeekOCRLoader, DeepSeekOCRParser
    from .llamaindex import DeepSeekOCRReader

__version__ = "0.1.0"

_LAZY = {
    "DeepSeekOCRReader": "llamaindex",
    "DeepSeekOCRLoader": "langchain",
    "DeepSeekOCRParser": "langchain",
    "Chunker": "_chunking",
    "ChunkOptions": "_chunking",
    "chunk_pages": "_chunking",
    "LoaderOptions": "_config",
    "Engine": "_engines.base",
    "PageHook": "_engines.base",
    "Estimate": "_estimate",
    "estimate": "_estimate",
    "write_inspector": "_inspect",
    "DocumentFailed": "_pipeline",
    "DocumentFinished": "_pipeline",
    "DocumentStarted": "_pipeline",
    "Pipeline": "_pipeline",
    "RenderSettings": "_rendering.raster",
    "Totals": "_stats",
    "SyncPlan": "_folder_index",
    "SyncReport": "_folder_index",
    "ChunkNodes": "_index_llamaindex",
    "HashingEmbedding": "_index_llamaindex",
    "sync_folder_llamaindex": "_index_llamaindex",
    "HashingEmbeddings": "_index_langchain",
    "document_key": "_index_langchain",
    "sync_folder_langchain": "_index_langchain",
}
"""Imported on first use, so ``import ocr_loaders`` stays light (no PyMuPDF, no framework)."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ocr_loaders' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


__all__ = [
    "Block",
    "Chunk",
    "ChunkNodes",
    "ChunkOptions",
    "Chunker",
    "ConfigError",
    "CorruptInputError",
    "DeepSeekOCRLoader",
    "DeepSeekOCRParser",
    "DeepSeekOCRReader",
    "DocumentFailed",
    "DocumentFinished",
    "DocumentStarted",
    "EmptyDocumentError",
    "EndpointError",
    "EndpointUnavailableError",
    "Engine",
    "EngineError",
    "Estimate",
    "HashingEmbedding",
    "HashingEmbeddings",
    "InputError",
    "InputNotFoundError",
    "LoaderOptions",
    "OCRLoadersError",
    "Page",
    "PageFailedError",
    "PageHook",
    "PageImage",
    "PageRenderError",
    "PageResult",
    "PageStats",
    "PasswordError",
    "Pipeline",
    "RawPage",
    "Region",
    "RenderSettings",
    "SyncPlan",
    "SyncReport",
    "Totals",
    "UnreadableInputError",
    "UnsupportedInputError",
    "chunk_pages",
    "document_key",
    "estimate",
    "parse_grounded",
    "sync_folder_langchain",
    "sync_folder_llamaindex",
    "to_markdown",
    "vision_tokens",
    "write_inspector",
]
