"""What each CLI command does, with plain arguments: the stages assembled, an exit code returned.

validate:  load → check
plan:      load → check → resolve → render
run:       runcmd.py, and token: tokencmd.py; they load the HTTP and journal machinery that
           `validate` (a pre-commit hook: run on every commit) has no use for
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owf_runner.boundary import Output
from owf_runner.credentials import mask_env_secrets, resolve_credentials
from owf_runner.errors import ExitCode, JobError, UsageError
from owf_runner.files import VARS_FILE, is_utf8
from owf_runner.loader import load_job
from owf_runner.plan import Plan, resolve
from owf_runner.problems import Problem
from owf_runner.yamlfile import load_yaml

if TYPE_CHECKING:
    from owf_runner.report_files import ReportFiles


def load_plan(job: Path, variables: Mapping[str, Any] | None = None) -> Plan:
    plan = resolve(load_job(job, variables))
    mask_env_secrets(plan)  # before anything renders: a template may print {{ env.NAME }}
    return plan


def validate(jobs: Sequence[Path], var: Sequence[str], vars_file: Path | None) -> int:
    variables = parse_vars(var, vars_file)
    out = Output(sys.stdout)
    problems: list[Problem] = []
    for job in jobs:
        try:
            load_job(job, variables)
        except JobError as exc:
            problems.extend(exc.problems)
        else:
            out.write(f"{job}: ok\n")
    if problems:
        raise JobError(problems)
    return ExitCode.OK


def plan(job: Path, var: Sequence[str], vars_file: Path | None) -> int:
    from owf_runner.dryrun import plan_text

    Output(sys.stdout).write(plan_text(load_plan(job, parse_vars(var, vars_file))) + "\n")
    return ExitCode.OK


def history(job: Path | None, state_dir: Path | None, limit: int) -> int:
    from owf_runner.history import history_lines
    from owf_runner.journal import Journal
    from owf_runner.statedir import prepare_state_dir

    with Journal.open(prepare_state_dir(state_dir, os.environ)) as journal:
        runs = journal.runs(None if job is None else str(job.resolve()), limit)
        Output(sys.stdout).write("\n".join(history_lines(runs, now=time.time())) + "\n")
    return ExitCode.OK


def show(run_id: str, state_dir: Path | None, limit: int, reports: ReportFiles) -> int:
    from owf_runner.history import show_lines
    from owf_runner.journal import PROBLEMS, Journal
    from owf_runner.statedir import prepare_state_dir

    reports.check()
    with Journal.open(prepare_state_dir(state_dir, os.environ)) as journal:
        run = journal.run(run_id)
        if run is None:
            raise UsageError(f"no run {run_id!r} in the journal (`owf-run history` lists them)")
        problems = functools.partial(journal.items, run.id, statuses=PROBLEMS)
        lines = show_lines(run, journal.steps(run.id), problems, limit)
        Output(sys.stdout).write("\n".join(lines) + "\n")
        reports.write(journal, run.id)
    return ExitCode.OK


def emulate(
    port: int,
    job: Path | None,
    stubs: Path | None,
    var: Sequence[str] = (),
    vars_file: Path | None = None,
) -> int:
    from owf_runner.emulation import new_emulator, prepare
    from owf_runner.emulator import serve_forever

    if job is None and (var or vars_file is not None):
        raise UsageError("--var and --vars-file are the job's: give --job too")
    emulator = new_emulator()
    if job is not None:
        plan = load_plan(job, parse_vars(var, vars_file))
        prepare(emulator, plan, resolve_credentials(plan), stubs)
    elif stubs is not None:
        emulator.load_stubs(stubs)

    def ready(base_url: str) -> None:
        Output(sys.stdout).write(f"Okta emulator listening on {base_url} (Ctrl-C to stop)\n")

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
        serve_forever(emulator, port=port, ready=ready)
    return ExitCode.OK


def parse_vars(pairs: Sequence[str], vars_file: Path | None) -> dict[str, Any]:
    """--vars-file, then --var KEY=VALUE on top (values stay strings)."""
    variables: dict[str, Any] = {}
    if vars_file is not None:
        document = load_yaml(vars_file, VARS_FILE)
        if not isinstance(document.data, dict):
            raise JobError([document.problem((), "expected a mapping of variable names to values")])
        variables.update(document.data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var expects KEY=VALUE, got {pair!r}")
        if not is_utf8(pair):
            raise UsageError(f"--var {key.strip()!r}: the value holds bytes that are not UTF-8")
        variables[key.strip()] = value
    return variables
