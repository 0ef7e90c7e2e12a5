"""The ``ocr-loaders`` command: options in, a run or a dry run, an exit status out.

``ocr-loaders convert PATH... -o OUTDIR`` writes, for each input, ``<stem>.md``, ``<stem>.jsonl``
and ``<stem>.stats.json`` (see :mod:`.outputs`), shows a progress bar on a terminal and a stats
table at the end. ``--dry-run`` only opens the inputs and prints what a run would cost.

Exit status: 0 every page of every input ok; 1 some pages truncated or failed, some inputs
skipped (missing, unreadable), or the run stopped early (server unreachable, ``--on-error
raise``); 2 usage errors, and runs where no input could be read at all.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .._config import LoaderOptions
from .._errors import ConfigError, InputError, OCRLoadersError
from .._estimate import DEFAULT_PAGES_PER_SECOND, Estimate, estimate_options
from .._figures import figure_options
from .._mupdf_setup import skip_pymupdf_addons
from .._verify.policy import REPAIR_BUDGET
from .convert import Converted, convert
from .inspector import inspect_command
from .outputs import stats_dict
from .report import estimate_summary, estimate_table, setup_logging, stats_table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="DeepSeek-OCR document loaders: convert PDFs and scans to markdown and RAG-ready chunks.",
)

EXIT_OK, EXIT_PAGES, EXIT_USAGE = 0, 1, 2


@app.callback()
def _root() -> None:
    """DeepSeek-OCR document loaders."""


@dataclass(frozen=True)
class FilePasswords:
    """``--password NAME=PASSWORD`` entries: a file's password by its name or path, else the
    bare ``--password`` (if one was given). Called with a file's path."""

    by_name: dict[str, str] = field(default_factory=dict)
    default: str | None = field(default=None, repr=False)

    def __call__(self, path: str) -> str | None:
        for key in (path, Path(path).name, str(Path(path).resolve())):
            if key in self.by_name:
                return self.by_name[key]
        return self.default


def parse_passwords(values: list[str] | None) -> str | FilePasswords | None:
    """``--password`` values: ``NAME=PASSWORD`` where NAME ends in ``.pdf`` (a file name or
    path), otherwise a password for every encrypted file (at most one of those)."""
    if not values:
        return None
    default: str | None = None
    by_name: dict[str, str] = {}
    for value in values:
        name, sep, password = value.partition("=")
        if sep and name.lower().endswith(".pdf"):
            by_name[name] = password
            by_name.setdefault(str(Path(name).expanduser().resolve()), password)
        elif default is None:
            default = value
        else:
            raise ConfigError("give at most one --password for every file; others as NAME=PW")
    return FilePasswords(by_name, default) if by_name else default


def exit_status(done: Converted) -> int:
    """0 all ok; 1 pages failed or truncated, inputs skipped, or stopped early; 2 nothing read."""
    if done.fatal is not None:
        return EXIT_PAGES
    if done.skipped and not done.documents and not done.partial:
        return EXIT_USAGE
    t = done.totals
    if done.failures or (t is not None and (t.pages_truncated or t.pages_failed)):
        return EXIT_PAGES
    return EXIT_OK


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def report_run(done: Converted, console: Console, *, as_json: bool, quiet: bool) -> None:
    """The JSON (stdout), the table and the list of skipped files (stderr)."""
    totals = done.totals
    if as_json:
        payload: dict[str, Any] = stats_dict(totals, complete=done.fatal is None) if totals else {}
        payload["documents_detail"] = [
            {"stem": stem, "source": source, **t.as_dict()} for stem, source, t in done.documents
        ]
        payload["failures"] = [f.as_dict() for f in done.failures]
        payload["failed_inputs"] = [str(f) for f in done.skipped]
        if done.fatal is not None:
            payload["error"] = str(done.fatal)
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    if quiet:
        return
    if totals is not None and (done.documents or done.failures):
        console.print(stats_table(done.documents, done.failures, totals))
    skipped = done.skipped
    if skipped:
        names = "; ".join(str(f) for f in skipped)
        _print(console, f"skipped {len(skipped)} file(s): {names}")


def report_estimate(est: Estimate, console: Console, *, as_json: bool, quiet: bool) -> int:
    if as_json:
        sys.stdout.write(json.dumps(est.as_dict(), indent=2) + "\n")
    if not quiet:
        console.print(estimate_table(est))
        _print(console, estimate_summary(est))
    if est.skipped:
        return EXIT_USAGE if not est.documents else EXIT_PAGES
    return EXIT_OK


@app.command("convert")
def convert_command(
    paths: Annotated[list[str], typer.Argument(help="PDFs, images, folders or glob patterns.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output folder (not for --dry-run).")
    ] = None,
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
    prompt: Annotated[
        str | None, typer.Option(help="Prompt, e.g. 'Free OCR.' for text without boxes.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 300.0,
    pages: Annotated[str | None, typer.Option(help="1-based pages, e.g. 1-3,7.")] = None,
    password: Annotated[
        list[str] | None,
        typer.Option(
            help="Password for encrypted PDFs; NAME=PASSWORD (NAME a .pdf name or path) for "
            "one file. Repeatable."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Pages in flight.")] = 16,
    mode: Annotated[str, typer.Option(help="chunks, pages or document.")] = "chunks",
    tables: Annotated[str, typer.Option(help="html or markdown.")] = "html",
    images: Annotated[
        str, typer.Option(help="Figure crops: files (OUT/<stem>/images/), inline or none.")
    ] = "files",
    figure_dpi: Annotated[
        int | None,
        typer.Option(help="Re-render PDF crops at this resolution (default: the --dpi sent)."),
    ] = None,
    figure_format: Annotated[str, typer.Option(help="Crop format: png or jpeg.")] = "png",
    crop_blocks: Annotated[
        str, typer.Option(help="Blocks to crop, comma-separated: image, table, equation.")
    ] = "image",
    chunk_size: Annotated[int, typer.Option(help="Max tokens per chunk.")] = 512,
    chunk_overlap: Annotated[int, typer.Option(help="Tokens of overlap.")] = 0,
    dpi: Annotated[int, typer.Option(help="Render resolution for PDF pages.")] = 144,
    on_error: Annotated[
        str, typer.Option(help="continue, or raise: stop at the first failed page or file.")
    ] = "continue",
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not use the page cache.")
    ] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Page cache folder.")] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Open the inputs and print what the run would cost."),
    ] = False,
    assume_pages_per_s: Annotated[
        float,
        typer.Option(
            help="GPU throughput the dry run prices at (default: DeepSeek's 200k pages/day "
            "on one A100-40G)."
        ),
    ] = DEFAULT_PAGES_PER_SECOND,
    verify: Annotated[
        str,
        typer.Option(help="Check pages against the PDF's text layer: off, flag or repair."),
    ] = "flag",
    gap_fill: Annotated[
        bool, typer.Option(help="repair: add text-layer words no block covers.")
    ] = False,
    repair_budget: Annotated[
        float,
        typer.Option(
            help="repair: extra requests the run may spend, as a share of its pages "
            "(0.2: a repair by two tiles once 10 pages have started; 2.0: every page)."
        ),
    ] = REPAIR_BUDGET,
    force_ocr: Annotated[
        bool, typer.Option(help="Local engine: OCR every page, even with a text layer.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's stats as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    html: Annotated[
        bool,
        typer.Option("--html", help="Also write OUT/<stem>.html, the visual inspector."),
    ] = False,
    stream: Annotated[
        bool,
        typer.Option("--stream", help="Stream answers and stop a looping one at once."),
    ] = False,
) -> None:
    """Convert documents to markdown, JSONL chunks and stats, one set per input."""
    probe = Console(stderr=True)
    # logs and CI capture get a readable width instead of rich's 80-column default
    console = probe if probe.is_terminal else Console(stderr=True, width=120)
    setup_logging(console, debug=debug, quiet=quiet)
    try:
        options = LoaderOptions.from_kwargs(
            base_url=base_url,
            model=model,
            api_key=api_key,
            dialect=dialect,
            timeout=timeout,
            pages=pages,
            password=parse_passwords(password),
            concurrency=concurrency,
            mode=mode,
            tables=tables,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            dpi=dpi,
            on_error=on_error,
            cache=not no_cache,
            cache_dir=cache_dir,
            stream=stream,
            verify=verify,
            gap_fill=gap_fill,
            repair_budget=repair_budget,
            force_ocr=force_ocr,
            **({"prompt": prompt} if prompt is not None else {}),
        )
        if dry_run:
            est = estimate_options(options, paths, pages_per_second=assume_pages_per_s)
            raise typer.Exit(report_estimate(est, console, as_json=as_json, quiet=quiet))
        if output is None:
            _print(console, "error: missing option '-o' / '--output' (the output folder)")
            raise typer.Exit(EXIT_USAGE)
        output.mkdir(parents=True, exist_ok=True)
        figures = figure_options(
            images, figure_dpi=figure_dpi, figure_format=figure_format, crop_blocks=crop_blocks
        )
        done = asyncio.run(
            convert(paths, output, options, console, quiet=quiet, figures=figures, html=html)
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
        _print(console, "interrupted; finished pages are in the cache")
        raise typer.Exit(130) from None
    report_run(done, console, as_json=as_json, quiet=quiet)
    if done.fatal is not None:
        _fail(console, done.fatal, debug)
    raise typer.Exit(exit_status(done))


app.command("inspect")(inspect_command)


def _fail(console: Console, exc: BaseException, debug: bool) -> None:
    """One ``error:`` line; the traceback before it with ``--debug``."""
    if debug:
        _print(console, "".join(traceback.format_exception(exc)).rstrip())
    _print(console, f"error: {exc}")


def main() -> None:
    """Console-script entry point."""
    skip_pymupdf_addons()
    app(prog_name="ocr-loaders")
