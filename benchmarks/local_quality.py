"""Quality and speed of the embedded local engine on the shared corpus.

Run ``python benchmarks/local_quality.py`` (optionally ``--corpus DIR``, ``--only NAME``).
It drives the engine as the pipeline does: open the file with PyMuPDF, run the page hook
(:func:`extract_page`), render a PNG for the ``PageImage``, ``await recognize``, then
``parse_grounded`` + ``to_markdown`` for the clean text, and compares that with the corpus's
reference text. Prints a markdown table.

Metrics (all on text normalised the same way on both sides: Unicode NFKC, a hyphen that ends a
line before a lower-case letter joined as the engine joins it, whitespace collapsed):

* word recall: the multiset of lower-case ``\\w+`` words of the reference, share found in the
  output (each output word can match one reference word);
* word precision: the same the other way round (catches duplicated or invented text);
* order: longest common subsequence of the two word sequences / reference words; it drops
  when columns are interleaved or blocks are out of order;
* CER: character edit distance / reference length (case-sensitive, order-sensitive);

The output is compared as plain text: table HTML tags, ``#`` heading marks and image links
are removed first (the words inside tables stay).
* s/page: engine time (page hook + recognize) per page, rendering of the sent PNG excluded;
  with ``--repeat N`` the median of N reads;
* peak MB: for scans and images, the peak resident memory of a fresh process that loads the
  OCR models (warmed up on a tiny image first, so s/page excludes the one-off start-up) and
  reads that one file; digital files are read in the main process (no figure).

Scans are also read turned a quarter turn (``+rot90``) to check orientation detection.
``--tables`` measures table structure instead, on tables built here with known cells (the
corpus has no scanned table): a ruled digital table whose rule between two rows is missing
under some columns, and a ruled table rendered to a scan (200 and 300 dpi, 0 and 1 degree
skew); it prints the share of cells that come out in their row and column.
The script only uses the engine's stable entry points, so running it with ``PYTHONPATH``
pointing at another checkout measures that version (the "before" column of the docs).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import io
import multiprocessing
import re
import resource
import statistics
import sys
import time
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pymupdf
from PIL import Image

from ocr_loaders._engines.local import LocalEngine, ocr_image_grounded
from ocr_loaders._engines.local_textlayer import extract_page
from ocr_loaders._grounding import parse_grounded, to_markdown
from ocr_loaders._model import PageImage, SourceInfo
from ocr_loaders._rendering.raster import EMPTY_STORE_IMAGE_PIXELS, empty_store, image_pixels

HERE = Path(__file__).resolve()
DEFAULT_CORPUS = HERE.parents[2] / "shared" / "corpus"


@dataclass(frozen=True)
class Case:
    """One corpus file and its reference text."""

    name: str
    reference: str
    kind: str  # "digital", "scan" (PDF) or "image"
    password: str | None = None
    rotate: int = 0  # quarter turns applied before reading (orientation check)


CASES = [
    Case("digital_2col_dpr_paper_2p.pdf", "digital_2col_dpr_paper_2p.textlayer.txt", "digital"),
    Case(
        "digital_dmca_us_copyright_office_18p.pdf",
        "digital_dmca_us_copyright_office_18p.textlayer.txt",
        "digital",
    ),
    Case("digital_google_docs_example.pdf", "digital_google_docs_example.textlayer.txt", "digital"),
    Case("cjk_ko_text_with_tables.pdf", "cjk_ko_text_with_tables.textlayer.txt", "digital"),
    Case("long_geotopo_math_de_117p.pdf", "long_geotopo_math_de_117p.textlayer.txt", "digital"),
    Case("table_nics_firearm_checks.pdf", "table_nics_firearm_checks.textlayer.txt", "digital"),
    Case(
        "rotated_nics_firearm_checks_rot90.pdf",
        "rotated_nics_firearm_checks_rot90.textlayer.txt",
        "digital",
    ),
    Case(
        "encrypted_aes128_userpw_1234.pdf",
        "encrypted_aes128_userpw_1234.textlayer.txt",
        "digital",
        password="1234",
    ),
    Case("image_phototest.tif", "image_phototest.gt.txt", "image"),
    Case("image_phototest.tif", "image_phototest.gt.txt", "image", rotate=1),
    Case("image_eurotext_multilang.tif", "image_eurotext_multilang.gt.txt", "image"),
    Case("image_eurotext_multilang.tif", "image_eurotext_multilang.gt.txt", "image", rotate=1),
    Case("scanned_linn_jbig2.pdf", "scanned_linn_jbig2.gt.txt", "scan"),
    Case("scanned_linn_jbig2.pdf", "scanned_linn_jbig2.gt.txt", "scan", rotate=1),
]


# --- metrics --------------------------------------------------------------------------------

_SOFT_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\s*\n\s*(?=[^\W\d_])")


def normalise(text: str) -> str:
    """NFKC, end-of-line hyphenation joined (before a lower-case letter), whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _SOFT_HYPHEN_BREAK.sub(
        lambda m: "" if text[m.end() : m.end() + 1].islower() else "-", text
    )
    return " ".join(text.split())


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_HTML_TAG = re.compile(
    r"</?(?:table|thead|tbody|tr|td|th|center|br|sup|sub)\b[^>]*>", re.IGNORECASE
)
_HEADING_MARK = re.compile(r"^#+\s+", re.MULTILINE)


def plain_text(markdown: str) -> str:
    """The words a reader sees: HTML tags, heading marks and image links removed."""
    text = _MD_IMAGE.sub(" ", markdown)
    text = html.unescape(_HTML_TAG.sub(" ", text))
    return _HEADING_MARK.sub("", text)


def words(text: str) -> list[str]:
    """Lower-case ``\\w+`` words."""
    return re.findall(r"\w+", text.lower())


def multiset_recall(reference: list[str], output: list[str]) -> float:
    """Share of reference words found in the output, counting repeats."""
    ref, out = Counter(reference), Counter(output)
    total = sum(ref.values())
    return sum(min(c, out[w]) for w, c in ref.items()) / total if total else 1.0


def levenshtein(a: str, b: str) -> int:
    """Edit distance, bit-parallel (Myers/Hyyrö) so long pages stay fast in pure Python."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    m = len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence of two token lists (bit-parallel)."""
    if not a or not b:
        return 0
    m = len(a)
    peq: dict[str, int] = {}
    for i, tok in enumerate(a):
        peq[tok] = peq.get(tok, 0) | (1 << i)
    mask = (1 << m) - 1
    v = mask
    for tok in b:
        u = v & peq.get(tok, 0)
        v = ((v + u) | (v - u)) & mask
    return m - bin(v).count("1")


@dataclass(frozen=True)
class Result:
    """Measured numbers for one case."""

    label: str
    kind: str
    pages: int
    recall: float
    precision: float
    order: float
    cer: float
    seconds_per_page: float
    peak_mb: float | None = None


def score(label: str, kind: str, pages: int, reference: str, output: str, seconds: float) -> Result:
    """Compare ``output`` with ``reference`` (see the module docstring)."""
    ref_n, out_n = normalise(reference), normalise(plain_text(output))
    ref_w, out_w = words(ref_n), words(out_n)
    return Result(
        label=label,
        kind=kind,
        pages=pages,
        recall=multiset_recall(ref_w, out_w),
        precision=multiset_recall(out_w, ref_w),
        order=lcs_length(ref_w, out_w) / len(ref_w) if ref_w else 1.0,
        cer=levenshtein(ref_n, out_n) / max(len(ref_n), 1),
        seconds_per_page=seconds / max(pages, 1),
    )


# --- driving the engine ---------------------------------------------------------------------


def _source(name: str, kind: str, pages: int) -> SourceInfo:
    return SourceInfo(
        source=name,
        file_name=name,
        file_path=name,
        doc_hash="0" * 64,
        kind="pdf" if kind != "image" else "image",
        total_pages=pages,
    )


async def _read_pdf(engine: LocalEngine, path: Path, case: Case) -> tuple[str, int, float]:
    doc = pymupdf.open(path)
    if doc.needs_pass and not doc.authenticate(case.password or ""):
        raise SystemExit(f"{path}: wrong password")
    texts: list[str] = []
    seconds = 0.0
    info = _source(case.name, case.kind, doc.page_count)
    for page in doc:
        if case.rotate:
            page.set_rotation((page.rotation + 90 * case.rotate) % 360)
        png = page.get_pixmap(dpi=144).tobytes("png")  # what the pipeline would send
        t0 = time.perf_counter()
        hint = extract_page(page)
        t1 = time.perf_counter()
        if image_pixels(page) > EMPTY_STORE_IMAGE_PIXELS:
            empty_store()  # as the pipeline's renderer does after a scanned page
        image = PageImage(
            source=info,
            number=page.number + 1,
            label=str(page.number + 1),
            width=page.rect.width,
            height=page.rect.height,
            image=png,
            mime="image/png",
            image_width=0,
            image_height=0,
            hint=hint,
        )
        raw = await engine.recognize(image)
        seconds += (t1 - t0) + raw.latency_s
        if raw.error:
            print(f"  {case.name} page {page.number + 1}: {raw.error}", file=sys.stderr)
        texts.append(to_markdown(parse_grounded(raw.text)))
    pages = doc.page_count
    doc.close()
    return "\n\n".join(texts), pages, seconds


async def _read_image(engine: LocalEngine, path: Path, case: Case) -> tuple[str, int, float]:
    with Image.open(path) as im:
        im.seek(0)
        frame = im.convert("RGB")
    if case.rotate:
        frame = frame.rotate(-90 * case.rotate, expand=True)  # clockwise quarter turns
    buf = io.BytesIO()
    frame.save(buf, format="PNG")  # native resolution, as the renderer sends image files
    info = _source(case.name, "image", 1)
    image = PageImage(
        source=info,
        number=1,
        label="1",
        width=frame.width,
        height=frame.height,
        image=buf.getvalue(),
        mime="image/png",
        image_width=frame.width,
        image_height=frame.height,
    )
    raw = await engine.recognize(image)
    if raw.error:
        print(f"  {case.name}: {raw.error}", file=sys.stderr)
    return to_markdown(parse_grounded(raw.text)), 1, raw.latency_s


async def _read_case(
    engine: LocalEngine, corpus: Path, case: Case, repeat: int
) -> tuple[str, int, float]:
    """Read one case ``repeat`` times: its output, pages and median engine seconds."""
    reader = _read_image if case.kind == "image" else _read_pdf
    runs = [await reader(engine, corpus / case.name, case) for _ in range(max(1, repeat))]
    return runs[0][0], runs[0][1], statistics.median(r[2] for r in runs)


def _isolated(corpus: Path, case: Case, repeat: int) -> tuple[str, int, float, float]:
    """In a fresh process: warm the models up, read the case, report the peak memory."""
    buf = io.BytesIO()
    Image.new("L", (64, 32), 255).save(buf, format="PNG")
    ocr_image_grounded(buf.getvalue())  # loads the models: start-up is not per page

    async def go() -> tuple[str, int, float]:
        engine = LocalEngine()
        try:
            return await _read_case(engine, corpus, case, repeat)
        finally:
            await engine.aclose()

    output, pages, seconds = asyncio.run(go())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return output, pages, seconds, peak


async def run(corpus: Path, only: str | None, repeat: int = 1) -> list[Result]:
    """Read every case and score it."""
    engine = LocalEngine()
    results: list[Result] = []
    spawn = multiprocessing.get_context("spawn")
    try:
        for case in CASES:
            if only and only not in case.name:
                continue
            path = corpus / case.name
            if not path.exists():
                print(f"skipping {case.name}: not in {corpus}", file=sys.stderr)
                continue
            peak: float | None = None
            if case.kind == "digital":
                output, pages, seconds = await _read_case(engine, corpus, case, repeat)
            else:
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    output, pages, seconds, peak = pool.submit(
                        _isolated, corpus, case, repeat
                    ).result()
            reference = (corpus / case.reference).read_text(encoding="utf-8")
            label = case.name + (f" +rot{90 * case.rotate}" if case.rotate else "")
            result = score(label, case.kind, pages, reference, output, seconds)
            results.append(replace(result, peak_mb=peak))
            r = results[-1]
            print(
                f"  {label}: recall {r.recall:.3f} order {r.order:.3f} cer {r.cer:.3f} "
                f"{r.seconds_per_page:.2f} s/page"
                + (f" peak {r.peak_mb:.0f} MB" if r.peak_mb is not None else ""),
                file=sys.stderr,
            )
    finally:
        await engine.aclose()
    return results


def table(results: list[Result]) -> str:
    """The results as a markdown table."""
    out = [
        "| file | kind | pages | word recall | word precision | order (LCS) | CER | s/page "
        "| peak MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else ""
        out.append(
            f"| {r.label} | {r.kind} | {r.pages} | {r.recall:.3f} | {r.precision:.3f} "
            f"| {r.order:.3f} | {r.cer:.3f} | {r.seconds_per_page:.2f} | {peak} |"
        )
    return "\n".join(out)


# --- table structure on built tables ---------------------------------------------------------

_TABLE = [
    ["Model", "Format", "TEDS", "mAP"],
    ["A", "OTSL", "0.965", "0.789"],
    ["A", "HTML", "0.969", "0.771"],
    ["B", "OTSL", "0.955", "0.712"],
]


def _html_rows(markup: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", markup)]


def _cells_in_place(expected: list[list[str]], markup: str) -> float:
    """Share of expected cells found at their (row, column) in the output's rows."""
    got = _html_rows(markup)
    hits = sum(
        1
        for r, row in enumerate(expected)
        for c, text in enumerate(row)
        if r < len(got) and c < len(got[r]) and got[r][c] == text
    )
    return hits / sum(len(row) for row in expected)


def _digital_table_page(missing_under: int) -> pymupdf.Page:
    doc = pymupdf.open()
    page = doc.new_page()
    x0, y0, cw, rh = 72.0, 100.0, 100.0, 20.0
    for c in range(5):
        page.draw_line((x0 + c * cw, y0), (x0 + c * cw, y0 + 4 * rh), width=0.8)
    for r in range(5):
        start = missing_under if r == 2 else 0
        if start < 4:
            page.draw_line((x0 + start * cw, y0 + r * rh), (x0 + 4 * cw, y0 + r * rh), width=0.8)
    for r, row in enumerate(_TABLE):
        for c, text in enumerate(row):
            page.insert_text((x0 + c * cw + 6, y0 + (r + 1) * rh - 6), text, fontsize=10)
    return page


def _scanned_table_png(dpi: int, skew: float) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "The results are given in the table below.", fontsize=11)
    x0, y0, cw, rh = 72.0, 110.0, 110.0, 26.0
    for r, row in enumerate(_TABLE):
        for c, text in enumerate(row):
            rect = pymupdf.Rect(x0 + c * cw, y0 + r * rh, x0 + (c + 1) * cw, y0 + (r + 1) * rh)
            page.draw_rect(rect, color=(0, 0, 0), width=1)
            page.insert_text((rect.x0 + 8, rect.y1 - 9), text, fontsize=11)
    png = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY).tobytes("png")
    if skew:
        with Image.open(io.BytesIO(png)) as im:
            out = io.BytesIO()
            im.rotate(skew, expand=True, fillcolor=255).save(out, "PNG")
            png = out.getvalue()
    return png


def table_structure() -> str:
    """Cells in place on the built tables, as a markdown table."""
    out = ["| table | cells in place | s |", "|---|---:|---:|"]
    for missing in (1, 2, 3, 4):
        page = _digital_table_page(missing)
        start = time.perf_counter()
        data = extract_page(page)
        seconds = time.perf_counter() - start
        markup = data.tables[0].html if data.tables else ""
        label = f"digital, row rule missing under {missing} of 4 columns"
        out.append(f"| {label} | {_cells_in_place(_TABLE, markup):.3f} | {seconds:.2f} |")
    for dpi, skew in ((200, 0.0), (300, 0.0), (200, 1.0)):
        png = _scanned_table_png(dpi, skew)
        start = time.perf_counter()
        blocks = parse_grounded(ocr_image_grounded(png))
        seconds = time.perf_counter() - start
        markup = next((b.text for b in blocks if b.label == "table"), "")
        label = f"scan, {dpi} dpi, {skew:g} degree skew"
        out.append(f"| {label} | {_cells_in_place(_TABLE, markup):.3f} | {seconds:.2f} |")
    return "\n".join(out)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--only", help="only files whose name contains this")
    parser.add_argument("--repeat", type=int, default=1, help="reads per file (median time)")
    parser.add_argument("--tables", action="store_true", help="table structure on built tables")
    args = parser.parse_args()
    if args.tables:
        print(table_structure())
        return
    if not args.corpus.is_dir():
        raise SystemExit(f"corpus not found: {args.corpus}")
    results = asyncio.run(run(args.corpus, args.only, args.repeat))
    print(table(results))


if __name__ == "__main__":
    main()
