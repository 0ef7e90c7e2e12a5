"""``python -m ocr_loaders``: the same command line as ``ocr-loaders``."""

from ._cli import main

main()
