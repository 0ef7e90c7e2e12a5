"""The engine contract: one page image in, one raw grounded answer out.

Engines are async so the pipeline can keep many pages in flight. An engine may also ask for a
*page hook*: a plain function the renderer calls on the open PyMuPDF page, in the worker that
owns the document (PyMuPDF is not thread-safe), whose picklable result reaches the engine as
``PageImage.hint``. The local engine uses it to read the PDF text layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .._model import PageImage, RawPage

PageHook = Callable[[Any], Any]
"""Called with a ``pymupdf.Page``; must be a module-level function returning picklable data.

``Any`` on both sides: PyMuPDF ships no type information for its pages, and what the hook
returns is the engine's own business (it comes back to that engine as ``PageImage.hint``).
"""


@runtime_checkable
class Engine(Protocol):
    """What the pipeline needs from an OCR engine."""

    name: str
    """``openai`` (an OpenAI-compatible endpoint) or ``local`` (the embedded CPU engine)."""
    model: str
    """The model name reported in metadata (``ocr_model``)."""
    prompt: str

    @property
    def page_hook(self) -> PageHook | None:
        """Work to do where the document is open, or ``None``."""
        ...

    @property
    def cache_identity(self) -> str:
        """Everything about this engine that changes its output (model, prompt, dialect...)."""
        ...

    async def recognize(self, page: PageImage) -> RawPage:
        """OCR one page. Transport errors are retried inside; a page that still fails is
        returned with ``RawPage.error`` set rather than raised, unless nothing can succeed
        (then :class:`~ocr_loaders._errors.EndpointUnavailableError`)."""
        ...

    def drain(self) -> None:
        """Every page of the run has now been handed to :meth:`recognize`: spare capacity may
        go to the pages still in flight (the endpoint engine sends backup copies of requests
        queued on a busier endpoint). An engine with nothing to gain does nothing."""
        ...

    async def aclose(self) -> None:
        """Release connections and workers."""
        ...
