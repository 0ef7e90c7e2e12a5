"""Run-level stats of a Ray job, gathered from the workers by one small actor.

Each document's stage reports its totals and its pages' stats (:class:`DocumentReport`) to the
actor behind a :class:`RunStats`; :meth:`RunStats.totals` sums them the way the single-process
loader sums a run (:class:`ocr_loaders._stats.StatsAccumulator`): pages by status, vision and
text tokens, the compression distribution, failures, pages/s over the wall-clock span of the
answers. Reports are keyed by document, so a dataset executed twice (``count()`` then
``write_parquet()``) is not counted twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._stats import CleanupCounts, StatsAccumulator, Totals
from ._documents import DocumentReport


class _Collector:
    """The actor: the last report of every document."""

    def __init__(self) -> None:
        self._reports: dict[str, DocumentReport] = {}

    def add(self, report: DocumentReport) -> None:
        self._reports[report.doc] = report

    def reports(self) -> list[DocumentReport]:
        return [self._reports[k] for k in sorted(self._reports)]

    def clear(self) -> None:
        self._reports.clear()


class RunStats:
    """A handle on a job's stats; pass it as ``read_documents(..., stats=...)``.

    Picklable (it holds an actor handle), so every worker reports to the same actor. Create it
    after ``ray.init()``; it lives as long as this handle's Ray job.
    """

    def __init__(self) -> None:
        import ray

        self._actor: Any = ray.remote(num_cpus=0)(_Collector).remote()

    def add(self, report: DocumentReport) -> None:
        """Record one document's report (called by the workers)."""
        import ray

        ray.get(self._actor.add.remote(report))

    def reports(self) -> list[DocumentReport]:
        import ray

        reports: list[DocumentReport] = ray.get(self._actor.reports.remote())
        return reports

    def clear(self) -> None:
        """Forget every report (before running another job with the same handle)."""
        import ray

        ray.get(self._actor.clear.remote())

    def totals(self) -> Totals:
        """The run's :class:`~ocr_loaders._stats.Totals` over every document reported."""
        return sum_reports(self.reports())


def sum_reports(reports: list[DocumentReport]) -> Totals:
    """Totals of a run from its documents' reports, as one process would count them."""
    acc = StatsAccumulator()
    cleanup = CleanupCounts()
    for report in reports:
        if report.totals is None:
            acc.documents_failed += 1
            if report.failure is not None:
                acc.failures.append(report.failure)
            continue
        acc.engine = acc.engine or report.totals.engine
        acc.model = acc.model or report.totals.model
        acc.documents += 1
        for page in report.pages:
            acc.add(page)
        acc.failures.extend(report.totals.failures)
        cleanup += report.totals.cleanup
    return dataclasses.replace(acc.totals(), cleanup=cleanup)
