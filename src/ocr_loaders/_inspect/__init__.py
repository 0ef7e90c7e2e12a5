"""The visual inspector: one self-contained HTML report per converted document.

``OUT/<stem>.html`` shows every page with every block's box drawn over it, the chunk list
beside the pages (select a chunk to highlight its regions, a box to see its chunks), and a
summary of flagged pages and compression ratios. It is built from what ``convert`` wrote
(:mod:`.report`), with page images rendered from the source file (:mod:`.images`) and the
per-page blocks ``convert --html`` keeps (:mod:`.layout`); :mod:`.page` writes the HTML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._errors import CorruptInputError, InputNotFoundError
from .._passwords import Password
from .images import PageImages, render_page_images
from .layout import LAYOUT_FILE, LayoutWriter, PageLayout, read_layouts
from .page import render_html
from .report import ChunkLine, parse_chunk_line, report_data

__all__ = ["LayoutWriter", "layout_path", "write_inspector", "write_report"]

STATS_SUFFIX = ".stats.json"
PARTIAL = ".partial"


def layout_path(out_dir: Path, stem: str) -> Path:
    """Where ``convert --html`` keeps a document's per-page blocks."""
    return out_dir / stem / LAYOUT_FILE


def _existing(path: Path) -> Path | None:
    """``path``, or its ``.partial`` twin left by a stopped run, or ``None``."""
    for candidate in (path, path.with_name(path.name + PARTIAL)):
        if candidate.is_file():
            return candidate
    return None


def _read_stats(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptInputError(f"cannot read the stats file ({exc})", path=str(path)) from exc
    if not isinstance(data, dict):
        raise CorruptInputError("the stats file is not a JSON object", path=str(path))
    return data


def _read_chunks(path: Path | None, *, figure: bool = False) -> list[ChunkLine]:
    if path is None:
        return []
    out: list[ChunkLine] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(parse_chunk_line(line, figure=figure))
            except ValueError as exc:
                raise CorruptInputError(f"line {n} is not a chunk: {exc}", path=str(path)) from exc
    return out


def write_report(
    out_dir: str | Path,
    stem: str,
    *,
    password: Password = None,
    images: bool = True,
    trusted_hash: bool = False,
) -> Path:
    """Write ``OUT/<stem>.html`` from the files ``convert`` wrote for ``stem``; its path.

    ``images=False`` draws boxes on blank pages instead of rendering the source's pages.
    """
    out = Path(out_dir)
    stats_path = _existing(out / f"{stem}{STATS_SUFFIX}")
    if stats_path is None:
        raise InputNotFoundError(
            f"no {stem}{STATS_SUFFIX} here: run `ocr-loaders convert` first", path=str(out)
        )
    stats = _read_stats(stats_path)
    chunks = _read_chunks(_existing(out / f"{stem}.jsonl"))
    chunks += _read_chunks(_existing(out / stem / "figures.jsonl"), figure=True)
    layout_file = layout_path(out, stem)
    layouts: dict[int, PageLayout] = read_layouts(layout_file) if layout_file.is_file() else {}
    numbers = {int(d["page"]) for d in stats.get("pages_detail", []) if "page" in d}
    numbers |= set(layouts)
    notes: list[str] = []
    if not stats.get("complete", True):
        notes.append("the run stopped inside this document: only its finished pages are shown")
    shown = PageImages({})
    if images:
        file_path = next(
            (str(c.metadata["file_path"]) for c in chunks if c.metadata.get("file_path")),
            str(stats.get("source", "")),
        )
        shown = render_page_images(
            file_path,
            str(stats.get("doc_hash", "")),
            numbers,
            out,
            stem,
            password=password,
            trusted_hash=trusted_hash,
        )
        if shown.note:
            notes.append(shown.note)
    data = report_data(
        stats,
        chunks,
        layouts,
        shown.files,
        frames=shown.frames,
        title=str(Path(str(stats.get("source", stem))).name or stem),
        notes=notes,
    )
    target = out / f"{stem}.html"
    target.write_text(render_html(data), encoding="utf-8")
    return target


def write_inspector(
    out_dir: str | Path,
    stem: str | None = None,
    *,
    password: Password = None,
    images: bool = True,
) -> list[Path]:
    """Write ``OUT/<stem>.html`` for one document, or for every document in ``out_dir``.

    Reads what ``ocr-loaders convert`` wrote there; with ``convert --html`` every block's box
    is drawn, otherwise only the boxes of chunk regions. ``password`` opens encrypted sources
    to render their pages (the same forms as the loaders' ``password``). Returns the paths.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise InputNotFoundError("no such output folder", path=str(out))
    if stem is not None:
        return [write_report(out, stem, password=password, images=images)]
    stems = sorted(
        {
            p.name.split(STATS_SUFFIX)[0]
            for p in out.iterdir()
            if p.name.endswith((STATS_SUFFIX, STATS_SUFFIX + PARTIAL))
        }
    )
    if not stems:
        raise InputNotFoundError(
            f"no *{STATS_SUFFIX} in this folder: run `ocr-loaders convert` first", path=str(out)
        )
    return [write_report(out, s, password=password, images=images) for s in stems]
