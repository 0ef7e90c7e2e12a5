"""Running headers in chunks, before and after the chunker's document pass, on the corpus.

Run ``python benchmarks/cleanup_quality.py`` (optionally ``--corpus DIR``, ``--only NAME``,
``--chunk-size N``). Each multi-page PDF with a text layer is read once with the embedded local
engine (as a load with no endpoint does); its pages are then chunked twice: *before* with
``keep_page_furniture=True, join_pages=False`` (chunking as it was, page by page) and *after*
with the defaults. Prints a markdown table.

The running headers are found independently of the chunker, in the PDF's text layer: the
outermost line of a page (nothing between it and the edge), wholly in the top or bottom 12 % of
the page, whose text (case kept, numbers aside) comes back in the same band on another page,
and any such line set at the same height and font size as those on three pages or more. Then:

* header chunks: the share of chunks whose text contains one of the running lines of its pages
  more often than the other lines of those pages do (lines of at least two words or eight
  letters, so that a bare page number is not looked for inside body text);
* body recall: the share of the text layer's words, the running lines' words left out, found in
  the chunk texts (multiset, lower-case ``\\w+`` words after NFKC, a hyphen that ends a line
  before a lower-case letter joined; table tags, heading marks and image links removed).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from ocr_loaders._chunking import ChunkOptions, chunk_pages
from ocr_loaders._config import LoaderOptions
from ocr_loaders._model import Chunk, Page, PageResult
from ocr_loaders._pipeline import Pipeline

HERE = Path(__file__).resolve()
DEFAULT_CORPUS = HERE.parents[2] / "shared" / "corpus"
BAND = 0.12
CASES = (
    "digital_dmca_us_copyright_office_18p.pdf",
    "long_geotopo_math_de_117p.pdf",
    "digital_2col_dpr_paper_2p.pdf",
)

_NUMBER_RE = re.compile(r"\d+|\b[ivxlcdm]+\b")
_HYPHEN_BREAK_RE = re.compile(r"(?<=[^\W\d_])-\s*\n\s*(?=[a-zäöüßà-ÿ])")
_TAG_RE = re.compile(r"</?(?:table|tr|td|th|center|br|sup|sub)\b[^>]*>", re.IGNORECASE)
_LINK_RE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_HEADING_RE = re.compile(r"^#+\s+", re.MULTILINE)


@dataclass(frozen=True)
class Line:
    page: int
    text: str
    band: str
    """``top``, ``bottom`` or empty (the body)."""
    y: float
    size: float


def text_lines(path: Path) -> list[Line]:
    """Every text-layer line; ``band`` set for a line that is wholly in the top or bottom band
    and outermost there (nothing lies between it and the edge of the page)."""
    lines: list[Line] = []
    with pymupdf.open(path) as doc:
        for number, page in enumerate(doc, start=1):
            height = page.rect.height
            found: list[tuple[str, float, float, float]] = []
            for block in page.get_text("dict")["blocks"]:
                for line in block.get("lines", []):
                    text = "".join(span["text"] for span in line["spans"]).strip()
                    size = max(span["size"] for span in line["spans"])
                    if text:
                        found.append((text, line["bbox"][1], line["bbox"][3], size))
            if not found:
                continue
            first, last = min(f[1] for f in found), max(f[2] for f in found)
            for text, y0, y1, size in found:
                top = y1 <= BAND * height and y0 <= first + 2
                bottom = y0 >= (1 - BAND) * height and y1 >= last - 2
                band = "top" if top else "bottom" if bottom else ""
                lines.append(Line(number, text, band, y0, size))
    return lines


def running_lines(lines: Sequence[Line]) -> list[Line]:
    """Outermost band lines whose text (case kept, numbers aside) comes back in the same band on
    another page, and the lines set at their place (height and font size) on three pages or
    more, whatever their words (a header naming the current section)."""
    key = {id(ln): ln.band + _NUMBER_RE.sub("#", ln.text) for ln in lines if ln.band}
    on_pages: dict[str, set[int]] = {}
    for ln in lines:
        if ln.band:
            on_pages.setdefault(key[id(ln)], set()).add(ln.page)
    repeated = [ln for ln in lines if ln.band and len(on_pages[key[id(ln)]]) >= 2]

    def place(ln: Line) -> tuple[str, int, int]:
        return ln.band, round(ln.y / 2), round(ln.size)

    places: dict[tuple[str, int, int], set[int]] = {}
    for ln in repeated:
        places.setdefault(place(ln), set()).add(ln.page)
    slots = {p for p, pages in places.items() if len(pages) >= 3}
    chosen = {id(ln) for ln in repeated}
    return [ln for ln in lines if ln.band and (id(ln) in chosen or place(ln) in slots)]


def words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text)
    text = _HYPHEN_BREAK_RE.sub("", text)
    return re.findall(r"\w+", text.lower())


def plain(markdown: str) -> str:
    return _HEADING_RE.sub("", html.unescape(_TAG_RE.sub(" ", _LINK_RE.sub(" ", markdown))))


def recall(reference: list[str], output: list[str]) -> float:
    ref, out = Counter(reference), Counter(output)
    total = sum(ref.values())
    return sum(min(n, out[w]) for w, n in ref.items()) / total if total else 1.0


@dataclass(frozen=True)
class Scores:
    chunks: int
    header_chunks: int
    body_recall: float


def squash(text: str) -> str:
    return " ".join(text.split())


def score(
    chunks: Sequence[Chunk], running: Sequence[Line], body: Sequence[Line], body_words: list[str]
) -> Scores:
    """A chunk holds a running header when a running line of its pages occurs in its text more
    often than in the body lines of those pages (a title may repeat a header's words)."""
    needles: dict[int, set[str]] = {}
    for ln in running:
        if len(ln.text.split()) >= 2 or sum(ch.isalpha() for ch in ln.text) >= 8:
            needles.setdefault(ln.page, set()).add(squash(ln.text))
    body_text: dict[int, str] = {}
    for ln in body:
        body_text[ln.page] = body_text.get(ln.page, "") + " " + squash(ln.text)
    hits = 0
    for c in chunks:
        span = range(c.page_start, c.page_end + 1)
        text = squash(c.text)
        reference = " ".join(body_text.get(n, "") for n in span)
        found = {needle for n in span for needle in needles.get(n, ())}
        hits += any(text.count(n) > reference.count(n) for n in found)
    out = [w for c in chunks for w in words(plain(c.text))]
    return Scores(len(chunks), hits, recall(body_words, out))


async def read_pages(path: Path) -> list[Page]:
    """The document's pages through the local engine (the default with no endpoint)."""
    pipeline = Pipeline(LoaderOptions.from_kwargs(base_url=""))
    pages: list[Page] = []
    async for event in pipeline.events(path):
        if isinstance(event, PageResult):
            pages.append(event.page)
    return pages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--only", default="")
    parser.add_argument("--chunk-size", type=int, default=512)
    args = parser.parse_args(argv)
    before = ChunkOptions(chunk_size=args.chunk_size, keep_page_furniture=True, join_pages=False)
    after = ChunkOptions(chunk_size=args.chunk_size)
    print(
        "| document | pages | running lines | chunks before / after | chunks with a running "
        "header, before | after | body word recall, before | after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in CASES:
        if args.only and args.only not in name:
            continue
        path = args.corpus / name
        pages = asyncio.run(read_pages(path))
        lines = text_lines(path)
        running = running_lines(lines)
        skip = {id(ln) for ln in running}
        body = [ln for ln in lines if id(ln) not in skip]
        body_words = words("\n".join(ln.text for ln in body))
        old = score(chunk_pages(pages, before), running, body, body_words)
        new = score(chunk_pages(pages, after), running, body, body_words)
        print(
            f"| {name} | {len(pages)} | {len(running)} | {old.chunks} / {new.chunks} "
            f"| {old.header_chunks / old.chunks:.1%} | {new.header_chunks / new.chunks:.1%} "
            f"| {old.body_recall:.4f} | {new.body_recall:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
