"""What ``convert`` tells the user on stderr: log lines, progress, the closing tables.

Everything goes through one rich :class:`~rich.console.Console`: log records too (see
:class:`ConsoleLogHandler`), so a log line is printed above the live progress bar instead of
over it. Pages per second is :class:`~ocr_loaders._stats.Throughput`'s figure everywhere: the
bar, the table's caption and the JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .._estimate import Estimate
from .._model import PageResult
from .._stats import Throughput, Totals

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class ConsoleLogHandler(logging.Handler):
    """Log records printed through a rich console, so they stay clear of its live display."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def setup_logging(console: Console, *, debug: bool, quiet: bool) -> None:
    """Root logging into ``console`` (as ``logging.basicConfig`` would into stderr):
    warnings, plus the project's INFO lines unless ``quiet``; everything with ``debug``."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(ConsoleLogHandler(console))
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not quiet and not debug:
        logging.getLogger("ocr_loaders").setLevel(logging.INFO)


@dataclass(frozen=True, slots=True)
class Failure:
    """A file that was skipped (``page`` is ``None``) or a page that failed, and why."""

    source: str
    reason: str
    page: int | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        return {"source": self.source, "page": self.page, "reason": self.reason}

    def __str__(self) -> str:
        where = self.source if self.page is None else f"{self.source}, page {self.page}"
        return f"{where}: {self.reason}"


class Reporter:
    """Progress on stderr: a live bar on a terminal, plain lines otherwise, nothing if quiet."""

    def __init__(self, console: Console, total: int, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.throughput = Throughput()
        self.progress: Progress | None = None
        if console.is_terminal and not quiet:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} pages/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self.task = self.progress.add_task("pages", total=total or None, rate="0.00")
            self.progress.start()

    def page_done(self, result: PageResult) -> None:
        """A page finished (in the order pages finish, which is not page order)."""
        self.throughput.add(result.stats)
        if self.progress is not None:
            rate = f"{self.throughput.pages_per_second:.2f}"
            self.progress.update(self.task, advance=1, rate=rate)

    def line(self, text: str) -> None:
        if not self.quiet:
            self.error(text)

    def error(self, text: str) -> None:
        """Errors print even with ``--quiet``."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


COLUMNS = (
    "document",
    "pages",
    "ok",
    "trunc.",
    "failed",
    "cached",
    "vision tok",
    "text tok",
    "ratio",
    ">10x",
    "sec",
    "note",
)


VERIFY_COLUMNS = ("flagged", "repaired")
"""Shown after ``>10x`` when the run checked pages against their text layer (``verify``)."""


def _columns(verified: bool) -> tuple[str, ...]:
    if not verified:
        return COLUMNS
    at = COLUMNS.index(">10x") + 1
    return COLUMNS[:at] + VERIFY_COLUMNS + COLUMNS[at:]


def _row(name: str, t: Totals, note: str = "", verified: bool = False) -> list[str]:
    row = _plain_row(name, t, note)
    if verified:
        at = COLUMNS.index(">10x") + 1
        v = t.verification
        row[at:at] = [str(v.pages_flagged), str(v.pages_repaired)]
    return row


def _plain_row(name: str, t: Totals, note: str = "") -> list[str]:
    return [
        name,
        str(t.pages),
        str(t.pages_ok),
        str(t.pages_truncated),
        str(t.pages_failed),
        str(t.pages_cached),
        str(t.vision_tokens),
        str(t.text_tokens),
        f"{t.compression_ratio:.2f}",
        str(t.pages_over_10x),
        f"{t.seconds:.2f}" if t.seconds < 10 else f"{t.seconds:.1f}",
        note,
    ]


def _pages_note(source: str, failures: list[Failure]) -> str:
    failed = [str(f.page) for f in failures if f.source == source and f.page is not None]
    return f"failed page(s) {', '.join(failed)}" if failed else ""


def stats_table(
    per_doc: list[tuple[str, str, Totals]], skipped: list[Failure], run: Totals
) -> Table:
    """One row per converted document (``(name, source, totals)``), one per skipped file with
    its reason, and the run's totals; the caption has the run's pages/s."""
    table = Table(title="ocr-loaders: run statistics", show_lines=False)
    verified = run.verification.pages_verified > 0 or run.verification.pages_repaired > 0
    columns = _columns(verified)
    for col in columns:
        left = col in ("document", "note")
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    page_failures = [f for f in skipped if f.page is not None]
    for name, source, t in per_doc:
        table.add_row(*_row(name, t, _pages_note(source, page_failures), verified))
    for f in skipped:
        if f.page is None:
            dashes = ["-"] * (len(columns) - 2)
            name = Path(f.source).name or f.source
            table.add_row(name, *dashes, f"skipped: {f.reason}", style="red")
    if len(per_doc) + len(skipped) != 1:
        table.add_row(*_row("all documents", run, verified=verified), style="bold")
    caption = f"engine {run.engine} | model {run.model} | {run.pages_per_second:.2f} pages/s"
    if run.output_tokens:
        caption += f" | {run.output_tokens_per_second:.0f} output tok/s"
    table.caption = caption
    return table


def estimate_table(est: Estimate) -> Table:
    """The dry run's table: pages and vision tokens per document (the cost is
    :func:`estimate_summary`, printed after it)."""
    table = Table(title="ocr-loaders: dry run (nothing sent)")
    for col in ("document", "pages", "vision tok", "note"):
        table.add_column(col, justify="right" if col in ("pages", "vision tok") else "left")
    for d in est.documents:
        table.add_row(d.source, str(d.pages), str(d.vision_tokens), "")
    for s in est.skipped:
        table.add_row(s.source, "-", "-", f"skipped: {s.reason}", style="red")
    table.add_row("all documents", str(est.pages), str(est.vision_tokens), "", style="bold")
    return table


def estimate_summary(est: Estimate) -> str:
    """The cost of a run in one line."""
    return (
        f"{est.requests} request(s), {est.vision_tokens} vision tokens at {est.dpi} dpi "
        f"({est.model}); GPU time ~{format_duration(est.gpu_seconds)} "
        f"at an assumed {est.pages_per_second:g} pages/s"
    )


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
