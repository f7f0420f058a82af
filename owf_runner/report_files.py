"""The report files a command was asked for, written from the journal's records of one run.

A run writes them when it ends, however it ends; `owf-run show RUN_ID` writes them after the
fact — from the same records, so the two are the same file. Their paths are checked before
anything is sent: a report that cannot be written fails the command up front, not after an
hour of invocations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from owf_runner.errors import UsageError
from owf_runner.journal import Journal, RunRecord, StepRecord

if TYPE_CHECKING:
    from owf_runner.reports import Items

Writer = Callable[[Path, RunRecord, list[StepRecord], "Items"], None]


@dataclass(frozen=True)
class ReportFiles:
    json: Path | None = None
    junit: Path | None = None
    html: Path | None = None

    def _asked(self) -> Iterator[tuple[str, Path, Writer]]:
        if self == NO_REPORTS:
            return
        # Loaded only when a report is asked for: most runs (cron's) start 10 ms sooner.
        from owf_runner import reports

        for flag, path, writer in (
            ("--report", self.json, reports.write_json_report),
            ("--junit", self.junit, reports.write_junit),
            ("--html", self.html, reports.write_html),
        ):
            if path is not None:
                yield flag, path, writer

    def check(self) -> None:
        """Each path writable, and no two the same file (one would silently replace the other)."""
        seen: dict[Path, str] = {}
        for flag, path, _ in self._asked():
            from owf_runner.reports import check_report_path  # see _asked

            check_report_path(path)
            same = seen.setdefault(path.resolve(), flag)
            if same != flag:
                raise UsageError(f"{flag} and {same} name the same file: {path}")

    def write(self, journal: Journal, run_id: str) -> None:
        """Every report asked for, from the journal's records of ``run_id`` (ReportError)."""
        if not any(self._asked()):
            return
        run = journal.run(run_id)
        if run is None:  # the run never started: there is nothing to report
            return
        steps = journal.steps(run_id)
        items = functools.partial(journal.items, run_id)
        for _, path, writer in self._asked():
            writer(path, run, steps, items)


NO_REPORTS = ReportFiles()
