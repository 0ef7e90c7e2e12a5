"""Rendering: the contracts between the pipeline and whatever turns pages into images.

A :class:`Renderer` opens documents and hands back :class:`OpenDocument` handles; a handle
renders one page at a time and is closed when its pages are done. Two renderers keep this
contract: :class:`~ocr_loaders._rendering.thread.ThreadRenderer` (one dedicated thread, no
timeout) and :class:`~ocr_loaders._rendering.process.ProcessRenderer` (worker processes that a
hung or crashed render cannot take down). :mod:`~ocr_loaders._rendering.raster` is the
rasterization both run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .._engines.base import PageHook
from .._model import Crop, PageImage
from .._sources import DocumentOutline, DocumentSource
from .crops import CropSettings, CropTarget
from .raster import RenderSettings

if TYPE_CHECKING:
    from .._config import LoaderOptions


class OpenDocument(Protocol):
    """A document open in a renderer: what it is, and its pages on demand."""

    @property
    def outline(self) -> DocumentOutline:
        """Info and page labels."""
        ...

    async def render(
        self, number: int, settings: RenderSettings, hook: PageHook | None
    ) -> PageImage:
        """Page ``number`` (1-based) as the image an engine receives; a page that cannot be
        rendered raises :class:`~ocr_loaders._errors.PageRenderError`."""
        ...

    async def crop(
        self, number: int, targets: tuple[CropTarget, ...], settings: CropSettings, zoom: float
    ) -> tuple[Crop, ...]:
        """Blocks of PDF page ``number`` rendered at ``zoom`` pixels per point, just their
        boxes (see :func:`~ocr_loaders._rendering.crops.clip_pdf`); raises
        :class:`~ocr_loaders._errors.PageRenderError` like :meth:`render`."""
        ...

    async def close(self) -> None:
        """Release the document wherever it is open."""
        ...


class Renderer(Protocol):
    """Opens documents for one pipeline run."""

    async def open(self, src: DocumentSource, password: str | None) -> OpenDocument:
        """Open and check an input; raises :class:`~ocr_loaders._errors.InputError`."""
        ...

    async def adopt(
        self, src: DocumentSource, password: str | None, outline: DocumentOutline
    ) -> OpenDocument:
        """A document whose outline is already known (the cache's manifest): its bytes are
        not hashed again, and a renderer may put off opening it until a page is rendered."""
        ...

    def shutdown(self) -> None:
        """Stop this run's helpers (shared worker processes stay up)."""
        ...


def make_renderer(options: LoaderOptions) -> Renderer:
    """Render in worker processes (default) or on a thread when ``render_workers == 0``."""
    if options.render_workers == 0:
        from .thread import ThreadRenderer

        return ThreadRenderer()
    from .process import ProcessRenderer, shared_pool

    return ProcessRenderer(shared_pool(options.render_workers), options.render_timeout)


__all__ = ["OpenDocument", "RenderSettings", "Renderer", "make_renderer"]
