"""Structure of digital pages read as scans: headings and bold lines against the text layer.

Run ``python benchmarks/scan_structure.py`` (optionally ``--corpus DIR``, ``--dpi N``,
``--only NAME``). Pages of the corpus's digital PDFs in Latin script are rendered in gray at
``--dpi`` (200 by default) and read by the embedded engine's OCR path, as a scan of them would
be; their text layer, read by the same engine, is the reference. Prints a markdown table:

* headings: the ``title`` / ``sub_title`` blocks of the text layer's reading found among the
  scan's (text compared lower-case, words only, difflib ratio >= 0.8), and how many of the
  scan's headings are not among the text layer's;
* bold lines: each OCR line is compared with the text layer's spans it covers (more than
  half of a span's box inside the line's): bold when at least 80 % of their letters are set in
  a bold face. Lines the OCR marks bold that are bold there (right), that are not (wrong), and
  bold lines of four letters or more it does not mark (missed).

Not a test: it reads about 30 pages (two OCR passes each) in a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymupdf

from ocr_loaders._engines.local import ocr_array_grounded, recognize_page_data
from ocr_loaders._engines.local_ocr import ocr_lines
from ocr_loaders._engines.local_textlayer import extract_page
from ocr_loaders._grounding import parse_grounded

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FILES = {
    "digital_2col_dpr_paper_2p.pdf": None,
    "digital_dmca_us_copyright_office_18p.pdf": None,
    "digital_google_docs_example.pdf": None,
    "long_geotopo_math_de_117p.pdf": range(0, 117, 10),
}
"""The PDFs read, and which pages (``None``: all)."""


@dataclass
class Tally:
    pages: int = 0
    headings: int = 0
    found: int = 0
    extra: int = 0
    right: int = 0
    wrong: int = 0
    missed: int = 0

    def add(self, other: Tally) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _headings(grounded: str) -> list[str]:
    blocks = parse_grounded(grounded)
    return [_norm(b.text) for b in blocks if b.label in ("title", "sub_title")]


def _matched(wanted: list[str], pool: list[str]) -> int:
    left = list(pool)
    hits = 0
    for text in wanted:
        best = max(left, key=lambda t: difflib.SequenceMatcher(None, text, t).ratio(), default="")
        if best and difflib.SequenceMatcher(None, text, best).ratio() >= 0.8:
            left.remove(best)
            hits += 1
    return hits


def _bold_spans(page: pymupdf.Page, scale: float) -> list[tuple[pymupdf.Rect, int, bool]]:
    """(box in pixels, letters, bold) of each text span of the page."""
    out = []
    for block in page.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            for span in line["spans"]:
                letters = sum(ch.isalpha() for ch in span["text"])
                if letters:
                    bold = "bold" in span["font"].lower() or bool(span["flags"] & 16)
                    out.append((pymupdf.Rect(span["bbox"]) * scale, letters, bold))
    return out


def read_page(page: pymupdf.Page, dpi: int) -> Tally:
    """One page: its text layer's reading against its rendering read as a scan."""
    digital = _headings(recognize_page_data(extract_page(page)))
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
    scanned = _headings(ocr_array_grounded(gray, pix.width, pix.height))
    found = _matched(digital, scanned)
    tally = Tally(1, len(digital), found, len(scanned) - _matched(scanned, digital))
    spans = _bold_spans(page, dpi / 72)
    for line in ocr_lines(gray)[0]:
        box = pymupdf.Rect(line.bbox)
        covered = [(n, b) for r, n, b in spans if (r & box).get_area() > 0.5 * r.get_area()]
        letters = sum(n for n, _ in covered)
        if not letters:
            continue
        bold = sum(n for n, b in covered if b) >= 0.8 * letters
        if line.bold:
            tally.right += bold
            tally.wrong += not bold
        elif bold and sum(ch.isalpha() for ch in line.text) >= 4:
            tally.missed += 1
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED)
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus not found: {args.corpus}")
    print(
        f"| file ({args.dpi} dpi) | pages | headings found | extra headings | bold right | "
        "bold wrong | bold missed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = Tally()
    for name, pages in FILES.items():
        if args.only not in name:
            continue
        tally = Tally()
        with pymupdf.open(args.corpus / name) as doc:
            for number in pages or range(doc.page_count):
                tally.add(read_page(doc[number], args.dpi))
        total.add(tally)
        print(
            f"| {name} | {tally.pages} | {tally.found} / {tally.headings} | {tally.extra} | "
            f"{tally.right} | {tally.wrong} | {tally.missed} |"
        )
    print(
        f"| all | {total.pages} | {total.found} / {total.headings} | {total.extra} | "
        f"{total.right} | {total.wrong} | {total.missed} |"
    )


if __name__ == "__main__":
    main()
