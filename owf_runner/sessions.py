"""A run's life in the journal: fresh or resumed, recorded as it goes, finished however it ends.

Every run is journaled (DESIGN §6): ``begin`` (or, for a resume, ``reopen``) before the first
request, one record per step and invocation as they happen (recording.py), and a finish —
succeeded, failed, interrupted — whatever ends it, an error included.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from owf_runner.clock import Clock
from owf_runner.context import RunInfo
from owf_runner.errors import ExitCode, OwfError
from owf_runner.journal import (
    FAILED,
    INTERRUPTED,
    OKTA,
    RUNNING,
    SUCCEEDED,
    Journal,
    RunRecord,
)
from owf_runner.outcomes import RunResult
from owf_runner.plan import Plan
from owf_runner.recording import JournalLog
from owf_runner.resume import ResumeChoice, Resumed, run_to_resume
from owf_runner.runner import NOTHING_EARLIER, Earlier, Session, new_run, results_read_by
from owf_runner.stopping import Stop

PARTIAL = "partial"  # a trial run (--limit) that succeeded: `--resume` sends the rest


@dataclass(frozen=True)
class Continuation:
    """What this run continues: nothing (a fresh run), or an earlier run of the job."""

    info: RunInfo
    earlier: Earlier = NOTHING_EARLIER
    resumed: RunRecord | None = None
    target: str = OKTA  # where this run sends its requests: Okta, or an emulator


@contextlib.contextmanager
def continuation(
    journal: Journal,
    state: Path,
    plan: Plan,
    choice: ResumeChoice | None,
    clock: Clock,
    target: str,
) -> Iterator[Continuation | None]:
    """None when ``--resume`` finds that the run fully succeeded: nothing to do."""
    if choice is None:
        yield Continuation(new_run(clock), target=target)
        return
    record = run_to_resume(journal, plan, choice, target)
    if record is None:
        yield None
        return
    with Journal.open(state) as reader:  # its own connection: reading never commits our writes
        earlier = Resumed(reader, record, plan, choice, results_read_by(plan))
        yield Continuation(RunInfo(record.id, record.started_at), earlier, record, target)


@dataclass
class Ending:
    """How the run ended, filled in as it ends."""

    exit_code: int = ExitCode.INTERNAL
    stopped: bool = False
    limited: bool = False  # a trial (--limit): items may be left, which --resume sends

    def ran(self, result: RunResult, stop: Stop) -> None:
        self.stopped = stop.exit_code is not None
        self.exit_code = stop.exit_code or result.exit_code

    @property
    def status(self) -> str:
        if self.stopped:
            return INTERRUPTED
        if self.exit_code != ExitCode.OK:
            return FAILED
        return PARTIAL if self.limited else SUCCEEDED


@dataclass(frozen=True)
class Recorded:
    journal: Journal
    session: Session
    ending: Ending = field(default_factory=Ending)


@contextlib.contextmanager
def recorded(
    journal: Journal, plan: Plan, cont: Continuation, stop: Stop, limit: int | None
) -> Iterator[Recorded]:
    """The run on record from its start to its end, whatever the end is."""
    info = cont.info
    if cont.resumed is None:
        journal.begin_run(_new_record(plan, info, cont.target))
    else:
        journal.reopen_run(info.id)
    log = JournalLog(journal, info.id)
    run = Recorded(journal, Session(info, limit, log, cont.earlier, stop))
    run.ending.limited = limit is not None
    try:
        yield run
    except OwfError as exc:
        run.ending.exit_code = exc.exit_code
        raise
    finally:
        journal.flush()
        journal.finish_run(info.id, run.ending.status, run.ending.exit_code, _now())


def _new_record(plan: Plan, info: RunInfo, target: str) -> RunRecord:
    return RunRecord(
        id=info.id,
        job_path=str(plan.identity.path),
        job_sha256=plan.identity.sha256,
        vars_sha256=plan.identity.vars_sha256,
        job_name=plan.name,
        started_at=info.started_at,
        status=RUNNING,
        target=target,
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
