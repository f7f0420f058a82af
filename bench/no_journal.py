"""`owf-run` with the journal's per-step and per-item records turned off: the benchmark's
"without a journal" side of (d). Not a product switch, and never one: every real run is
journaled (DESIGN §6).

    python bench/no_journal.py run JOB --quiet --emulator URL    # as `owf-run run JOB ...`

The run still opens the journal, records its start and its end, and holds the job's lock, as
a real run does: what is left out is exactly what a foreach pays per item — the runner's
RunLog (owf_runner.recording.JournalLog) is replaced by the do-nothing one the runner's own
tests use (owf_runner.runner.NO_LOG).
"""

from __future__ import annotations

from typing import Any

from owf_runner import sessions
from owf_runner.console import run
from owf_runner.runner import NO_LOG, RunLog


def no_log(journal: Any, run_id: str) -> RunLog:
    """Stands in for JournalLog(journal, run_id): records nothing."""
    return NO_LOG


if __name__ == "__main__":
    sessions.JournalLog = no_log  # type: ignore[attr-defined,assignment]  # looked up per run
    run()
