"""The runner through the real stages (load_plan → credentials → execute) against an in-process
emulator, on a fake clock: every wait is recorded, none is slept."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from owf_runner import context, runner
from owf_runner.auth import TOKEN_ATTEMPTS
from owf_runner.emulator import Emulator, Fault, FlowStub
from owf_runner.failures import Failure
from owf_runner.outcomes import ItemResult, Status, StepResult
from owf_runner.plan import StepPlan
from owf_runner.report import ConsoleReporter
from tests.fakes import FakeClock, Run, run_job

# Backoff capped at its start: every wait it picks is exactly 2 s, jitter or not.
RETRY = "    retry: {attempts: 3, backoff: {initial: 2, max: 2}}\n"
NOT_RESENT = "(not re-sent: the flow may have run; `idempotent: true` allows retries)"


class Recorder:
    """A Reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def step_started(self, step: StepPlan) -> None:
        self.events.append(("started", step.id))

    def foreach_started(self, step: StepPlan, total: int | None) -> None:
        pass

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        self.events.append(("item", (result.index, result.status)))

    def retrying(
        self, step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
    ) -> None:
        self.events.append(("retry", (failure.failure_class, attempt, wait)))

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        self.events.append(("finished", (step.id, result.status)))

    def retries(self) -> list[Any]:
        return [value for kind, value in self.events if kind == "retry"]


def run(
    tmp_path: Path,
    step: str,
    emulator: Emulator,
    fake_clock: FakeClock,
    recorder: Recorder | None = None,
    *faults: Fault,
    more_steps: str = "",
) -> Run:
    """One OAuth step `s` on flow `f` (its key a stand-in), ``step`` its extra YAML."""
    job = tmp_path / "job.yaml"
    job.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
        "credentials:\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}\n"
        "steps:\n"
        "  - id: s\n"
        "    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"
        f"{step}{more_steps}"
    )
    stubs = {"f": FlowStub(faults=faults)} if faults else None
    return run_job(job, emulator, fake_clock, recorder or Recorder(), stubs=stubs)


@pytest.fixture
def emulator(timed_emulator: Emulator) -> Emulator:
    """The runner and the emulator on one fake clock: assertions, resets and pacing agree."""
    return timed_emulator


def statuses(emulator: Emulator) -> list[int]:
    return [call.status for call in emulator.invocations()]


def test_throttled_twice_then_success_sends_three_times(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    throttled = Fault(times=2, status=429, headers={"Retry-After": "1"})
    recorder = Recorder()

    done = run(tmp_path, RETRY, emulator, fake_clock, recorder, throttled)

    assert done.code == 0
    assert statuses(emulator) == [429, 429, 200]
    assert done.result.steps[0].attempts == 3
    assert recorder.retries() == [("throttled", 1, 1.0), ("throttled", 2, 1.0)]
    assert fake_clock.sleeps == [1.0, 1.0]  # the pacer, held by the 429s, adds no wait of its own


def test_server_error_on_a_non_idempotent_step_is_not_resent(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    done = run(tmp_path, RETRY, emulator, fake_clock, None, Fault(times=1, status=500))

    assert done.code == 1
    assert len(emulator.invocations()) == 1
    assert done.result.steps[0].error == (
        f'HTTP 500 (expected 2xx): {{"error": "injected fault 500"}} {NOT_RESENT}'
    )
    assert fake_clock.sleeps == []


def test_server_error_on_an_idempotent_step_is_resent_after_the_backoff(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = f"    idempotent: true\n{RETRY}"

    done = run(tmp_path, step, emulator, fake_clock, None, Fault(times=1, status=500))

    assert done.code == 0
    assert statuses(emulator) == [500, 200]
    assert fake_clock.sleeps == [2.0]


def test_a_dropped_connection_is_not_resent(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    done = run(tmp_path, RETRY, emulator, fake_clock, None, Fault(times=1, drop=True))

    assert done.code == 1
    assert len(emulator.invocations()) == 1
    assert str(done.result.steps[0].error).startswith("dropped: ")
    assert str(done.result.steps[0].error).endswith(NOT_RESENT)


def test_attempts_bound_the_total(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    recorder = Recorder()

    done = run(tmp_path, RETRY, emulator, fake_clock, recorder, Fault(times=5, status=503))

    assert done.code == 1
    assert statuses(emulator) == [503, 503, 503]
    assert recorder.retries() == [("unavailable", 1, 2.0), ("unavailable", 2, 2.0)]
    assert fake_clock.sleeps == [2.0, 2.0]


def test_fail_fast_stops_sending_items(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = (
        '    foreach: "{{ [1, 2, 3, 4] }}"\n    fail_fast: true\n    payload: {n: "{{ item }}"}\n'
    )

    done = run(
        tmp_path, step, emulator, fake_clock, None, Fault(times=1), Fault(times=1, status=400)
    )

    assert done.code == 1
    assert [json.loads(c.body)["n"] for c in emulator.invocations()] == [1, 2]
    assert done.result.steps[0].error == "1 of 2 items failed"


def test_one_failed_item_does_not_stop_the_others(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = '    foreach: "{{ [1, 2, 3] }}"\n    payload: {n: "{{ item }}"}\n'
    recorder = Recorder()

    done = run(tmp_path, step, emulator, fake_clock, recorder, Fault(times=1, status=400))

    assert done.code == 1
    assert len(emulator.invocations()) == 3
    step_result = done.result.steps[0]
    assert (step_result.items, step_result.error) == (3, "1 of 3 items failed")
    assert [(r.index, r.status) for r in step_result.failures] == [(0, "failed")]
    assert step_result.results == ()  # no later template reads them: none kept
    assert [v for kind, v in recorder.events if kind == "item"] == [
        (0, Status.FAILED),
        (1, Status.SUCCEEDED),
        (2, Status.SUCCEEDED),
    ]


def test_foreach_items_on_one_flow_are_paced_by_the_clock(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = '    foreach: "{{ range(4) | list }}"\n    rate_limit: 2/s\n'

    done = run(tmp_path, step, emulator, fake_clock)

    assert done.code == 0
    assert len(emulator.invocations()) == 4
    assert fake_clock.sleeps == [
        0.5,
        0.5,
        0.5,
    ]  # one worker: each turn half a second after the last
    assert fake_clock.now == 1.5


def test_foreach_reads_csv_rows_as_dicts(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    (tmp_path / "hires.csv").write_text("login,app\nada,slack\ngrace,github\n")
    step = (
        '    foreach: {csv: hires.csv}\n    payload: {who: "{{ item.login }}", i: "{{ index }}"}\n'
    )

    done = run(tmp_path, step, emulator, fake_clock)

    assert done.code == 0
    bodies = [json.loads(c.body) for c in emulator.invocations()]
    assert bodies == [{"who": "ada", "i": 0}, {"who": "grace", "i": 1}]


def test_undefined_at_render_time_fails_the_step_before_sending(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = '    payload: {x: "{{ env.OWF_SURELY_UNSET_VARIABLE }}"}\n'

    done = run(tmp_path, step, emulator, fake_clock)

    assert done.code == 1
    assert emulator.invocations() == []
    assert done.result.steps[0].error == (
        f"{tmp_path / 'job.yaml'}:8:15: steps[0].payload.x: "
        "undefined: 'dict object' has no attribute 'OWF_SURELY_UNSET_VARIABLE'"
    )


def test_a_payload_over_one_mebibyte_is_not_sent(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = "    payload: {blob: \"{{ 'x' * (1024 * 1024) }}\"}\n"

    done = run(tmp_path, step, emulator, fake_clock)

    assert done.code == 1
    assert emulator.invocations() == []
    error = str(done.result.steps[0].error)
    assert error.startswith(f"{tmp_path / 'job.yaml'}:8:5: steps[0].payload: rendered payload is ")
    assert error.endswith(" bytes; the limit is 1 MiB")


@pytest.mark.parametrize("when", ["false", '"{{ 1 > 2 }}"', '"{{ [] }}"'])
def test_falsy_when_skips(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock, when: str
) -> None:
    done = run(tmp_path, f"    when: {when}\n", emulator, fake_clock)

    assert done.result.steps[0].status == "skipped"
    assert emulator.calls == []


def test_a_sandbox_violation_fails_the_step_before_sending(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = "    payload: {x: \"{{ ''.__class__.__mro__ }}\"}\n"

    done = run(tmp_path, step, emulator, fake_clock)

    assert done.code == 1
    assert emulator.calls == []  # not even a token request
    assert done.result.steps[0].error == (
        f"{tmp_path / 'job.yaml'}:8:15: steps[0].payload.x: not allowed in templates: "
        "access to attribute '__class__' of 'str' object is unsafe."
    )


SECOND = "  - id: t\n    flow: https://acme.workflows.okta.com/api/flo/g/invoke\n"


def test_continue_on_error_is_an_ignored_failure(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    done = run(
        tmp_path,
        "    continue_on_error: true\n",
        emulator,
        fake_clock,
        None,
        Fault(status=400),
        more_steps=SECOND,
    )

    first, second = done.result.steps
    assert (first.status, first.ignored, first.shown_status) == ("failed", True, "failed (ignored)")
    assert (second.status, second.ignored) == ("succeeded", False)
    assert done.code == 0
    assert done.result.outcome == "succeeded with 1 ignored failure"


def test_a_failed_step_stops_the_run(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    done = run(tmp_path, "", emulator, fake_clock, None, Fault(status=400), more_steps=SECOND)

    assert [(s.id, s.status) for s in done.result.steps] == [("s", "failed"), ("t", "not run")]
    assert done.code == 1
    assert done.result.outcome == "failed"
    assert [call.flow_id for call in emulator.invocations()] == ["f"]


def test_an_unreachable_token_endpoint_fails_the_step_after_every_try(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    emulator.set_token_faults(Fault(times=99, status=502))

    done = run(tmp_path, "", emulator, fake_clock, more_steps=SECOND)

    assert done.code == 1
    assert [(s.id, s.status) for s in done.result.steps] == [("s", "failed"), ("t", "not run")]
    assert done.result.steps[0].error == (
        "could not reach the token endpoint https://acme.okta.com/oauth2/v1/token "
        f"({TOKEN_ATTEMPTS} tries; HTTP 502)"
    )
    assert len(emulator.token_requests()) == TOKEN_ATTEMPTS
    assert emulator.invocations() == []
    # Exponential backoff from half a second, with up to a second of jitter.
    assert len(fake_clock.sleeps) == TOKEN_ATTEMPTS - 1
    for wait, low in zip(fake_clock.sleeps, [0.5, 1.0, 2.0], strict=True):
        assert low <= wait <= low + 1


def test_a_step_that_succeeds_at_once_builds_no_retryer(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_retryer(*args: Any) -> None:
        raise AssertionError("a retryer was built for a step that did not fail")

    monkeypatch.setattr("owf_runner.retry.retrying", no_retryer)

    done = run(tmp_path, "", emulator, fake_clock)

    assert done.code == 0
    assert done.result.steps[0].attempts == 1


def test_a_later_template_reading_the_results_gets_every_item_in_order(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = '    foreach: "{{ [1, 2, 3] }}"\n    concurrency: 3\n    payload: {n: "{{ item }}"}\n'
    later = (
        f"{SECOND}    payload:\n"
        "      items: \"{{ steps.s.results | map(attribute='item') | list }}\"\n"
        "      failed: \"{{ steps.s.results | selectattr('status', 'eq', 'failed') | list\n"
        '        | length }}"\n'
    )

    done = run(tmp_path, step, emulator, fake_clock, None, more_steps=later)

    assert done.code == 0
    assert [r.index for r in done.result.steps[0].results] == [0, 1, 2]
    assert json.loads(emulator.invocations()[-1].body) == {"items": [1, 2, 3], "failed": 0}


def test_a_csv_row_with_missing_or_extra_fields_fails_alone_naming_its_line(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    csv_path = tmp_path / "hires.csv"
    csv_path.write_text("login,app\nada,slack\ngrace\nlin,zoom\nbob,git,extra\n")
    step = '    foreach: {csv: hires.csv}\n    payload: {who: "{{ item.login }}"}\n'

    recorder = Recorder()

    done = run(tmp_path, step, emulator, fake_clock, recorder)

    assert done.code == 1
    assert [json.loads(c.body) for c in emulator.invocations()] == [{"who": "ada"}, {"who": "lin"}]
    result = done.result.steps[0]
    assert (result.items, result.error) == (4, "2 of 4 items failed")
    assert [(r.index, r.attempts, r.error) for r in result.failures] == [
        (1, 0, f"{csv_path}:3: 1 field, but the header names 2"),
        (3, 0, f"{csv_path}:5: 3 fields, but the header names 2"),
    ]
    assert [v for kind, v in recorder.events if kind == "item"] == [
        (0, Status.SUCCEEDED),
        (1, Status.FAILED),
        (2, Status.SUCCEEDED),
        (3, Status.FAILED),
    ]


def test_quiet_prints_nothing_for_steps_and_items_that_succeed(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    (tmp_path / "job.yaml").write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
        "credentials:\n"
        "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}\n"
        "steps:\n"
        "  - id: s\n"
        "    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"
        '    foreach: "{{ [1, 2, 3] }}"\n'
        f"{SECOND}"
    )
    out = io.StringIO()

    done = run_job(tmp_path / "job.yaml", emulator, fake_clock, ConsoleReporter(out, quiet=True))

    assert done.code == 0
    assert len(emulator.invocations()) == 4
    assert out.getvalue() == ""


def test_the_environment_is_copied_once_per_run_not_per_step(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts: list[dict[str, Any]] = []
    original = context.job_context

    def counted(*args: Any) -> dict[str, Any]:
        contexts.append(original(*args))
        return contexts[-1]

    monkeypatch.setattr(runner, "job_context", counted)
    step = '    foreach: "{{ [1, 2, 3] }}"\n    payload: {home: "{{ env.HOME }}"}\n'

    done = run(tmp_path, step, emulator, fake_clock, more_steps=SECOND)

    assert done.code == 0
    assert len(contexts) == 1


# -- where: and label: ------------------------------------------------------------------

PEOPLE = (
    "email,status\nada@x.org,active\nbob@x.org,gone\ncy@x.org,active\nbad-row\ndee@x.org,active\n"
)


def test_where_sends_only_the_items_it_keeps_and_counts_the_rest(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE)
    step = (
        "    foreach: {csv: people.csv, where: \"{{ item.status == 'active' }}\"}\n"
        '    payload: {who: "{{ item.email }}", i: "{{ index }}"}\n'
    )

    done = run(tmp_path, step, emulator, fake_clock)

    sent = [json.loads(c.body) for c in emulator.invocations()]
    assert sent == [
        {"who": "ada@x.org", "i": 0},
        {"who": "cy@x.org", "i": 2},
        {"who": "dee@x.org", "i": 4},
    ]
    result = done.result.steps[0]
    # The unreadable row is not filtered: it fails, named by its line, and the step with it.
    assert (result.items, result.left_out, result.error) == (4, 1, "1 of 4 items failed")
    assert [(r.index, r.error) for r in result.failures] == [
        (3, f"{tmp_path / 'people.csv'}:5: 1 field, but the header names 2")
    ]


def test_where_failing_for_one_item_fails_that_item_alone(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    (tmp_path / "people.jsonl").write_text(
        '{"active": true, "n": 1}\n{"n": 2}\n{"active": true, "n": 3}\n'
    )
    step = (
        '    foreach: {jsonl: people.jsonl, where: "{{ item.active }}"}\n'
        '    payload: {n: "{{ item.n }}"}\n'
    )

    done = run(tmp_path, step, emulator, fake_clock)

    assert [json.loads(c.body) for c in emulator.invocations()] == [{"n": 1}, {"n": 3}]
    (failed,) = done.result.steps[0].failures
    assert (failed.index, failed.attempts) == (1, 0)
    assert failed.error == (
        f"{tmp_path / 'job.yaml'}:8:36: steps[0].foreach.where: "
        "undefined: 'dict object' has no attribute 'active'"
    )


def test_label_names_items_in_failures_retries_and_lines(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    (tmp_path / "people.csv").write_text("email\nada@x.org\nbob@x.org\n")
    step = (
        "    foreach: {csv: people.csv}\n"
        '    label: "{{ item.email }} (#{{ index }})"\n'
        '    payload: {who: "{{ item.email }}"}\n'
        f"{RETRY}"
    )
    out = io.StringIO()
    fault = Fault(times=3, status=503)

    done = run(tmp_path, step, emulator, fake_clock, ConsoleReporter(out, live=False), fault)

    printed = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()[:4]]
    assert printed[1:4] == [
        "s[ada@x.org (#0)]: attempt 1 failed (unavailable: HTTP 503 (expected 2xx): "
        '{"error": "injected fault 503"}); retrying in 2.0s',
        "s[ada@x.org (#0)]: attempt 2 failed (unavailable: HTTP 503 (expected 2xx): "
        '{"error": "injected fault 503"}); retrying in 2.0s',
        's[ada@x.org (#0)]: failed: HTTP 503 (expected 2xx): {"error": "injected fault 503"}',
    ]
    assert [(r.index, r.label) for r in done.result.steps[0].failures] == [(0, "ada@x.org (#0)")]


def test_a_label_that_fails_to_render_fails_its_item_unsent(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = (
        "    foreach: \"{{ [{'email': 'ada@x.org'}, {'name': 'Bob'}] }}\"\n"
        '    label: "{{ item.email }}"\n'
        '    payload: {n: "{{ index }}"}\n'
    )

    done = run(tmp_path, step, emulator, fake_clock)

    assert [json.loads(c.body) for c in emulator.invocations()] == [{"n": 0}]
    (failed,) = done.result.steps[0].failures
    assert (failed.index, failed.label, failed.attempts) == (1, None, 0)
    assert failed.error == (
        f"{tmp_path / 'job.yaml'}:9:5: steps[0].label: "
        "undefined: 'dict object' has no attribute 'email'"
    )


def test_a_long_label_is_cut_and_a_value_label_is_json(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    step = (
        '    foreach: "{{ [1, 2] }}"\n'
        "    label: \"{{ {'n': item, 'pad': 'x' * 300} if item == 2 else [item] }}\"\n"
        "    expect: {status: [599]}\n"
    )

    done = run(tmp_path, step, emulator, fake_clock)

    first, second = (str(r.label) for r in done.result.steps[0].failures)
    assert first == "[1]"
    assert len(second) == runner.MAX_LABEL
    assert second == '{"n": 2, "pad": "' + "x" * (runner.MAX_LABEL - 18) + "…"
