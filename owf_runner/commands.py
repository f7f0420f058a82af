"""What each CLI command does, with plain arguments: the stages assembled, an exit code returned.

validate:  load → check
plan:      load → check → resolve → render
run:       load → check → resolve → credentials + transport → execute → report
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2

from owf_runner.boundary import Output, run_async
from owf_runner.clock import SYSTEM_CLOCK, Clock
from owf_runner.credentials import Resolved, build_auths, mask_env_secrets, resolve_credentials
from owf_runner.errors import ExitCode, JobError, UsageError
from owf_runner.files import VARS_FILE, is_utf8
from owf_runner.http import EmulatorTransport, build_client, real_transport
from owf_runner.loader import load_job
from owf_runner.outcomes import RunResult
from owf_runner.plan import Plan, resolve
from owf_runner.problems import Problem
from owf_runner.report import ConsoleReporter
from owf_runner.runner import execute
from owf_runner.urls import emulator_url_problem
from owf_runner.yamlfile import load_yaml

Wiring = tuple[Mapping[str, Resolved], httpx2.AsyncBaseTransport]


def load_plan(job: Path, variables: Mapping[str, Any] | None = None) -> Plan:
    plan = resolve(load_job(job, variables))
    mask_env_secrets(plan)  # before anything renders: a template may print {{ env.NAME }}
    return plan


def run(
    job: Path,
    reporter: ConsoleReporter,
    var: Sequence[str],
    vars_file: Path | None,
    emulate: bool,
    emulator_url: str | None,
    stubs: Path | None,
    clock: Clock = SYSTEM_CLOCK,
    limit: int | None = None,
) -> int:
    _check_target(emulate, emulator_url, stubs)
    plan = load_plan(job, parse_vars(var, vars_file))
    with _wiring(plan, reporter, emulate, emulator_url, stubs) as (resolved, transport):
        result = run_async(_execute(plan, resolved, transport, reporter, clock, limit))
    reporter.summary(result)
    return result.exit_code


def _check_target(emulate: bool, emulator_url: str | None, stubs: Path | None) -> None:
    if emulate and emulator_url:
        raise UsageError("use either --emulate or --emulator URL, not both")
    if stubs is not None and not emulate:
        raise UsageError("--stubs needs --emulate (an emulator serving elsewhere has its own)")
    problem = None if emulator_url is None else emulator_url_problem(emulator_url)
    if problem:
        raise UsageError(f"--emulator {problem}")


@contextlib.contextmanager
def _wiring(
    plan: Plan, reporter: ConsoleReporter, emulate: bool, url: str | None, stubs: Path | None
) -> Iterator[Wiring]:
    if emulate:
        from owf_runner.emulation import rehearsal  # the emulator loads only when asked for

        with rehearsal(plan, stubs) as wiring:
            reporter.say("emulating Okta: every request goes to a built-in emulator on loopback")
            yield wiring
        return
    transport = real_transport(plan.ca_bundles())
    yield resolve_credentials(plan), EmulatorTransport(url, transport) if url else transport


async def _execute(
    plan: Plan,
    resolved: Mapping[str, Resolved],
    transport: httpx2.AsyncBaseTransport,
    reporter: ConsoleReporter,
    clock: Clock,
    limit: int | None,
) -> RunResult:
    redirected = isinstance(transport, EmulatorTransport)
    async with build_client(transport, redirected=redirected) as client:
        auths = build_auths(plan, resolved, client, clock)
        return await execute(plan, client, auths, reporter, clock, limit)


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


def emulate(port: int, job: Path | None, stubs: Path | None) -> int:
    from owf_runner.emulation import new_emulator, prepare
    from owf_runner.emulator import serve_forever

    emulator = new_emulator()
    if job is not None:
        plan = load_plan(job)
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
