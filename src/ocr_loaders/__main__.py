"""``python -m ocr_loaders``: the same command line as ``ocr-loaders``."""

from .cli import main

main()
