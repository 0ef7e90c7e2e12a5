"""The Python API's progress bar (``show_progress=True``): pages across files, on stderr.

The CLI draws its own; this one is for notebooks and scripts, as LlamaIndex readers do with
``show_progress``. It counts every selected page, failed ones included, so it always ends full.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ._model import PageResult


class PageProgress:
    """One bar over ``total`` pages; :meth:`close` leaves it drawn at its final state."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pages"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._task: TaskID = self._progress.add_task("ocr-loaders", total=total)
        self._progress.start()

    def document(self, name: str) -> None:
        """The file whose pages come next."""
        self._progress.update(self._task, description=name)

    def page_done(self, _result: PageResult) -> None:
        """One more page done (ok, truncated or failed), in the order pages finish."""
        self._progress.advance(self._task)

    def close(self) -> None:
        self._progress.update(self._task, description="ocr-loaders")
        self._progress.stop()
