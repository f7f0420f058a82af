"""What each CLI command does, with plain arguments; each returns an exit code."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from owf_runner.credentials import resolve_credentials
from owf_runner.emulation import default_stubs_path, prepare
from owf_runner.emulator import Emulator, serve_forever
from owf_runner.errors import ExitCode, JobError, UsageError
from owf_runner.loader import load_job
from owf_runner.plan import plan_text
from owf_runner.report import ConsoleReporter
from owf_runner.runner import run_job
from owf_runner.yamlfile import load_yaml

OKTA_FLOW_RATE = 10  # invocations per second per flow


def run(
    job: Path,
    reporter: ConsoleReporter,
    var: Sequence[str],
    vars_file: Path | None,
    emulate: bool,
    emulator_url: str | None,
    stubs: Path | None,
) -> int:
    variables = parse_vars(var, vars_file)
    if emulate and emulator_url:
        raise UsageError("use either --emulate or --emulator URL, not both")
    emulator = _cli_emulator() if emulate else None
    if emulate:
        reporter.say("emulating Okta: every request goes to a built-in emulator on loopback")
    result = run_job(
        job, reporter, variables, emulator=emulator, emulator_url=emulator_url, stubs=stubs
    )
    reporter.summary(result)
    return result.exit_code


def validate(jobs: Sequence[Path], var: Sequence[str], vars_file: Path | None) -> int:
    variables = parse_vars(var, vars_file)
    problems: list[str] = []
    for job in jobs:
        try:
            load_job(job, variables)
        except JobError as exc:
            problems.extend(exc.problems)
        else:
            sys.stdout.write(f"{job}: ok\n")
    if problems:
        raise JobError(problems)
    return ExitCode.OK


def plan(job: Path, var: Sequence[str], vars_file: Path | None) -> int:
    loaded = load_job(job, parse_vars(var, vars_file))
    sys.stdout.write(plan_text(loaded) + "\n")
    return ExitCode.OK


def emulate(port: int, job: Path | None, stubs: Path | None) -> int:
    emulator = _cli_emulator()
    if job is not None:
        loaded = load_job(job)
        prepare(emulator, loaded, resolve_credentials(loaded), stubs or default_stubs_path(job))
    elif stubs is not None:
        emulator.load_stubs(stubs)

    def ready(base_url: str) -> None:
        sys.stdout.write(f"Okta emulator listening on {base_url} (Ctrl-C to stop)\n")
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
        serve_forever(emulator, port=port, ready=ready)
    return ExitCode.OK


def _cli_emulator() -> Emulator:
    emulator = Emulator()
    emulator.rate_limit = OKTA_FLOW_RATE  # rehearse with Okta's throttling, as users meet it
    return emulator


def parse_vars(pairs: Sequence[str], vars_file: Path | None) -> dict[str, Any]:
    """--vars-file, then --var KEY=VALUE on top (values stay strings)."""
    variables: dict[str, Any] = {}
    if vars_file is not None:
        data = load_yaml(vars_file).data
        if not isinstance(data, dict):
            raise JobError([f"{vars_file}:1:1: expected a mapping of variable names to values"])
        variables.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var expects KEY=VALUE, got {pair!r}")
        variables[key.strip()] = value
    return variables
