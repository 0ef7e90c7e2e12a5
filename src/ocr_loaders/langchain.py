"""LangChain loader and blob parser over the pipeline.

``DeepSeekOCRLoader(path).load()`` returns ``Document`` chunks; ``lazy_load`` streams them and
``alazy_load`` is real async (no thread wrapping). ``DeepSeekOCRParser`` is a
``BaseBlobParser`` for ``GenericLoader`` and other blob-based loaders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from . import _sync
from ._records import Record
from ._run import Adapter, acollect, collect
from ._sources import DocumentSource, Input

try:
    from langchain_core.document_loaders import BaseBlobParser, BaseLoader
    from langchain_core.documents import Document
    from langchain_core.documents.base import Blob
except ImportError as exc:  # pragma: no cover - exercised by test_optional_imports
    raise ImportError(
        "DeepSeekOCRLoader needs LangChain: pip install 'ocr-loaders[langchain]'"
    ) from exc


def to_document(record: Record) -> Document:
    """A LangChain ``Document`` with the stable id and the contract metadata.

    A figure's (``images="files"``/``"inline"``): the caption as ``page_content``, and the
    crop as ``image_path`` or ``image_base64`` with ``image_mimetype`` (docs/metadata.md).
    """
    return Document(page_content=record.text, metadata=dict(record.metadata), id=record.id)


class DeepSeekOCRLoader(BaseLoader, Adapter):
    """Load PDFs and images through DeepSeek-OCR as LangChain ``Document`` chunks.

    Args:
        file_path: a path, folder, glob, bytes, a binary file object, or a list of them.
        base_url: endpoint(s) serving DeepSeek-OCR (``DEEPSEEK_OCR_BASE_URL``); none: the
            embedded local engine.
        model, api_key: as the environment variables ``DEEPSEEK_OCR_MODEL`` / ``_API_KEY``.
        **options: see docs/usage.md (``password`` may map file names to passwords;
            ``show_progress=True`` draws a progress bar on stderr; ``images`` and
            ``images_dir`` add a ``Document`` per figure; ``figure_dpi``,
            ``figure_format`` and ``crop_blocks`` say how and what is cropped).

    After a load, :attr:`last_stats` holds the run's totals (see docs/stats.md), with the
    files and pages that failed in ``last_stats.failures``. With ``on_error="raise"`` the
    error's ``documents`` holds what ``load`` had produced (docs/reliability.md).
    """

    def __init__(
        self,
        file_path: Input | Sequence[Input],
        base_url: str | list[str] | None = None,
        model: str | None = None,
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        Adapter.__init__(self, base_url, model, api_key, **options)
        self.file_path = file_path

    def lazy_load(self) -> Iterator[Document]:
        """Stream chunks as pages finish (works inside a running event loop)."""
        return _sync.iterate(lambda: self._stream(self.file_path, to_document))

    def load(self) -> list[Document]:
        """Every chunk; an error carries the chunks produced before it (``documents``)."""
        return collect(self.lazy_load())

    def alazy_load(self) -> AsyncIterator[Document]:
        """Stream chunks on the caller's event loop (``async for``; stopping early is safe)."""
        return self._astream(self.file_path, to_document)

    async def aload(self) -> list[Document]:
        """Async :meth:`load`."""
        return await acollect(self.alazy_load())


class DeepSeekOCRParser(BaseBlobParser, Adapter):
    """Parse blobs (PDF or image bytes) into ``Document`` chunks, e.g. for ``GenericLoader``.

    Takes the same ``base_url``, ``model``, ``api_key`` and ``**options`` as the loader.
    """

    def lazy_parse(self, blob: Blob) -> Iterator[Document]:
        """Chunks of one blob; the blob's ``source`` names the document in metadata."""
        source = _blob_source(blob)
        return _sync.iterate(lambda: self._stream([source], to_document))

    def alazy_parse(self, blob: Blob) -> AsyncIterator[Document]:
        """Async variant of :meth:`lazy_parse`."""
        return self._astream([_blob_source(blob)], to_document)


def _blob_source(blob: Blob) -> DocumentSource:
    from pathlib import Path

    name = str(blob.source or blob.path or "<blob>")
    if blob.data is None and blob.path is not None:
        return DocumentSource(name=name, path=Path(str(blob.path)))
    return DocumentSource(name=name, data=blob.as_bytes())


__all__ = ["DeepSeekOCRLoader", "DeepSeekOCRParser", "to_document"]
