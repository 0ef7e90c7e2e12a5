"""How ocr_loaders loads PyMuPDF and reads text with it, whatever else the process loaded.

PyMuPDF 2.0 requires two add-on packages and imports both with ``pymupdf``: ``pymupdf4llm``
(its own markdown converter) and its layout analyzer (``pymupdf.layout``, from the
``pymupdf_layout`` package), which loads an ONNX model on import. Together they take ``import
pymupdf`` from 47 to 138 MB resident and from 0.15 to 0.8-1.0 s, in every process that imports
PyMuPDF (docs/local-engine.md). ocr_loaders uses neither (its table finder runs with
``use_layout=False``), so its own processes load PyMuPDF without them: the command line for
good (:func:`skip_pymupdf_addons`; no user code runs there), a render worker only while it
imports PyMuPDF (:func:`import_pymupdf_without_addons`), since the page hook of a user's own
engine runs there and may import them. In a user's process they are left alone.

One of them changes how PyMuPDF reads text: ``pymupdf4llm`` turns PyMuPDF's character-quad
corrections off process-wide when it is imported. The local engine's line heights (headings,
paragraphs) were measured that way, so text is always read with them off
(:func:`uncorrected_quads`), whether or not the add-on was loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

ADDONS = ("pymupdf.layout", "pymupdf4llm")
"""Modules ``import pymupdf`` imports when they are installed; it carries on without them."""


def skip_pymupdf_addons() -> list[str]:
    """Make ``import pymupdf`` leave out :data:`ADDONS` in this process, and turn off
    PyMuPDF's advice to install the layout analyzer (here and in the processes this one
    starts). Call before anything imports PyMuPDF. Returns the add-ons turned away: none when
    PyMuPDF is loaded already (then nothing else changes)."""
    os.environ.setdefault("PYMUPDF_SUGGEST_LAYOUT_ANALYZER", "0")
    if "pymupdf" in sys.modules:
        return []
    turned = [name for name in ADDONS if name not in sys.modules]
    for name in turned:
        # A None entry makes the import raise ImportError, which PyMuPDF takes as "not
        # installed".
        sys.modules[name] = None  # type: ignore[assignment]
    return turned


def import_pymupdf_without_addons() -> ModuleType:
    """Import PyMuPDF with :func:`skip_pymupdf_addons`, then let the add-ons be imported
    again by whoever asks for them later (they load then, and only then)."""
    turned = skip_pymupdf_addons()
    try:
        import pymupdf  # noqa: F401 - loaded here, handed back typed from sys.modules
    finally:
        for name in turned:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return sys.modules["pymupdf"]


_readers_lock = threading.Lock()
_readers = 0
_setting_before = False


@contextlib.contextmanager
def uncorrected_quads() -> Iterator[None]:
    """Read text inside this block with PyMuPDF's own corrections of character boxes off
    (each box as MuPDF gives it), as ``pymupdf4llm`` leaves them. The setting is
    process-wide: it is put back when the last block open in the process (on any thread)
    ends, so one reader leaving cannot switch it under another."""
    import pymupdf

    global _readers, _setting_before
    with _readers_lock:
        if _readers == 0:
            _setting_before = bool(pymupdf.TOOLS.unset_quad_corrections())
            pymupdf.TOOLS.unset_quad_corrections(True)
        _readers += 1
    try:
        yield
    finally:
        with _readers_lock:
            _readers -= 1
            if _readers == 0:
                pymupdf.TOOLS.unset_quad_corrections(_setting_before)
