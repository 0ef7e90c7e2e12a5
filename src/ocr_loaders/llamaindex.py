"""LlamaIndex reader: ``DeepSeekOCRReader().load_data(path)`` -> ``Document`` chunks.

A thin adapter over the pipeline. ``load_data`` / ``lazy_load_data`` run the async core on a
private loop (safe inside Jupyter); ``aload_data`` / ``alazy_load_data`` run it on the caller's
loop. It also works where LlamaIndex calls readers itself:
``SimpleDirectoryReader(dir, file_extractor={".pdf": reader, ".png": reader})``, which calls
``load_data(file, extra_info=..., fs=...)``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterable, Iterator
from contextlib import aclosing
from typing import Any

from . import _sync
from ._records import EXCLUDED_FROM_EMBEDDING, Record
from ._run import Adapter, acollect, collect
from ._sources import DocumentSource, Input, resolve_inputs

try:
    from llama_index.core.readers.base import BaseReader
    from llama_index.core.schema import (
        Document,
        ImageNode,
        NodeRelationship,
        ObjectType,
        RelatedNodeInfo,
    )
except ImportError as exc:  # pragma: no cover - exercised by test_optional_imports
    raise ImportError(
        "DeepSeekOCRReader needs LlamaIndex: pip install 'ocr-loaders[llamaindex]'"
    ) from exc


Loaded = Document | ImageNode
"""What a load returns: ``Document`` chunks, and an ``ImageNode`` per figure when asked."""


class DeepSeekOCRReader(BaseReader, Adapter):
    """Load PDFs and images through DeepSeek-OCR as LlamaIndex ``Document`` chunks.

    Args:
        base_url: OpenAI-compatible endpoint(s) serving DeepSeek-OCR (vLLM or SGLang); falls
            back to ``DEEPSEEK_OCR_BASE_URL``. With none, the embedded local engine runs.
        model: served model name (``DEEPSEEK_OCR_MODEL``, default ``deepseek-ai/DeepSeek-OCR``).
        api_key: bearer token (``DEEPSEEK_OCR_API_KEY``).
        **options: see docs/usage.md (``pages``, ``password``, ``concurrency``, ``dpi``,
            ``chunk_size``, ``chunk_overlap``, ``mode``, ``on_error``, ``show_progress``,
            ``cache``, ``images``, ``images_dir``, ``figure_dpi``, ``figure_format``,
            ``crop_blocks``, ...).

    With ``images="files"`` (crops written under ``images_dir``) or ``"inline"`` (base64 in
    the node), each figure also comes back as an ``ImageNode`` after the page's chunks, its
    ``PARENT`` the chunk that shows it (docs/metadata.md); the default ``"none"`` returns
    ``Document`` chunks only.

    After a load, :attr:`last_stats` holds the run's totals (see docs/stats.md), with the
    files and pages that failed in ``last_stats.failures``. With ``on_error="raise"`` the
    error's ``documents`` holds what ``load_data`` had produced (docs/reliability.md).
    """

    # -- async core ---------------------------------------------------------------------------

    async def _aiter(
        self, file: Any, extra_info: dict[str, Any] | None, fs: Any, kwargs: dict[str, Any]
    ) -> AsyncGenerator[Loaded, None]:
        inputs = _inputs(file, extra_info, fs, kwargs)
        show_progress = kwargs.pop("show_progress", None)
        if kwargs:
            raise TypeError(
                f"unexpected arguments {sorted(kwargs)}; pass options to the "
                "DeepSeekOCRReader constructor"
            )
        async with aclosing(self._stream(inputs, to_node, show_progress)) as docs:
            async for doc in docs:
                yield doc

    def alazy_load_data(  # type: ignore[override]
        self,
        file: Input | list[Input] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> LazyDocuments:
        """Chunks as pages finish, on the caller's loop (real async, no thread).

        Use ``async for doc in reader.alazy_load_data(path)`` to stream, or
        ``await reader.alazy_load_data(path)`` for a list, as LlamaIndex's base class allows.
        """
        return LazyDocuments(
            lambda: _sync.detached(lambda: self._aiter(file, extra_info, fs, dict(kwargs)))
        )

    async def aload_data(  # type: ignore[override]
        self,
        file: Input | list[Input] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> list[Loaded]:
        """Load every chunk (real async); an error carries the finished ones (``documents``)."""
        return await acollect(_sync.detached(lambda: self._aiter(file, extra_info, fs, kwargs)))

    # -- sync wrappers ----------------------------------------------------------------------

    def lazy_load_data(  # type: ignore[override]
        self,
        file: Input | list[Input] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> Iterator[Loaded]:
        """Yield ``Document`` chunks as pages finish (works inside a running event loop)."""
        return _sync.iterate(lambda: self._aiter(file, extra_info, fs, dict(kwargs)))

    def load_data(  # type: ignore[override]
        self,
        file: Input | list[Input] | None = None,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> list[Loaded]:
        """Load every chunk of ``file`` (a path, folder, glob, bytes or a list of them).

        An error carries the chunks produced before it in its ``documents`` attribute.
        """
        return collect(self.lazy_load_data(file, extra_info, fs, **kwargs))


class LazyDocuments:
    """Result of ``alazy_load_data``: iterate it with ``async for``, or ``await`` a list."""

    def __init__(self, make: Callable[[], AsyncIterator[Loaded]]) -> None:
        self._make = make

    def __aiter__(self) -> AsyncIterator[Loaded]:
        return self._make().__aiter__()

    def __await__(self) -> Generator[Any, None, list[Loaded]]:
        return self._collect().__await__()

    async def _collect(self) -> list[Loaded]:
        return await acollect(self._make())


def _inputs(
    file: Any, extra_info: dict[str, Any] | None, fs: Any, kwargs: dict[str, Any]
) -> list[DocumentSource] | list[Input]:
    if file is None:
        file = kwargs.pop("file_path", None) or kwargs.pop("input_file", None)
    if file is None:
        raise TypeError("load_data() needs a file: a path, folder, glob, bytes or a list")
    extra = tuple(
        (k, v)
        for k, v in (extra_info or {}).items()
        if isinstance(v, (str, int, float, bool)) and v is not None
    )
    if fs is not None:  # a remote filesystem (fsspec): read the bytes through it
        files = file if isinstance(file, list) else [file]
        sources = []
        for f in files:
            with fs.open(str(f), "rb") as fh:
                data = fh.read()
            sources.append(DocumentSource(name=str(f), data=data, extra=extra))
        return sources
    if extra:
        return [DocumentSource(s.name, s.path, s.data, extra) for s in resolve_inputs(file)]
    if (
        isinstance(file, (str, os.PathLike))
        or not isinstance(file, Iterable)
        or isinstance(file, (bytes, bytearray))
    ):
        return [file]
    return list(file)


def to_document(record: Record) -> Document:
    """A LlamaIndex ``Document`` with the contract metadata and bulky keys excluded."""
    keys = [k for k in EXCLUDED_FROM_EMBEDDING if k in record.metadata]
    return Document(
        id_=record.id,
        text=record.text,
        metadata=dict(record.metadata),
        excluded_embed_metadata_keys=list(keys),
        excluded_llm_metadata_keys=list(keys),
    )


def to_image_node(record: Record) -> ImageNode:
    """A figure's ``ImageNode``: caption as text, the crop as ``image_path`` (a file) or
    ``image`` (base64), ``image_mimetype``, and the chunk metadata (base64 kept out of it).

    The text chunk that shows the figure (``chunk_id``) is its ``PARENT``
    (``node.parent_node``), a hierarchy's relation: the figure is part of that chunk.
    ``SOURCE`` is left unset: it names the document a node was split from (``ref_doc_id``),
    and an ingestion pipeline replaces every node of one ``ref_doc_id`` together, which would
    make a chunk and its figures evict each other."""
    meta = dict(record.metadata)
    image = meta.pop("image_base64", None)
    keys = [k for k in EXCLUDED_FROM_EMBEDDING if k in meta]
    relationships = {}
    if "chunk_id" in meta:
        parent = RelatedNodeInfo(node_id=str(meta["chunk_id"]), node_type=ObjectType.DOCUMENT)
        relationships[NodeRelationship.PARENT] = parent
    return ImageNode(
        relationships=relationships,
        id_=record.id,
        text=record.text,
        image=str(image) if image is not None else None,
        image_path=str(meta["image_path"]) if "image_path" in meta else None,
        image_mimetype=str(meta["image_mimetype"]),
        metadata=meta,
        excluded_embed_metadata_keys=list(keys),
        excluded_llm_metadata_keys=list(keys),
    )


def to_node(record: Record) -> Loaded:
    """A chunk's ``Document`` or a figure's ``ImageNode``."""
    return to_image_node(record) if record.figure is not None else to_document(record)


__all__ = ["DeepSeekOCRReader", "to_document", "to_image_node"]
