"""How the processes ocr_loaders owns (the CLI, the render workers) load PyMuPDF.

PyMuPDF 2.0 requires two add-on packages and imports both with ``pymupdf``: ``pymupdf4llm``
(its own markdown converter) and its layout analyzer (``pymupdf.layout``, from the
``pymupdf_layout`` package), which loads an ONNX model on import. Together they take ``import
pymupdf`` from 47 to 138 MB resident and from 0.15 to 0.8-1.0 s, in every process that imports
PyMuPDF (docs/local-engine.md). ocr_loaders uses neither (its table finder runs with
``use_layout=False``), so its own processes turn both imports away before PyMuPDF is loaded.
In a user's process they are left alone: the user's code may use them.

One of them changes how PyMuPDF reads text: ``pymupdf4llm`` turns PyMuPDF's character-quad
corrections off process-wide when it is imported. The local engine's line heights (headings,
paragraphs) were measured that way, so text is always read with them off
(:func:`uncorrected_quads`), whether or not the add-on was loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

ADDONS = ("pymupdf.layout", "pymupdf4llm")
"""Modules ``import pymupdf`` imports when they are installed; it carries on without them."""


def skip_pymupdf_addons() -> bool:
    """Make ``import pymupdf`` leave out :data:`ADDONS` in this process (and PyMuPDF's advice
    to install the layout analyzer, here and in the processes this one starts). Call before
    anything imports PyMuPDF; returns False when that already happened (then nothing else
    changes)."""
    os.environ.setdefault("PYMUPDF_SUGGEST_LAYOUT_ANALYZER", "0")
    if "pymupdf" in sys.modules:
        return False
    for name in ADDONS:
        # A None entry makes the import raise ImportError, which PyMuPDF takes as "not
        # installed".
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    return True


@contextlib.contextmanager
def uncorrected_quads() -> Iterator[None]:
    """Read text inside this block with PyMuPDF's own corrections of character boxes off
    (each box as MuPDF gives it), as ``pymupdf4llm`` leaves them. The setting is
    process-wide, so it is put back afterwards."""
    import pymupdf

    before = bool(pymupdf.TOOLS.unset_quad_corrections())
    pymupdf.TOOLS.unset_quad_corrections(True)
    try:
        yield
    finally:
        pymupdf.TOOLS.unset_quad_corrections(before)
