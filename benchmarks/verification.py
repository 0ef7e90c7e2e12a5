"""Verification (issue 13): detection, repair and cost of the text-layer cross-check.

    python benchmarks/verification.py           # ~30 min on 2 shared cores the first time
                                                # (real OCR), minutes once its OCR cache is warm
    python benchmarks/verification.py --quick   # fewer pages
    python benchmarks/verification.py --no-cpu  # skip the CPU comparison on run.py's document

It rewrites its section of docs/benchmarks.md and prints the figures. Needs the shared corpus
(``../shared/corpus``); without it, it says so and exits 0.

1. **Detection.** The fake server answers every page from its real content (the local-engine
   responder: RapidOCR on the image the loader sent) over the corpus's digital PDFs, once
   clean and once with content faults (``ContentFaultPlan``: dropped blocks, a truncated
   answer, made-up sentences, another page's text, each at a set rate). Precision and recall
   of the ``flagged`` pages against the injected faults; the share of correct pages flagged.
2. **Repair.** The compression stand-in: whole-page answers holding more than
   ``COMPRESS_RATIO`` text tokens per vision token lose ``COMPRESS_DROP`` of their words;
   tiles (half the text for as many vision tokens) answer fully. ``verify="repair"`` (budget
   2.0, so every affected page may be re-read): coverage of the affected pages after repair
   against their clean reading; boxes inside the page, lines duplicated from the overlap,
   lines out of order. Then with the default budget (0.2): extra requests against the bound.
3. **Garbage layers.** Every page of the digital corpus (false alarms) and the same pages'
   words mangled as a poor OCR layer would be (detections).
4. **Cost.** Client CPU per page of ``benchmarks/run.py``'s CLI run (the long German
   document, the grid responder) with ``--verify off`` and ``--verify flag``, alternated.

OCR answers are cached on disk by image hash (``$TMPDIR/ocr-loaders-verify-bench``): the
responder is deterministic, so a second run measures the same thing in minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymupdf
from verification_report import (
    COMPRESS_DROP,
    COMPRESS_RATIO,
    RATES,
    SHARE,
    TILE_RATIO,
    section,
    write_section,
)
from verification_responders import (
    Base,
    CachedResponder,
    Identify,
    LayerResponder,
    Thumbs,
    page_thumbs,
)

from ocr_loaders._config import LoaderOptions
from ocr_loaders._model import PageResult
from ocr_loaders._pipeline import Pipeline
from ocr_loaders._verify.textlayer import read_text_layer
from ocr_loaders._verify.words import tokens
from ocr_loaders.testing import FakeOCRServer
from ocr_loaders.testing.content_faults import ContentFaultPlan, ContentFaultResponder

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"

# (file, pages, password): the digital PDFs of the corpus with a text layer
DOCUMENTS: tuple[tuple[str, str | None, str | None], ...] = (
    ("digital_google_docs_example.pdf", None, None),
    ("digital_2col_dpr_paper_2p.pdf", None, None),
    ("digital_dmca_us_copyright_office_18p.pdf", None, None),
    ("cjk_ko_text_with_tables.pdf", None, None),
    ("table_nics_firearm_checks.pdf", None, None),
    ("rotated_nics_firearm_checks_rot90.pdf", None, None),
    ("encrypted_aes128_userpw_1234.pdf", None, "1234"),
    ("long_geotopo_math_de_117p.pdf", "1,5,10,20,40,80", None),
)
QUICK = {"digital_dmca_us_copyright_office_18p.pdf": "1-6", "long_geotopo_math_de_117p.pdf": "5,40"}


Doc = tuple[Path, str | None, str | None]
"""A document of the benchmark: path, page selection, password."""


@dataclass
class Load:
    results: list[PageResult]
    faults: dict[str, str]
    """The content fault of the first request of each page, by page name."""
    requests: int
    seconds: float


def load(
    docs: Sequence[Doc],
    base: Base,
    plan: ContentFaultPlan,
    thumbs: Thumbs,
    one_load: bool = False,
    **options: Any,
) -> Load:
    """Every document through the loader against a fake server with ``plan``'s faults, one
    request at a time (so requests come in page order, each page's tiles right after it)."""
    seen = Identify(base, thumbs)
    responder = ContentFaultResponder(seen, plan)
    results: list[PageResult] = []
    start = time.perf_counter()
    groups = [[d] for d in docs]
    if one_load:  # one load of every document: one run, one repair budget
        groups = [list(docs)]
    with FakeOCRServer(responder, slots=1) as server:
        for group in groups:
            opts = LoaderOptions.from_kwargs(
                base_url=server.base_url,
                concurrency=1,
                render_workers=0,
                pages=group[0][1],
                password={p.name: pw for p, _pages, pw in group if pw} or None,
                **options,
            )

            async def run(o: LoaderOptions = opts, g: list[Doc] = group) -> None:
                async for event in Pipeline(o).events([p for p, _pages, _pw in g]):
                    if isinstance(event, PageResult):
                        results.append(event)

            asyncio.run(run())
    first: dict[str, str] = {}
    for seq, _crc, fault in sorted(responder.log):
        page = seen.seen.get(seq)
        if page is not None:
            first.setdefault(page, fault)
    return Load(results, first, len(responder.log), time.perf_counter() - start)


def name(r: PageResult) -> str:
    return f"{r.doc.file_name} p{r.page.number}"


# --- 1. detection ---------------------------------------------------------------------------


def detection(docs: Sequence[Doc], base: Base, thumbs: Thumbs) -> dict[str, Any]:
    clean = load(docs, base, ContentFaultPlan(), thumbs, verify="flag")
    faulty = load(
        docs, base, ContentFaultPlan(**RATES, share=SHARE, seed=13), thumbs, verify="flag"
    )
    tp = fp = fn = 0
    ok_pages = ok_flagged = 0
    # pages whose clean reading is itself flagged: the responder lost their text (real OCR)
    lossy = {name(r) for r in clean.results if r.stats.verification == "flagged"}
    own_losses = own_flagged = 0
    by_fault: dict[str, list[int]] = {}
    cut: list[str] = []
    unknown: list[str] = []
    for r in faulty.results:
        fault = faulty.faults.get(name(r))
        if fault is None:  # the page's request never reached the responder
            print(f"  no answer logged for {name(r)} ({r.page.status}: {r.page.error})", flush=True)
            unknown.append(name(r))
            continue
        if r.stats.verification == "unverified":
            continue
        if fault == "ok" and r.page.status != "ok":  # the server cut it: not a correct answer
            cut.append(f"{name(r)} ({r.page.status}, {r.stats.verification})")
            continue
        flagged = r.stats.verification == "flagged"
        hit = by_fault.setdefault(fault, [0, 0])
        hit[0] += flagged
        hit[1] += 1
        if fault == "ok":
            ok_pages += 1
            ok_flagged += flagged
            if name(r) in lossy:
                own_losses += 1
                own_flagged += flagged
        elif flagged:
            tp += 1
        else:
            fn += 1
            print(
                f"  missed: {name(r)} {fault} coverage {r.stats.text_coverage} "
                f"unsupported {r.stats.unsupported}",
                flush=True,
            )
        if flagged and fault == "ok":
            fp += 1
    clean_verified = [
        r for r in clean.results if r.stats.verification != "unverified" and r.page.status == "ok"
    ]
    clean_flagged = [r for r in clean_verified if r.stats.verification == "flagged"]
    for r in clean_flagged:
        print(
            f"  clean page flagged: {name(r)} coverage {r.stats.text_coverage} "
            f"unsupported {r.stats.unsupported}",
            flush=True,
        )
    coverages = [r.stats.text_coverage for r in clean_verified]
    return {
        "pages": len(faulty.results),
        "verified": len(clean_verified),
        "unverified": [name(r) for r in clean.results if r.stats.verification == "unverified"],
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "ok_flagged": ok_flagged,
        "ok_pages": ok_pages,
        "own_losses": own_losses,
        "own_flagged": own_flagged,
        "clean_flagged": len(clean_flagged),
        "clean_pages": len(clean_verified),
        "clean_coverage": statistics.fmean(coverages) if coverages else 0.0,
        "clean_coverage_min": min(coverages, default=0.0),
        "clean_unsupported": statistics.fmean(r.stats.unsupported for r in clean_verified),
        "by_fault": by_fault,
        "ratios": {name(r): r.stats.compression_ratio for r in clean.results},
        "cut": cut,
        "unknown": unknown,
        "clean_cut": [
            f"{name(r)} ({r.page.status}, {r.stats.verification})"
            for r in clean.results
            if r.page.status != "ok"
        ],
        "clean_flagged_pages": [
            f"{name(r)} ({r.stats.text_coverage:.2f} covered)" for r in clean_flagged
        ],
        "clean_results": clean.results,
    }


# --- 2. repair ------------------------------------------------------------------------------


def _lines(r: PageResult) -> list[tuple[str, ...]]:
    out = []
    for b in r.page.blocks:
        for line in b.text.splitlines():
            toks = tuple(tokens(line))
            if len(toks) >= 4:
                out.append(toks)
    return out


def _order_breaks(repaired: list[tuple[str, ...]], clean: list[tuple[str, ...]]) -> int:
    """Lines of the repaired page that come before a line they followed in the clean reading."""
    where = {line: i for i, line in enumerate(clean)}
    seq = [where[line] for line in repaired if line in where]
    return sum(1 for a, b in itertools.pairwise(seq) if b < a)


def repair(
    docs: Sequence[Doc],
    base: Base,
    clean: list[PageResult],
    thumbs: Thumbs,
) -> dict[str, Any]:
    plan = ContentFaultPlan(compress_ratio=COMPRESS_RATIO, compress_drop=COMPRESS_DROP, seed=13)
    before = {name(r): r for r in clean}
    out: dict[str, Any] = {}
    for label, options in (
        ("tiles", {"verify": "repair", "repair_budget": 4.0}),
        ("tiles+gap_fill", {"verify": "repair", "repair_budget": 4.0, "gap_fill": True}),
    ):
        run = load(docs, base, plan, thumbs, repair_tile_ratio=TILE_RATIO, **options)
        affected = [
            r
            for r in run.results
            if run.faults.get(name(r)) == "compress" and r.stats.text_coverage >= 0
        ]
        recovered, absolute, dupes, breaks, outside = [], [], 0, 0, 0
        for r in affected:
            c = before[name(r)]
            recovered.append(min(1.0, r.stats.text_coverage / c.stats.text_coverage))
            absolute.append(r.stats.text_coverage)
            lines, clean_lines = _lines(r), _lines(c)
            dupes += max(
                0, (len(lines) - len(set(lines))) - (len(clean_lines) - len(set(clean_lines)))
            )
            breaks += _order_breaks(lines, clean_lines) - _order_breaks(clean_lines, clean_lines)
            for region in r.page.regions():
                x0, y0, x1, y1 = region.bbox
                if not (
                    0 <= x0 <= x1 <= r.page.width + 1e-6 and 0 <= y0 <= y1 <= r.page.height + 1e-6
                ):
                    outside += 1
        out[label] = {
            "affected": len(affected),
            "repaired": sum(r.stats.verification == "repaired" for r in affected),
            "methods": sorted({r.stats.repair_method for r in affected}),
            "before": statistics.fmean(
                r.stats.text_coverage - r.stats.coverage_gain for r in affected
            )
            if affected
            else 0.0,
            "recovered_mean": statistics.fmean(recovered) if recovered else 0.0,
            "recovered_min": min(recovered, default=0.0),
            "coverage_mean": statistics.fmean(absolute) if absolute else 0.0,
            "duplicated_lines": dupes,
            "order_breaks": breaks,
            "boxes_outside": outside,
            "extra_requests": sum(r.stats.extra_requests for r in run.results),
            "pages": len(run.results),
            "seconds": run.seconds,
        }
        for r in affected:
            c = before[name(r)]
            print(
                f"  {label}: {name(r)} clean {c.stats.text_coverage:.3f} final "
                f"{r.stats.text_coverage:.3f} ({r.stats.repair_method or 'not repaired'})",
                flush=True,
            )
    # the default budget (0.2) over one load of the documents read whole, two tiles a page
    whole = [d for d in docs if d[1] is None]
    budget = load(
        whole,
        base,
        plan,
        thumbs,
        one_load=True,
        verify="repair",
        repair_tile_ratio=TILE_RATIO,
        repair_max_requests=2,
    )
    extra = sum(r.stats.extra_requests for r in budget.results)
    out["budget"] = {
        "pages": len(budget.results),
        "extra_requests": extra,
        "bound": int(0.2 * len(budget.results) + 1e-9),
        "requests_sent": budget.requests,
        "repaired": sum(r.stats.verification == "repaired" for r in budget.results),
    }
    return out


# --- 3. garbage layers ----------------------------------------------------------------------


def mangle(word: str, rng: random.Random) -> str:
    """A word as a poor OCR layer writes it: letters swapped for look-alikes and symbols."""
    swaps = "«»*|¦~^¢3015lrnIOe"
    chars = list(word)
    for i in range(len(chars)):
        if rng.random() < 0.3:
            chars[i] = rng.choice(swaps)
        elif rng.random() < 0.15:
            chars[i] = chars[i].swapcase()
    return "".join(chars)


def garbage(paths: Sequence[tuple[Path, str | None]]) -> dict[str, Any]:
    from ocr_loaders._verify.garbage import layer_quality

    pages = alarms = detected = 0
    rng = random.Random(5)
    alarm_pages = []
    for path, password in paths:
        with pymupdf.open(path) as doc:
            if password:
                doc.authenticate(password)
            for page in doc:
                layer = read_text_layer(page)
                if layer.state == "none":
                    continue
                pages += 1
                if layer.state == "garbage":
                    alarms += 1
                    alarm_pages.append(f"{path.name} p{page.number + 1}")
                mangled = [mangle(w.text, rng) for w in layer.words]
                detected += layer_quality(mangled).garbage
    return {
        "pages": pages,
        "false_alarms": alarms,
        "alarm_pages": alarm_pages,
        "detected": detected,
    }


# --- 4. CPU -----------------------------------------------------------------------------------


def cpu(pages: int = 120, rounds: int = 16) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from run import SERVICE, SLOTS, fake_server, make_long_pdf, run_cli

    work = Path(tempfile.mkdtemp(prefix="ocr-verify-cpu-"))
    pdf = work / "long.pdf"
    make_long_pdf(pdf, pages)
    per_page: dict[str, list[float]] = {"off": [], "flag": []}
    with fake_server(SLOTS, SERVICE) as (url, _proc):
        for i in range(rounds):
            for mode in ("off", "flag") if i % 2 == 0 else ("flag", "off"):
                r = run_cli(
                    pdf,
                    url,
                    work / f"o-{mode}-{i}",
                    "--concurrency",
                    "64",
                    "--no-cache",
                    "--verify",
                    mode,
                )
                per_page[mode].append(r.cpu_s / r.pages * 1000)
                print(f"  cpu {mode}: {per_page[mode][-1]:.1f} ms/page", flush=True)
    # the cross-check's own work per page, in this process, on the same document
    from ocr_loaders._grounding import format_grounded, parse_grounded
    from ocr_loaders._verify.matching import check_page
    from ocr_loaders.testing.responders import grid_page

    spent = 0.0
    with pymupdf.open(pdf) as doc:
        n = min(60, doc.page_count)
        for i in range(n):
            page = doc[i]
            answer = parse_grounded(format_grounded(grid_page(1190, 1684, "image/png", i)))
            drawn = page.get_displaylist()  # the renderer draws from it in any case
            t = time.process_time()
            text = pymupdf.TextPage(drawn.get_textpage(flags=pymupdf.TEXT_MEDIABOX_CLIP))
            layer = read_text_layer(page, text)
            check_page(layer.words, answer, page.rect.width, page.rect.height, geometry=False)
            spent += time.process_time() - t
    return {
        "pages": pages,
        "off_ms": statistics.median(per_page["off"]),
        "flag_ms": statistics.median(per_page["flag"]),
        "runs": per_page,
        "check_ms": spent / n * 1000,
    }


# --- the report -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-cpu", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-ocr", action="store_true", help="only the layer responder")
    parser.add_argument(
        "--ocr-repair", action="store_true", help="also repair with real OCR (slow: tiles)"
    )
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"skipped: the shared corpus is not at {CORPUS}")
        return 0
    docs = [
        (CORPUS / f, QUICK.get(f, pages) if args.quick else pages, pw)
        for f, pages, pw in DOCUMENTS
        if (CORPUS / f).is_file()
    ]
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    results["garbage"] = garbage(
        [(CORPUS / f, pw) for f, _p, pw in DOCUMENTS if (CORPUS / f).is_file()]
    )
    print("garbage:", results["garbage"], flush=True)
    thumbs = page_thumbs(docs)
    bases: dict[str, Base] = {"layer": LayerResponder(docs)}
    if not args.no_ocr:
        bases["ocr"] = CachedResponder()
    for label, base in bases.items():
        d = detection(docs, base, thumbs)
        print(
            f"{label} detection: precision {d['precision']:.3f} recall {d['recall']:.3f} "
            f"ok flagged {d['ok_flagged']}/{d['ok_pages']} "
            f"clean flagged {d['clean_flagged']}/{d['clean_pages']}",
            flush=True,
        )
        clean = d.pop("clean_results")
        results[label] = {"detection": d}
        if label == "layer" or args.ocr_repair:
            results[label]["repair"] = repair(docs, base, clean, thumbs)
            print(f"{label} repair:", results[label]["repair"], flush=True)
    if not args.no_cpu:
        results["cpu"] = cpu()
        print("cpu:", {k: v for k, v in results["cpu"].items() if k != "runs"}, flush=True)
    command = "python benchmarks/verification.py" + (" --quick" if args.quick else "")
    text = section(results, command)
    print(text)
    if not args.no_write:
        write_section(text)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
