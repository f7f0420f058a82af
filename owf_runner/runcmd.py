"""`owf-run JOB`: load → check → resolve → credentials + transport → execute → report,
under the job's lock, recorded in the journal (a resume continues a run)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2

from owf_runner.boundary import run_async, to_stderr
from owf_runner.clock import SYSTEM_CLOCK, Clock
from owf_runner.commands import load_plan, parse_vars
from owf_runner.credentials import Resolved, build_auths, resolve_credentials
from owf_runner.errors import ExitCode, ReportError, UsageError
from owf_runner.http import EmulatorTransport, build_client, real_transport
from owf_runner.journal import EMULATOR, OKTA, Journal
from owf_runner.outcomes import RunResult
from owf_runner.plan import Plan
from owf_runner.report_files import NO_REPORTS, ReportFiles
from owf_runner.resume import ResumeChoice
from owf_runner.runlock import hold_run_lock
from owf_runner.runner import RunReporter, Session, execute
from owf_runner.sessions import Recorded, continuation, recorded
from owf_runner.statedir import prepare_state_dir
from owf_runner.stopping import Stop, on_signals
from owf_runner.urls import emulator_url_problem

MAX_SECONDS = 86400.0  # a day: --lock-wait and --grace longer than that are typos

Wiring = tuple[Mapping[str, Resolved], httpx2.AsyncBaseTransport]


@dataclass(frozen=True)
class RunOptions:
    """`owf-run JOB`'s options, as plain values."""

    var: Sequence[str] = ()
    vars_file: Path | None = None
    emulate: bool = False
    emulator_url: str | None = None
    stubs: Path | None = None
    limit: int | None = None
    state_dir: Path | None = None
    resume: bool = False
    run_id: str | None = None
    retry_unknown: bool = False
    force: bool = False
    lock_wait: float = 0.0
    grace: float = 10.0
    keep: int = 100
    fsync: bool = False  # each journal commit on disk before the request: survives a power cut
    reports: ReportFiles = NO_REPORTS  # --report, --junit, --html


def run(job: Path, reporter: RunReporter, options: RunOptions, clock: Clock = SYSTEM_CLOCK) -> int:
    _check_options(options)
    plan = load_plan(job, parse_vars(options.var, options.vars_file))
    state = prepare_state_dir(options.state_dir, os.environ)
    job_path = str(plan.identity.path)
    stop = Stop()
    with (
        hold_run_lock(state, plan.identity.path, options.lock_wait),
        Journal.open(state, fsync=options.fsync) as journal,
    ):
        journal.abandon_running(job_path)  # we hold the job's lock: whoever left them died
        target = EMULATOR if options.emulate or options.emulator_url else OKTA
        with continuation(journal, state, plan, _resume_choice(options), clock, target) as cont:
            if cont is None:
                reporter.say(f"nothing to resume: the latest run of {job} succeeded", always=True)
                return ExitCode.OK
            if cont.resumed is not None:
                reporter.say(f"resuming run {cont.info.id}: only what did not succeed is sent")
            try:
                with recorded(journal, plan, cont, stop, options.limit) as record:
                    result = _run_recorded(plan, reporter, options, clock, record)
            finally:  # an auth refusal ends the run too: its reports are written all the same
                reported = _write_reports(options.reports, journal, cont.info.id)
        journal.prune(job_path, options.keep)
    reporter.summary(result, str(job))
    if record.ending.stopped:
        how = "terminated" if record.ending.exit_code == ExitCode.TERMINATED else "interrupted"
        to_stderr(f"owf-run: {how}; finish the job with: owf-run {job} --resume")
    if not reported and record.ending.exit_code == ExitCode.OK:
        return ExitCode.USAGE  # CI asked for a report it will not find: not a success
    return record.ending.exit_code


def _write_reports(reports: ReportFiles, journal: Journal, run_id: str) -> bool:
    try:
        reports.write(journal, run_id)
    except ReportError as exc:
        to_stderr(f"owf-run: {exc}")
        return False
    return True


def _run_recorded(
    plan: Plan, reporter: RunReporter, options: RunOptions, clock: Clock, record: Recorded
) -> RunResult:
    target = (options.emulate, options.emulator_url, options.stubs)
    with wire(plan, reporter, *target) as (resolved, transport):
        main = _execute(plan, resolved, transport, reporter, clock, record.session, options.grace)
        result = run_async(main)
    record.ending.ran(result, record.session.stop)
    return result


def _resume_choice(options: RunOptions) -> ResumeChoice | None:
    if not options.resume:
        return None
    return ResumeChoice(options.run_id, options.retry_unknown, options.force)


def _check_options(options: RunOptions) -> None:
    check_target(options.emulate, options.emulator_url, options.stubs)
    options.reports.check()
    for flag, seconds in (("--lock-wait", options.lock_wait), ("--grace", options.grace)):
        if not 0 <= seconds <= MAX_SECONDS:  # NaN fails this too
            raise UsageError(f"{flag} expects seconds, 0 to {MAX_SECONDS:g}; got {seconds:g}")
    for flag, given in (
        ("--run", options.run_id),
        ("--retry-unknown", options.retry_unknown),
        ("--force", options.force),
    ):
        if given and not options.resume:
            raise UsageError(f"{flag} goes with --resume")


def check_target(emulate: bool, emulator_url: str | None, stubs: Path | None) -> None:
    if emulate and emulator_url:
        raise UsageError("use either --emulate or --emulator URL, not both")
    if stubs is not None and not emulate:
        raise UsageError("--stubs needs --emulate (an emulator serving elsewhere has its own)")
    problem = None if emulator_url is None else emulator_url_problem(emulator_url)
    if problem:
        raise UsageError(f"--emulator {problem}")


@contextlib.contextmanager
def wire(
    plan: Plan, reporter: RunReporter, emulate: bool, url: str | None, stubs: Path | None
) -> Iterator[Wiring]:
    if emulate:
        from owf_runner.emulation import rehearsal  # the emulator loads only when asked for

        with rehearsal(plan, stubs) as wired:
            reporter.say("emulating Okta: every request goes to a built-in emulator on loopback")
            yield wired
        return
    transport = real_transport(plan.ca_bundles())
    yield resolve_credentials(plan), EmulatorTransport(url, transport) if url else transport


async def _execute(
    plan: Plan,
    resolved: Mapping[str, Resolved],
    transport: httpx2.AsyncBaseTransport,
    reporter: RunReporter,
    clock: Clock,
    session: Session,
    grace: float,
) -> RunResult:
    redirected = isinstance(transport, EmulatorTransport)
    async with build_client(transport, redirected=redirected) as client:
        # The token fetch waits on the stop's clock too: a stop cuts its backoff short.
        auths = build_auths(plan, resolved, client, session.stop.clock(clock))
        with on_signals(session.stop, grace):
            return await execute(plan, client, auths, reporter, clock, session)
