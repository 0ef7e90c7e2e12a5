"""The inspector's data: what ``convert`` wrote for one document, joined page by page.

Pure functions over already-parsed files: the page stats (``pages_detail`` of
``<stem>.stats.json``), the chunks (``<stem>.jsonl`` and ``<stem>/figures.jsonl``), the page
layouts (``<stem>/pages.jsonl``, optional) and the page images. Every chunk region is matched
to the block box it came from; a region with no block (no layout file, or a box the layout does
not hold) becomes a box of its own, so every region is drawn and every box knows its chunks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._model import BBox
from .layout import LaidBlock, PageLayout, as_bbox, rounded

FLAG_ORDER = ("failed", "truncated", "lossy", "low coverage", "at risk")
"""Why a page is flagged, worst first; the summary lists flagged pages in this order."""

LOW_COVERAGE = 0.9
"""A page whose ``text_coverage`` (from verification, when present) is below this is flagged."""

RATIO_BINS = (0, 0.5, 1, 2, 3, 4, 6, 8, 10, 12, 15, 20, 25)
"""Lower edges of the compression-ratio histogram's bins (the last one is open)."""


@dataclass(frozen=True, slots=True)
class ChunkLine:
    """One line of the chunk file (or of ``figures.jsonl``): id, text and flat metadata."""

    id: str
    text: str
    metadata: Mapping[str, Any]
    figure: bool = False


def parse_chunk_line(line: str, *, figure: bool = False) -> ChunkLine:
    """A JSONL line as ``convert`` writes it (``ValueError`` if it is not one)."""
    data = json.loads(line)
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        raise ValueError("expected an object with id, text and metadata")
    return ChunkLine(str(data.get("id", "")), str(data.get("text", "")), data["metadata"], figure)


def _regions(meta: Mapping[str, Any]) -> list[tuple[int, str, BBox]]:
    raw = meta.get("regions", "[]")
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
        return [(int(r["page"]), str(r["label"]), rounded(as_bbox(r["bbox"]))) for r in items]
    except (ValueError, TypeError, KeyError):
        return []


def flags(detail: Mapping[str, Any]) -> list[str]:
    """Why a page deserves a look (empty: it does not), worst first."""
    out: list[str] = []
    status = detail.get("status")
    if status in ("failed", "truncated"):
        out.append(str(status))
    if detail.get("risk") == "lossy":
        out.append("lossy")
    coverage = detail.get("text_coverage")
    if isinstance(coverage, (int, float)) and coverage < LOW_COVERAGE:
        out.append("low coverage")
    if detail.get("risk") == "at_risk":
        out.append("at risk")
    return out


def histogram(ratios: Sequence[float]) -> list[dict[str, Any]]:
    """Pages per compression-ratio bin: ``{"lo", "hi" (None: open), "count"}``."""
    counts = [0] * len(RATIO_BINS)
    for r in ratios:
        counts[max((k for k, lo in enumerate(RATIO_BINS) if r >= lo), default=0)] += 1
    return [
        {"lo": lo, "hi": RATIO_BINS[i + 1] if i + 1 < len(RATIO_BINS) else None, "count": n}
        for i, (lo, n) in enumerate(zip(RATIO_BINS, counts, strict=True))
    ]


def _missed(detail: Mapping[str, Any]) -> list[list[float]]:
    """Missed regions reported by verification, if any, as page-unit boxes."""
    out: list[list[float]] = []
    raw = detail.get("missed_regions") or []
    if not isinstance(raw, list):
        return out
    for item in raw:
        box = item.get("bbox") if isinstance(item, dict) else item
        if not isinstance(box, (list, tuple)):
            continue
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            continue
        out.append([x0, y0, x1, y1])
    return out


def _verification(detail: Mapping[str, Any]) -> str:
    value = detail.get("verification")
    if value is None or value == "":
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass
class _PageBoxes:
    """Boxes of one page being assembled: ``key -> index`` for matching chunk regions."""

    boxes: list[dict[str, Any]]
    index: dict[tuple[str, BBox], int]


def _page_boxes(layout: PageLayout | None) -> _PageBoxes:
    page = _PageBoxes([], {})
    blocks: tuple[LaidBlock, ...] = layout.blocks if layout is not None else ()
    for block in blocks:
        for bbox in block.boxes:
            key = (block.label, rounded(bbox))
            page.index.setdefault(key, len(page.boxes))
            page.boxes.append(
                {
                    "order": block.order,
                    "label": block.label,
                    "text": block.text,
                    "bbox": list(bbox),
                    "chunks": [],
                }
            )
    return page


def report_data(
    stats: Mapping[str, Any],
    chunks: Sequence[ChunkLine],
    layouts: Mapping[int, PageLayout],
    images: Mapping[int, str],
    *,
    frames: Mapping[int, tuple[float, float]] | None = None,
    title: str,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything the page script draws, as one JSON-ready object.

    Boxes are numbered per page; a chunk lists ``[page, box]`` pairs and a box lists the
    indexes of the chunks holding it. A page's frame comes from its layout, else from
    ``frames`` (the source file's page sizes), else US letter.
    """
    details: list[Mapping[str, Any]] = [d for d in stats.get("pages_detail", []) if "page" in d]
    numbers = sorted({int(d["page"]) for d in details} | set(layouts))
    by_page = {int(d["page"]): d for d in details}
    boxes = {n: _page_boxes(layouts.get(n)) for n in numbers}
    chunk_items: list[dict[str, Any]] = []
    for k, chunk in enumerate(chunks):
        meta = chunk.metadata
        refs: list[list[int]] = []
        for page_no, label, bbox in _regions(meta):
            page = boxes.get(page_no)
            if page is None:
                page = boxes[page_no] = _page_boxes(None)
            at = page.index.get((label, bbox))
            if at is None:  # a region no block holds: draw it anyway
                at = page.index[(label, bbox)] = len(page.boxes)
                page.boxes.append(
                    {"order": None, "label": label, "text": "", "bbox": list(bbox), "chunks": []}
                )
            if k not in page.boxes[at]["chunks"]:
                page.boxes[at]["chunks"].append(k)
            refs.append([page_no, at])
        chunk_items.append(
            {
                "id": chunk.id,
                "figure": chunk.figure,
                "index": meta.get("chunk_index"),
                "text": chunk.text,
                "heading": str(meta.get("heading", "")),
                "page_start": meta.get("page_start"),
                "page_end": meta.get("page_end"),
                "status": str(meta.get("ocr_status", "")),
                "labels": str(meta.get("block_types", "")),
                "coverage": meta.get("text_coverage"),
                "regions": refs,
            }
        )
    pages: list[dict[str, Any]] = []
    for n in sorted(boxes):
        d = by_page.get(n, {})
        layout = layouts.get(n)
        if layout is not None:
            width, height = layout.width, layout.height
        else:
            width, height = (frames or {}).get(n, (612.0, 792.0))
        pages.append(
            {
                "page": n,
                "label": str(d.get("label", layout.label if layout is not None else n)),
                "width": width,
                "height": height,
                "status": str(d.get("status", "unknown")),
                "error": str(d.get("error") or ""),
                "ratio": d.get("compression_ratio"),
                "risk": str(d.get("risk", "")),
                "vision_tokens": d.get("vision_tokens"),
                "text_tokens": d.get("text_tokens"),
                "cached": bool(d.get("cached", False)),
                "coverage": d.get("text_coverage"),
                "verification": _verification(d),
                "missed": _missed(d),
                "flags": flags(d),
                "image": images.get(n),
                "boxes": boxes[n].boxes,
            }
        )
    return {
        "title": title,
        "source": str(stats.get("source", "")),
        "engine": str(stats.get("engine", "")),
        "model": str(stats.get("model", "")),
        "complete": bool(stats.get("complete", True)),
        "layout": bool(layouts),
        "notes": list(notes),
        "totals": {
            k: stats.get(k)
            for k in ("pages", "pages_ok", "pages_truncated", "pages_failed", "vision_tokens")
            if k in stats
        }
        | {"compression_ratio": stats.get("compression_ratio")},
        "histogram": histogram(
            [float(d["compression_ratio"]) for d in details if _number(d.get("compression_ratio"))]
        ),
        "flag_order": list(FLAG_ORDER),
        "pages": pages,
        "chunks": chunk_items,
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
