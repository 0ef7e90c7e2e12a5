"""What a file really is, from its bytes: PDF, image or something else (an HTML error page
saved as ``.pdf``, a ZIP...), and whether a PDF was cut short. MuPDF would read many of these
as documents of their own kind; the loader refuses them with a clear reason instead."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Kind = Literal["pdf", "image"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"})
SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
"""File name suffixes picked up when a folder or glob is given."""

PDF_HEADER_WINDOW = 1024
"""Where a PDF's ``%PDF-`` header may sit (Acrobat accepts junk before it within 1 KiB)."""

_IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"GIF87a",
    b"GIF89a",
)


def sniff_kind(head: bytes) -> Kind | None:
    """``pdf`` or ``image`` from the first bytes; ``None`` for anything else.

    A PDF needs its ``%PDF-`` header in the first KiB, not after markup: an HTML page that
    merely mentions ``%PDF-`` is not one.
    """
    at = head.find(b"%PDF-", 0, PDF_HEADER_WINDOW + 5)
    if at >= 0 and not head[:at].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "pdf"
    if head.startswith(_IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    return None


def describe_content(head: bytes) -> str:
    """What unrecognised bytes look like, for an error message (never the bytes themselves
    beyond a short, escaped prefix)."""
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "an HTML page (a failed download or an error page?)"
    if text.startswith(b"<?xml") or text.startswith(b"<"):
        return "XML or markup"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (an Office document?)"
    return f"bytes starting {head[:12]!r}"


def claimed_kind(name: str) -> str | None:
    """What a file's name says it is (``PDF``, ``PNG``, ...), or ``None`` for other names."""
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf" or suffix in IMAGE_SUFFIXES:
        return {".jpg": "JPEG", ".tif": "TIFF"}.get(suffix, suffix[1:].upper())
    return None


def eof_marker_missing(data: bytes | None, path: Path | None) -> bool:
    """True when the last KiB of the bytes (or of the file) holds no ``%%EOF``: the PDF was
    cut short (a broken download)."""
    if data is not None:
        tail = data[-PDF_HEADER_WINDOW:]
    else:
        assert path is not None
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - PDF_HEADER_WINDOW))
            tail = fh.read()
    return b"%%EOF" not in tail
