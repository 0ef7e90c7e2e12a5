"""A guess at what each page of a PDF costs the model, before anything is rendered.

A page's answer is about as long as the text on it, and the text is what its content streams
draw (a digital page) or what its images show (a scan); both grow their compressed bytes with
it. So the weight of a page is the compressed size of its content streams and of the images it
draws, read from the PDF's object table without decoding anything (well under a millisecond a
page). The pipeline sends the heaviest pages of a document first, so a dense page does not
start last and hold the end of the run (see ``_limits.Slots``); results still come out in page
order. A guess that is wrong only costs some of that gain, so any error gives weight 0.
"""

from __future__ import annotations

import re
from typing import Protocol

_REF = re.compile(r"(\d+)\s+\d+\s+R")


class PdfObjects(Protocol):
    """What is read of an open PyMuPDF document."""

    page_count: int

    def page_xref(self, pno: int) -> int: ...

    def xref_get_key(self, xref: int, key: str) -> tuple[str, str]: ...

    def xref_object(self, xref: int) -> str: ...

    def get_page_images(self, pno: int) -> list[tuple[object, ...]]: ...


def page_weights(doc: PdfObjects) -> tuple[int, ...]:
    """Compressed bytes of each page's content streams and images (0 where unreadable)."""
    return tuple(_weight(doc, i) for i in range(doc.page_count))


def _weight(doc: PdfObjects, index: int) -> int:
    try:
        kind, value = doc.xref_get_key(doc.page_xref(index), "Contents")
        streams = [int(x) for x in _REF.findall(value)] if kind in ("xref", "array") else []
        images = {int(str(entry[0])) for entry in doc.get_page_images(index)}
        return sum(_length(doc, xref) for xref in [*streams, *sorted(images)])
    except Exception:  # a weight is a scheduling hint: never a reason to fail a document
        return 0


def _length(doc: PdfObjects, xref: int) -> int:
    """A stream's ``/Length`` (direct or through one reference)."""
    kind, value = doc.xref_get_key(xref, "Length")
    if kind == "xref":
        match = _REF.match(value)
        value = doc.xref_object(int(match.group(1))).strip() if match else ""
    return int(value) if value.isdigit() else 0
