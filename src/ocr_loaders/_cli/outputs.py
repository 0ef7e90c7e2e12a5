"""The files ``convert`` writes for each input: markdown, JSONL chunks and stats.

A document's files appear only once its first page is done, under ``.partial`` names
(``x.md.partial``, ``x.jsonl.partial``) that a glob over ``*.md`` or ``*.jsonl`` does not
pick up; they take their real names when the document is complete. A run that stops
mid-document leaves its finished pages in the ``.partial`` files with an
``x.stats.json.partial`` saying ``complete: false``; a document that produced nothing leaves
nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, Any

from .._figures import FigureFolder
from .._model import PageResult, SourceInfo
from .._records import Record
from .._stats import StatsAccumulator, Totals

PARTIAL = ".partial"
"""Suffix of a document's files until the document is complete."""

KINDS = ("md", "jsonl", "stats.json")


class DocOutput:
    """One input's output files, written as pages and chunks arrive (memory stays flat)."""

    def __init__(self, out_dir: Path, info: SourceInfo, stem: str) -> None:
        self.info = info
        self.stem = stem
        self.out_dir = out_dir
        self._figures = 0
        self.paths = {kind: out_dir / f"{stem}.{kind}" for kind in KINDS}
        self.acc = StatsAccumulator()
        self.pages_detail: list[dict[str, Any]] = []
        self.pages = 0
        self._md: IO[str] | None = None
        self._jsonl: IO[str] | None = None

    def figure_folder(self) -> FigureFolder:
        """Where this document's figure crops go: ``OUT/<stem>/images/``, linked from
        ``OUT/<stem>.md`` as ``<stem>/images/<name>``."""
        return FigureFolder(self.out_dir / self.stem / "images", f"{self.stem}/images/")

    def partial(self, kind: str) -> Path:
        """Where a file lives until the document is complete."""
        path = self.paths[kind]
        return path.with_name(path.name + PARTIAL)

    def _open(self) -> tuple[IO[str], IO[str]]:
        if self._md is None or self._jsonl is None:
            self._md = self.partial("md").open("w", encoding="utf-8")
            self._jsonl = self.partial("jsonl").open("w", encoding="utf-8")
        return self._md, self._jsonl

    def page(self, r: PageResult) -> None:
        md, _ = self._open()
        if self.pages:
            md.write("\n")
        md.write(page_block(r))
        self.pages += 1
        self.acc.engine, self.acc.model = r.engine, r.model
        self.acc.add(r.stats)
        self.pages_detail.append(
            {
                "page": r.page.number,
                "label": r.page.label,
                "status": r.page.status,
                "error": r.page.error,
                "vision_tokens": r.stats.vision_tokens,
                "text_tokens": r.stats.text_tokens,
                "output_tokens": r.stats.output_tokens,
                "compression_ratio": r.stats.compression_ratio,
                "risk": r.stats.risk,
                "latency_s": r.stats.latency_s,
                "attempts": r.stats.attempts,
                "cached": r.stats.cached,
                "image_size": [r.stats.image_width, r.stats.image_height],
                "downscaled": r.page.downscaled,
            }
        )

    def record(self, rec: Record) -> None:
        """A chunk goes to ``OUT/<stem>.jsonl``; a figure to ``OUT/<stem>/figures.jsonl``
        (next to its crop), so the chunk file keeps one line per chunk."""
        line = {"id": rec.id, "text": rec.text, "metadata": rec.metadata}
        if rec.figure is not None:
            path = self.out_dir / self.stem / "figures.jsonl"
            mode = "a" if self._figures else "w"  # a rerun replaces an earlier run's file
            self._figures += 1
            with path.open(mode, encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            return
        _, jsonl = self._open()
        jsonl.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _close(self) -> bool:
        """Close the files; ``False`` when none were ever opened."""
        opened = self._md is not None
        for fh in (self._md, self._jsonl):
            if fh is not None:
                fh.close()
        self._md = self._jsonl = None
        return opened

    def finish(self, totals: Totals) -> None:
        """The document is complete: its files take their real names, with its stats."""
        self._open()  # a document always has a page; should one not, its files still appear
        self._close()
        for kind in ("md", "jsonl"):
            self.partial(kind).replace(self.paths[kind])
        self.partial("stats.json").unlink(missing_ok=True)  # left by an earlier stopped run
        self._write_stats(self.paths["stats.json"], totals, complete=True)

    def abandon(self) -> None:
        """The run stopped inside this document: keep what is done as ``.partial`` files."""
        if self._close():
            self._write_stats(self.partial("stats.json"), self.acc.totals(), complete=False)

    def _write_stats(self, path: Path, totals: Totals, *, complete: bool) -> None:
        stats = stats_dict(totals, self.info, complete=complete)
        stats["pages_detail"] = self.pages_detail
        path.write_text(json.dumps(stats, indent=2), encoding="utf-8")


def safe_stem(name: str, taken: set[str]) -> str:
    """A file stem for outputs: the input's stem with unsafe characters replaced, made unique.

    Only the input's file name is used (never model output), so outputs stay in OUTDIR.
    """
    stem = Path(name).stem or "document"
    stem = re.sub(r"[^\w.\- ]", "_", stem).strip(". ") or "document"
    candidate, n = stem, 2
    while candidate.lower() in taken:
        candidate = f"{stem}-{n}"
        n += 1
    taken.add(candidate.lower())
    return candidate


def page_block(result: PageResult) -> str:
    """A page's section of the document markdown, with its marker comment."""
    page = result.page
    marker = f"<!-- page {page.number}"
    if page.label != str(page.number):
        marker += f" ({page.label})"
    if page.status != "ok":
        reason = page.error.replace("--", "- -")
        marker += f": {page.status}" + (f": {reason}" if reason else "")
    return f"{marker} -->\n\n{result.markdown}".rstrip() + "\n"


def stats_dict(
    totals: Totals, info: SourceInfo | None = None, *, complete: bool = True
) -> dict[str, Any]:
    """A stats file's content: the totals, with the document's identity when given."""
    data = totals.as_dict()
    if info is not None:
        data = {
            "source": info.source,
            "doc_hash": info.doc_hash,
            "total_pages": info.total_pages,
            **data,
        }
    data["complete"] = complete
    return data
