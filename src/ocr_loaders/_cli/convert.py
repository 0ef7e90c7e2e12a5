"""The ``convert`` run: inputs in, one set of output files per document, failures collected.

Every input is resolved on its own, so a missing path is reported and skipped while the others
are converted; a file that cannot be read is skipped the same way, and a page that failed is
listed with its reason. What happened comes back as a :class:`Converted` for the caller to
report and to turn into an exit status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from .._config import LoaderOptions
from .._errors import InputError, OCRLoadersError
from .._estimate import resolve_each
from .._figures import FigureFolder, FigureOptions
from .._inspect import LayoutWriter, layout_path, write_report
from .._model import PageResult, SourceInfo
from .._pipeline import DocumentFailed, DocumentFinished, DocumentStarted
from .._records import Record
from .._run import Run
from .._stats import Totals
from .outputs import DocOutput, safe_stem
from .report import Failure, Reporter

CLI_FIGURES = FigureOptions("files")
"""The CLI writes figure crops by default, under ``OUT/<stem>/images/``."""


@dataclass
class Converted:
    """What a run did: documents converted, files skipped, pages failed, and the totals."""

    documents: list[tuple[str, str, Totals]] = field(default_factory=list)
    """``(output stem, source, totals)`` of every completed document, in order."""
    failures: list[Failure] = field(default_factory=list)
    """Skipped inputs (``page`` is ``None``) and failed pages, in the order they happened."""
    totals: Totals | None = None
    fatal: OCRLoadersError | None = None
    """What stopped the run early (server unreachable, ``--on-error raise``), if anything."""
    partial: bool = False
    """A document was left unfinished (its pages are in ``.partial`` files)."""

    @property
    def skipped(self) -> list[Failure]:
        return [f for f in self.failures if f.page is None]


def _reason(exc: OCRLoadersError) -> str:
    return exc.reason if isinstance(exc, InputError) else str(exc)


async def convert(
    paths: list[str],
    out_dir: Path,
    options: LoaderOptions,
    console: Console,
    *,
    quiet: bool,
    figures: FigureOptions = CLI_FIGURES,
    html: bool = False,
) -> Converted:
    """Convert ``paths`` into ``out_dir`` (see :mod:`ocr_loaders._cli.outputs`); with ``html``
    also keep every page's blocks and write the inspector, ``OUT/<stem>.html``."""
    done = Converted()
    layout: LayoutWriter | None = None
    sources, missing = await asyncio.to_thread(resolve_each, paths)
    for m in missing:
        done.failures.append(Failure(m.source, m.reason))
        console.print(f"error: {m.source}: {m.reason}", highlight=False, markup=False)
    if not sources:
        return done
    current: DocOutput | None = None

    def place(_info: SourceInfo) -> FigureFolder | None:
        return current.figure_folder() if current is not None else None

    run = Run(options, figures, place)
    total = await asyncio.to_thread(run.page_count, sources)
    reporter = Reporter(console, total, quiet)
    run.pipeline.on_page_done = reporter.page_done  # as pages finish, not in page order
    taken: set[str] = set()
    try:
        async for item in run.items(sources):
            if isinstance(item, DocumentStarted):
                current = DocOutput(out_dir, item.info, safe_stem(item.info.file_name, taken))
                if html:
                    layout = LayoutWriter(layout_path(out_dir, current.stem))
            elif isinstance(item, PageResult):
                assert current is not None
                current.page(item)
                if layout is not None:
                    layout.add(item.page)
                if item.page.status == "failed":
                    reason = item.page.error or "failed"
                    done.failures.append(Failure(item.doc.source, reason, item.page.number))
            elif isinstance(item, Record):
                assert current is not None
                current.record(item)
            elif isinstance(item, DocumentFinished):
                assert current is not None
                current.finish(item.totals)
                if layout is not None:
                    layout.close()
                    layout = None
                    page = await asyncio.to_thread(
                        write_report,
                        out_dir,
                        current.stem,
                        password=options.password,
                        trusted_hash=True,
                    )
                    reporter.line(f"{item.info.source}: inspector -> {page}")
                done.documents.append((current.stem, item.info.source, item.totals))
                t = item.totals
                reporter.line(
                    f"{item.info.source}: {t.pages} page(s), {t.pages_ok} ok, "
                    f"{t.pages_truncated} truncated, {t.pages_failed} failed "
                    f"-> {current.paths['md']}"
                )
                current = None
            elif isinstance(item, DocumentFailed):
                if layout is not None:
                    layout.close()
                    layout = None
                done.failures.append(Failure(item.source, _reason(item.error)))
                reporter.error(f"error: {item.error}")
                if options.on_error == "raise":
                    raise item.error
    except OCRLoadersError as exc:  # server unreachable, --on-error raise
        done.fatal = exc
    finally:
        reporter.close()
        if layout is not None:
            layout.close()
        if current is not None:  # stopped mid-document: keep what is done, marked partial
            done.partial = current.pages > 0
            current.abandon()
        done.totals = run.totals()
    return done
