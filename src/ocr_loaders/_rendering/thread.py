"""Rendering on one dedicated thread of this process (``render_workers=0``): no timeout.

PyMuPDF is not thread-safe, so every call on a document runs on the same single thread.
:class:`Offload` is the small executor wrapper both renderers use to keep blocking calls off
the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .._engines.base import PageHook
from .._model import Crop, PageImage
from .._sources import DocumentOutline, DocumentSource
from .crops import CropSettings, CropTarget, clip_pdf
from .raster import RasterDocument, RenderSettings, open_document

P = ParamSpec("P")
T = TypeVar("T")


class Offload:
    """Blocking calls run on a small dedicated executor, awaited from the event loop."""

    def __init__(self, size: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ThreadDocument:
    """A document open on the render thread."""

    def __init__(self, doc: RasterDocument, thread: Offload) -> None:
        self._doc = doc
        self._thread = thread

    @property
    def outline(self) -> DocumentOutline:
        return self._doc.outline

    async def render(
        self, number: int, settings: RenderSettings, hook: PageHook | None
    ) -> PageImage:
        return await self._thread.run(self._doc.render, number, settings, hook)

    async def crop(
        self, number: int, targets: tuple[CropTarget, ...], settings: CropSettings, zoom: float
    ) -> tuple[Crop, ...]:
        return await self._thread.run(clip_pdf, self._doc, number, targets, settings, zoom)

    async def close(self) -> None:
        await self._thread.run(self._doc.close)


class ThreadRenderer:
    """Owns open documents and renders their pages on one dedicated thread (no timeout)."""

    def __init__(self) -> None:
        self._thread = Offload(1, "ocr-loaders-render")

    async def open(self, src: DocumentSource, password: str | None) -> ThreadDocument:
        doc = await self._thread.run(open_document, src, password)
        return ThreadDocument(doc, self._thread)

    async def adopt(
        self, src: DocumentSource, password: str | None, outline: DocumentOutline
    ) -> ThreadDocument:
        """Opened right away (nothing to save in-process), without hashing its bytes again."""
        doc = await self._thread.run(open_document, src, password, known_hash=outline.info.doc_hash)
        return ThreadDocument(doc, self._thread)

    def shutdown(self) -> None:
        self._thread.shutdown()
