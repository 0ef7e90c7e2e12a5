"""The ``ocr-loaders`` command line (also ``python -m ocr_loaders``).

``ocr-loaders convert PATH... -o OUTDIR`` writes, for each input, ``<stem>.md`` (clean markdown,
pages separated by ``<!-- page N -->`` markers), ``<stem>.jsonl`` (one chunk per line:
``{"id", "text", "metadata"}``) and ``<stem>.stats.json``; shows a progress bar on a terminal
and a stats table at the end. Exit status: 0 all pages ok; 1 some pages truncated or failed, or
the OCR server could not be reached (outputs of finished documents are still written); 2 usage
errors and inputs that cannot be read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
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

from ._config import LoaderOptions
from ._errors import ConfigError, EngineError, InputError, OCRLoadersError
from ._model import PageResult, SourceInfo
from ._pipeline import DocumentFinished, DocumentStarted
from ._records import Record
from ._run import Run
from ._sources import resolve_inputs
from ._stats import StatsAccumulator, Totals

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="DeepSeek-OCR document loaders: convert PDFs and scans to markdown and RAG-ready chunks.",
)
log = logging.getLogger("ocr_loaders")

EXIT_OK, EXIT_PAGES, EXIT_USAGE = 0, 1, 2


@app.callback()
def _root() -> None:
    """DeepSeek-OCR document loaders."""


class _DocOutput:
    """One input's output files, written as pages and chunks arrive (memory stays flat).

    Files are written under temporary names and renamed when the document is done, so a
    killed run never leaves a half-written ``.md`` looking complete.
    """

    def __init__(self, out_dir: Path, info: SourceInfo, stem: str) -> None:
        self.info = info
        self.stem = stem
        self.paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "jsonl", "stats.json")}
        self._md = (out_dir / f".{stem}.md.part").open("w", encoding="utf-8")
        self._jsonl = (out_dir / f".{stem}.jsonl.part").open("w", encoding="utf-8")
        self.acc = StatsAccumulator()
        self.pages_detail: list[dict[str, Any]] = []
        self.pages = 0

    def page(self, r: PageResult) -> None:
        if self.pages:
            self._md.write("\n")
        self._md.write(page_block(r))
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
        self._jsonl.write(
            json.dumps(
                {"id": rec.id, "text": rec.text, "metadata": rec.metadata}, ensure_ascii=False
            )
            + "\n"
        )

    def finish(self, totals: Totals | None = None, *, complete: bool = True) -> None:
        """Close the files, move them into place and write the stats."""
        for fh, ext in ((self._md, "md"), (self._jsonl, "jsonl")):
            fh.close()
            Path(fh.name).replace(self.paths[ext])
        stats = stats_dict(totals or self.acc.totals(), self.info, complete=complete)
        stats["pages_detail"] = self.pages_detail
        self.paths["stats.json"].write_text(json.dumps(stats, indent=2), encoding="utf-8")


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


class _Reporter:
    """Progress on stderr: a live bar on a terminal, plain lines otherwise, nothing if quiet."""

    def __init__(self, console: Console, total: int, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self.progress: Progress | None = None
        if self.live:
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
            self.task = self.progress.add_task("pages", total=total or None, rate="0.0")
            self.progress.start()

    def page(self, result: PageResult) -> None:
        self.done += 1
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, rate=f"{rate:.1f}")

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def error(self, text: str) -> None:
        """Errors print even with ``--quiet``."""
        console = self.progress.console if self.progress is not None else self.console
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _stats_table(per_doc: list[tuple[str, Totals]], run: Totals) -> Table:
    table = Table(title="ocr-loaders: run statistics", show_lines=False)
    for col in (
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
    ):
        table.add_column(col, justify="left" if col == "document" else "right")

    def row(name: str, t: Totals) -> list[str]:
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
            f"{t.seconds:.1f}",
        ]

    for name, t in per_doc:
        table.add_row(*row(name, t))
    if len(per_doc) != 1:
        table.add_row(*row("all documents", run), style="bold")
    caption = f"engine {run.engine} | model {run.model} | {run.pages_per_second:.2f} pages/s"
    if run.output_tokens:
        caption += f" | {run.output_tokens_per_second:.0f} output tok/s"
    table.caption = caption
    return table


async def _convert(
    paths: list[str],
    out_dir: Path,
    options: LoaderOptions,
    *,
    as_json: bool,
    quiet: bool,
    console: Console,
) -> int:
    sources = resolve_inputs(paths)
    run = Run(options)
    total = await asyncio.to_thread(run.page_count, sources)
    reporter = _Reporter(console, total, quiet)
    taken: set[str] = set()
    current: _DocOutput | None = None
    per_doc: list[tuple[str, Totals]] = []
    failed_inputs: list[str] = []
    fatal: OCRLoadersError | None = None
    try:
        async for item in run.items(sources):
            if isinstance(item, DocumentStarted):
                current = _DocOutput(out_dir, item.info, safe_stem(item.info.file_name, taken))
            elif isinstance(item, PageResult):
                assert current is not None
                current.page(item)
                reporter.page(item)
            elif isinstance(item, Record):
                assert current is not None
                current.record(item)
            elif isinstance(item, DocumentFinished):
                assert current is not None
                current.finish(item.totals)
                per_doc.append((current.stem, item.totals))
                t = item.totals
                reporter.line(
                    f"{item.info.source}: {t.pages} page(s), {t.pages_ok} ok, "
                    f"{t.pages_truncated} truncated, {t.pages_failed} failed "
                    f"-> {current.paths['md']}"
                )
                current = None
            else:
                failed_inputs.append(str(item.error))
                reporter.error(f"error: {item.error}")
    except EngineError as exc:
        fatal = exc
    finally:
        reporter.close()
        if current is not None:  # stopped mid-document: keep what is done, marked incomplete
            current.finish(complete=False)
    totals = run.totals()
    if as_json:
        payload = stats_dict(totals)
        payload["documents_detail"] = [{"stem": n, **t.as_dict()} for n, t in per_doc]
        payload["failed_inputs"] = failed_inputs
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    elif not quiet and per_doc:
        console.print(_stats_table(per_doc, totals))
    if fatal is not None:
        raise fatal
    if failed_inputs:
        return EXIT_USAGE
    if totals.pages_truncated or totals.pages_failed:
        return EXIT_PAGES
    return EXIT_OK


@app.command()
def convert(
    paths: Annotated[list[str], typer.Argument(help="PDFs, images, folders or glob patterns.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    base_url: Annotated[
        str | None,
        typer.Option(
            help="DeepSeek-OCR endpoint(s), comma-separated (env DEEPSEEK_OCR_BASE_URL). "
            "None: the embedded local engine."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Served model name.")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (env DEEPSEEK_OCR_API_KEY).")] = None,
    dialect: Annotated[str, typer.Option(help="vllm, sglang or auto.")] = "auto",
    pages: Annotated[str | None, typer.Option(help="1-based pages, e.g. 1-3,7.")] = None,
    password: Annotated[str | None, typer.Option(help="Password for encrypted PDFs.")] = None,
    concurrency: Annotated[int, typer.Option(help="Pages in flight.")] = 16,
    chunk_size: Annotated[int, typer.Option(help="Max tokens per chunk.")] = 512,
    chunk_overlap: Annotated[int, typer.Option(help="Tokens of overlap.")] = 0,
    dpi: Annotated[int, typer.Option(help="Render resolution for PDF pages.")] = 144,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not use the page cache.")
    ] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Page cache folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's stats as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    """Convert documents to markdown, JSONL chunks and stats, one set per input."""
    probe = Console(stderr=True)
    # logs and CI capture get a readable width instead of rich's 80-column default
    console = probe if probe.is_terminal else Console(stderr=True, width=120)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not quiet and not debug:
        logging.getLogger("ocr_loaders").setLevel(logging.INFO)
    try:
        options = LoaderOptions.from_kwargs(
            base_url=base_url,
            model=model,
            api_key=api_key,
            dialect=dialect,
            pages=pages,
            password=password,
            concurrency=concurrency,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            dpi=dpi,
            cache=not no_cache,
            cache_dir=cache_dir,
        )
        output.mkdir(parents=True, exist_ok=True)
        code = asyncio.run(
            _convert(paths, output, options, as_json=as_json, quiet=quiet, console=console)
        )
    except (InputError, ConfigError) as exc:
        _fail(console, exc, debug)
        raise typer.Exit(EXIT_USAGE) from None
    except OCRLoadersError as exc:
        _fail(console, exc, debug)
        raise typer.Exit(EXIT_PAGES) from None
    except OSError as exc:
        _fail(console, exc, debug)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        console.print("interrupted; finished pages are in the cache", highlight=False)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _fail(console: Console, exc: BaseException, debug: bool) -> None:
    if debug:
        console.print_exception()
    console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ocr-loaders")


if __name__ == "__main__":  # pragma: no cover
    main()
