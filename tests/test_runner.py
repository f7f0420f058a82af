"""The runner through its public entry point, against an in-process emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from owf_runner import run_job
from owf_runner.emulator import Emulator, Fault, FlowStub
from owf_runner.model import Step
from owf_runner.retry import Failure
from owf_runner.runner import ItemResult, RunResult, StepResult

FAST_RETRY = "retry: {attempts: 3, backoff: {initial: 0.01, max: 0.01}}"


class Recorder:
    """A Reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def step_started(self, step: Step) -> None:
        self.events.append(("started", step.id))

    def item_finished(self, step: Step, result: ItemResult) -> None:
        self.events.append(("item", (result.index, result.status)))

    def retrying(self, step: Step, failure: Failure, attempt: int, wait: float) -> None:
        self.events.append(("retry", (failure.failure_class, attempt)))

    def step_finished(self, step: Step, result: StepResult) -> None:
        self.events.append(("finished", (step.id, result.status)))

    def retries(self) -> list[Any]:
        return [value for kind, value in self.events if kind == "retry"]


def run(
    tmp_path: Path, step: str, emulator: Emulator, recorder: Recorder | None = None
) -> RunResult:
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
        "credentials:\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}\n"
        "steps:\n"
        "  - id: s\n"
        "    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"
        f"{step}"
    )
    return run_job(job, recorder or Recorder(), emulator=emulator)


def faulty(emulator: Emulator, *faults: Fault) -> Emulator:
    emulator.set_stub("f", FlowStub(faults=faults))
    return emulator


def test_throttled_twice_then_success_sends_three_times(tmp_path: Path, emulator: Emulator) -> None:
    throttled = Fault(times=2, status=429, headers={"Retry-After": "0"})
    recorder = Recorder()

    result = run(tmp_path, f"    {FAST_RETRY}\n", faulty(emulator, throttled), recorder)

    assert result.exit_code == 0
    assert [c.status for c in emulator.invocations()] == [429, 429, 200]
    assert result.steps[0].attempts == 3
    assert recorder.retries() == [("throttled", 1), ("throttled", 2)]


def test_server_error_on_a_non_idempotent_step_is_not_resent(
    tmp_path: Path, emulator: Emulator
) -> None:
    result = run(tmp_path, f"    {FAST_RETRY}\n", faulty(emulator, Fault(times=1, status=500)))

    assert result.exit_code == 1
    assert len(emulator.invocations()) == 1
    assert result.steps[0].error == (
        'HTTP 500 (expected 2xx): {"error": "injected fault 500"} '
        "(not re-sent: the flow may have run; `idempotent: true` allows retries)"
    )


def test_server_error_on_an_idempotent_step_is_resent(tmp_path: Path, emulator: Emulator) -> None:
    step = f"    idempotent: true\n    {FAST_RETRY}\n"

    result = run(tmp_path, step, faulty(emulator, Fault(times=1, status=500)))

    assert result.exit_code == 0
    assert [c.status for c in emulator.invocations()] == [500, 200]


def test_a_dropped_connection_is_not_resent(tmp_path: Path, emulator: Emulator) -> None:
    result = run(tmp_path, f"    {FAST_RETRY}\n", faulty(emulator, Fault(times=1, drop=True)))

    assert result.exit_code == 1
    assert len(emulator.invocations()) == 1
    assert str(result.steps[0].error).startswith("dropped: ")


def test_attempts_bound_the_total(tmp_path: Path, emulator: Emulator) -> None:
    unavailable = Fault(times=5, status=503, headers={"Retry-After": "0"})

    result = run(tmp_path, f"    {FAST_RETRY}\n", faulty(emulator, unavailable))

    assert result.exit_code == 1
    assert len(emulator.invocations()) == 3


def test_fail_fast_stops_sending_items(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(times=1), Fault(times=1, status=400))))
    step = (
        '    foreach: "{{ [1, 2, 3, 4] }}"\n    fail_fast: true\n    payload: {n: "{{ item }}"}\n'
    )

    result = run(tmp_path, step, emulator)

    assert result.exit_code == 1
    assert [json.loads(c.body)["n"] for c in emulator.invocations()] == [1, 2]
    assert result.steps[0].error == "1 of 2 items failed"


def test_one_failed_item_does_not_stop_the_others(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(times=1, status=400),)))
    step = '    foreach: "{{ [1, 2, 3] }}"\n    payload: {n: "{{ item }}"}\n'

    result = run(tmp_path, step, emulator)

    assert result.exit_code == 1
    assert len(emulator.invocations()) == 3
    assert [r.status for r in result.steps[0].results] == ["failed", "succeeded", "succeeded"]


def test_foreach_reads_csv_rows_as_dicts(tmp_path: Path, emulator: Emulator) -> None:
    (tmp_path / "hires.csv").write_text("login,app\nada,slack\ngrace,github\n")
    step = (
        '    foreach: {csv: hires.csv}\n    payload: {who: "{{ item.login }}", i: "{{ index }}"}\n'
    )

    result = run(tmp_path, step, emulator)

    assert result.exit_code == 0
    bodies = [json.loads(c.body) for c in emulator.invocations()]
    assert bodies == [{"who": "ada", "i": 0}, {"who": "grace", "i": 1}]


def test_undefined_at_render_time_fails_the_step_before_sending(
    tmp_path: Path, emulator: Emulator
) -> None:
    step = '    payload: {x: "{{ env.OWF_SURELY_UNSET_VARIABLE }}"}\n'

    result = run(tmp_path, step, emulator)

    assert result.exit_code == 1
    assert emulator.invocations() == []
    assert result.steps[0].error == (
        f"{tmp_path / 'job.yaml'}:8:15: steps[0].payload.x: "
        "undefined: 'dict object' has no attribute 'OWF_SURELY_UNSET_VARIABLE'"
    )


def test_a_payload_over_one_mebibyte_is_not_sent(tmp_path: Path, emulator: Emulator) -> None:
    step = "    payload: {blob: \"{{ 'x' * (1024 * 1024) }}\"}\n"

    result = run(tmp_path, step, emulator)

    assert result.exit_code == 1
    assert emulator.invocations() == []
    error = str(result.steps[0].error)
    assert error.startswith(f"{tmp_path / 'job.yaml'}:8:5: steps[0].payload: rendered payload is ")
    assert error.endswith(" bytes; the limit is 1 MiB")


@pytest.mark.parametrize("when", ["false", '"{{ 1 > 2 }}"', '"{{ [] }}"'])
def test_falsy_when_skips(tmp_path: Path, emulator: Emulator, when: str) -> None:
    result = run(tmp_path, f"    when: {when}\n", emulator)

    assert result.steps[0].status == "skipped"
    assert emulator.calls == []


def test_a_sandbox_violation_fails_the_step_before_sending(
    tmp_path: Path, emulator: Emulator
) -> None:
    step = "    payload: {x: \"{{ ''.__class__.__mro__ }}\"}\n"

    result = run(tmp_path, step, emulator)

    assert result.exit_code == 1
    assert emulator.calls == []  # not even a token request
    assert result.steps[0].error == (
        f"{tmp_path / 'job.yaml'}:8:15: steps[0].payload.x: not allowed in templates: "
        "access to attribute '__class__' of 'str' object is unsafe."
    )
