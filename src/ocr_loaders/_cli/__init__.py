"""The ``ocr-loaders`` command line (also ``python -m ocr_loaders``).

:mod:`.app` parses options and picks the exit status, :mod:`.convert` runs a conversion,
:mod:`.outputs` writes each document's files and :mod:`.report` prints logs, progress and the
closing tables through one console.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
