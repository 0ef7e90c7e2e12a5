"""The report of ``benchmarks/verification.py``: its settings, its section of
docs/benchmarks.md."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC_OUT = ROOT / "docs" / "benchmarks.md"
SECTION = "## Verification against the text layer"
RATES = {"drop_blocks": 0.12, "truncate_text": 0.12, "made_up": 0.12, "other_page": 0.12}
SHARE = 0.4
COMPRESS_RATIO = 0.4
TILE_RATIO = COMPRESS_RATIO / 2
"""``repair_tile_ratio`` for the stand-in: half its threshold, as the default 5.0 is half the
``at_risk`` band's 10 for DeepSeek-OCR."""
COMPRESS_DROP = 0.4


def _detection_rows(label: str, d: dict[str, Any]) -> list[str]:
    tp, fp, fn = d["tp"], d["fp"], d["fn"]
    return [
        f"| {label} | {d['pages']} ({d['verified']}) | {d['precision']:.3f} ({tp}/{tp + fp}) "
        f"| {d['recall']:.3f} ({tp}/{tp + fn}) | {d['ok_flagged']}/{d['ok_pages']} "
        f"| {d['clean_flagged']}/{d['clean_pages']} "
        f"| {d['clean_coverage']:.3f} / {d['clean_coverage_min']:.3f} "
        f"| {d['clean_unsupported']:.3f} |"
    ]


def _repair_rows(label: str, rep: dict[str, Any]) -> list[str]:
    rows = []
    for how in ("tiles", "tiles+gap_fill"):
        x = rep[how]
        rows.append(
            f"| {label} | {how} | {x['affected']} | {x['repaired']} | {x['before']:.3f} "
            f"| {x['coverage_mean']:.3f} | {x['recovered_mean']:.3f} / {x['recovered_min']:.3f} "
            f"| {x['duplicated_lines']} | {x['order_breaks']} | {x['boxes_outside']} "
            f"| {x['extra_requests']} / {x['pages']} |"
        )
    return rows


def section(r: dict[str, Any], command: str) -> str:
    g = r["garbage"]
    rates = ", ".join(f"{k} {v:.0%}" for k, v in RATES.items())
    lines = [
        SECTION,
        "",
        f"Measured with `{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        "shared); what is checked and how: [verification.md](verification.md). Two responders "
        "answer for the fake server: **layer** (the local engine's reading of the page's own "
        "text layer: the page's real content without OCR noise, so the faults are the only "
        "loss) and **ocr** (RapidOCR on the image the loader sent: real OCR, with its real "
        "misses).",
        "",
        f'**Detection** (`verify="flag"`, default thresholds: coverage < 0.85 or unsupported '
        f"> 0.25). Faults injected at {rates}, each touching {SHARE:.0%} of a page's words. "
        "Targets: precision and recall >= 0.9, correct pages flagged < 5 %.",
        "",
        "| responder | pages (verified) | precision | recall | correct pages flagged (faulty run) "
        "| pages flagged (clean run) | clean coverage mean / min | clean unsupported mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in ("layer", "ocr"):
        if label in r:
            lines += _detection_rows(label, r[label]["detection"])
    for label in ("layer", "ocr"):
        if label in r:
            d = r[label]["detection"]
            by = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(d["by_fault"].items()))
            lines += ["", f"Flags by fault ({label}): {by}."]
            if d["clean_cut"]:
                lines.append(
                    f"Pages the server cut at `max_tokens` ({label}; not counted as correct "
                    "answers): " + ", ".join(d["clean_cut"]) + "."
                )
            if d["clean_flagged_pages"]:
                lines.append(
                    f"Clean pages flagged ({label}): " + ", ".join(d["clean_flagged_pages"]) + "."
                )
            if d["own_losses"]:
                tp, fp, own = d["tp"], d["fp"], d["own_flagged"]
                ok = d["ok_pages"] - d["own_losses"]
                lines.append(
                    f"Counting the responder's own losses as faults ({label}: "
                    f"{d['own_losses']} pages answered without an injected fault whose clean "
                    "reading is flagged too, i.e. the OCR really lost their text): precision "
                    f"{(tp + own) / (tp + fp) if tp + fp else 1.0:.3f} "
                    f"({tp + own}/{tp + fp}), correct pages flagged "
                    f"{d['ok_flagged'] - own}/{ok}."
                )
    lines += [
        "",
        '**Repair** (`verify="repair"`, `repair_budget=4.0`: every page may spend its 4 '
        "requests). Stand-in for compression "
        f"loss: a whole-page answer with more than {COMPRESS_RATIO} text tokens per vision "
        f"token loses {COMPRESS_DROP:.0%} of its words (by blocks); tiles answer fully; "
        f"`repair_tile_ratio={TILE_RATIO}` (half the stand-in's threshold, as the default 5.0 "
        "is half the `at_risk` band's 10). "
        "Recovered: final coverage / the clean reading's coverage, per affected page.",
        "",
        "| responder | repair | affected pages | repaired | coverage before | coverage after "
        "| recovered mean / min | duplicated lines | lines out of order | boxes outside "
        "| extra requests / pages |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in ("layer", "ocr"):
        if label in r and "repair" in r[label]:
            lines += _repair_rows(label, r[label]["repair"])
    for label in ("layer", "ocr"):
        if label in r and "repair" in r[label]:
            b = r[label]["repair"]["budget"]
            lines += [
                "",
                f"Default budget ({label}, `repair_budget=0.2`, one load of the "
                f"{b['pages']} pages of the documents read whole, `repair_max_requests=2`): "
                f"{b['extra_requests']} extra requests (bound floor(0.2 x {b['pages']}) = "
                f"{b['bound']}); {b['requests_sent']} requests reached the server; "
                f"{b['repaired']} pages repaired.",
            ]
    lines += [
        "",
        f"**Garbage layers**: {g['false_alarms']} false alarms over the {g['pages']} pages of "
        "the digital corpus with text (every page, formulas included); the same pages' words "
        f"mangled as a poor OCR layer would write them: {g['detected']} of {g['pages']} "
        "detected.",
    ]
    c = r.get("cpu")
    if c:
        pairs = sorted(
            (f / o - 1) * 100 for f, o in zip(c["runs"]["flag"], c["runs"]["off"], strict=True)
        )
        change = statistics.median(pairs)
        lines += [
            "",
            f"**Cost** (`benchmarks/run.py`'s CLI run: {c['pages']} pages of the long German "
            f"document, grid responder, concurrency 64; {len(pairs)} rounds, each an `off` and "
            "a `flag` run back to back in alternating order): client CPU "
            f"{c['off_ms']:.1f} ms/page with `--verify off`, {c['flag_ms']:.1f} ms/page with "
            f"`--verify flag` (medians); the change within a round, median {change:+.1f} % "
            f"(from {pairs[0]:+.1f} % to {pairs[-1]:+.1f} %; target < +10 %). The "
            "cross-check's own work (the words from the page's display list, the layer's "
            "verdict and the counts compared with the answer's), timed alone: "
            f"{c['check_ms']:.2f} ms/page. "
            + (
                "Above the target." if change >= 10 else "Within the target: `flag` is the default."
            ),
        ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md."""
    from doc_sections import replace_section  # benchmarks/ is on sys.path when run

    replace_section(DOC_OUT, SECTION, text)
