"""`--log-format json`: JSON Lines from a real run on a fake clock, and from hostile values."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from owf_runner import runcmd
from owf_runner.commands import load_plan
from owf_runner.emulator import Emulator, Fault, FlowStub
from owf_runner.failures import Failure, FailureClass
from owf_runner.jsonlog import MAX_STRING, JsonLinesReporter, json_line
from owf_runner.outcomes import ItemResult, Response, RunResult, Status, StepResult
from owf_runner.plan import StepPlan
from owf_runner.redaction import MASK, REDACTOR
from tests.conftest import encoded_forms
from tests.fakes import EPOCH, FakeClock, run_job

JOB = """\
version: 1
orgs: {acme: {domain: acme.okta.com, credential: jwt}}
credentials:
  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}
steps:
  - id: hello
    flow: https://acme.workflows.okta.com/api/flo/f/invoke
    retry: {attempts: 3, backoff: {initial: 2, max: 2}}
  - id: each
    flow: https://acme.workflows.okta.com/api/flo/g/invoke
    foreach: ["ann", "bob", "cy"]
    label: "{{ item }}"
    continue_on_error: true
"""
# hello: throttled once, then answers; each: its first item (ann) refused with a 400.
STUBS = {
    "f": FlowStub(faults=(Fault(times=1, status=429, headers={"Retry-After": "1"}),)),
    "g": FlowStub(faults=(Fault(times=1, status=400),)),
}
T0 = "2001-09-09T01:46:40"  # tests.fakes.EPOCH, when the fake clock starts


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    """Every line parsed: each one JSON, ASCII, one object."""
    parsed = []
    for line in out.getvalue().splitlines():
        assert line.isascii()
        assert line.isprintable()
        record = json.loads(line)
        assert isinstance(record, dict)
        parsed.append(record)
    return parsed


def run(
    tmp_path: Path, emulator: Emulator, clock: FakeClock, **options: bool
) -> list[dict[str, Any]]:
    """The small job through the real runner, its JSON lines (summary included), parsed."""
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    out = io.StringIO()
    reporter = JsonLinesReporter(out, clock=clock.monotonic, wall=clock.time, **options)
    done = run_job(job, emulator, clock, reporter, stubs=STUBS)
    reporter.summary(done.result, str(job))
    records = lines(out)
    for record in records:  # the run id is random; the rest is exact
        if record["event"] == "summary":
            assert record.pop("run_id") == done.result.run_id
    return records


def started(step: str, ts: str) -> dict[str, Any]:
    return {"ts": ts, "event": "step_started", "step": step, "org": "acme", "method": "POST"}


RETRYING = {
    "ts": f"{T0}.000Z",
    "event": "retrying",
    "step": "hello",
    "item": None,
    "attempt": 1,
    "failure": "throttled",
    "error": 'HTTP 429 (expected 2xx): {"error": "injected fault 429"}',
    "wait": 1.0,
}
HELLO_DONE = {
    "ts": "2001-09-09T01:46:41.000Z",
    "event": "step_finished",
    "step": "hello",
    "status": "succeeded",
    "ignored": False,
    "attempts": 2,
    "seconds": 1.0,
    "items": None,
    "left_out": None,
    "failed_items": None,
    "error": None,
    "http_status": 200,
    "restored": False,
    "body": None,
}
ANN_FAILED = {
    "ts": "2001-09-09T01:46:41.000Z",
    "event": "item_finished",
    "step": "each",
    "item": "ann",
    "index": 0,
    "status": "failed",
    "attempts": 1,
    "error": 'HTTP 400 (expected 2xx): {"error": "injected fault 400"}',
    "http_status": 400,
    "restored": False,
}
EACH_DONE = {
    "ts": "2001-09-09T01:46:41.200Z",  # the org's pace: 10 invocations a second
    "event": "step_finished",
    "step": "each",
    "status": "failed",
    "ignored": True,
    "attempts": 3,
    "seconds": 0.2,
    "items": 3,
    "left_out": 0,
    "failed_items": 1,
    "error": "1 of 3 items failed",
    "http_status": None,
    "restored": False,
    "body": None,
}
SUMMARY = {
    "ts": "2001-09-09T01:46:41.200Z",
    "event": "summary",
    "job": "job",
    "started_at": "2001-09-09T01:46:40+00:00",
    "outcome": "succeeded with 1 ignored failure",
    "steps": [
        {"step": "hello", "status": "succeeded", "ignored": False, "attempts": 2, "seconds": 1.0},
        {"step": "each", "status": "failed", "ignored": True, "attempts": 3, "seconds": 0.2},
    ],
    "unknown_count": 0,
    "unknown": [],
    "advice": None,
}


def heartbeat(ts: str, done: int, rate: float | None) -> dict[str, Any]:
    return {
        "ts": ts,
        "event": "heartbeat",
        "step": "each",
        "done": done,
        "total": 3,
        "failed": 1,
        "rate": rate,
        "eta": None if rate is None else 0,
    }


def succeeded(name: str, index: int, ts: str) -> dict[str, Any]:
    return ANN_FAILED | {
        "ts": ts,
        "item": name,
        "index": index,
        "status": "succeeded",
        "error": None,
        "http_status": 200,
    }


@pytest.fixture
def emulator(timed_emulator: Emulator) -> Emulator:
    return timed_emulator


def test_a_run_is_one_object_per_event(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    assert run(tmp_path, emulator, fake_clock) == [
        started("hello", f"{T0}.000Z"),
        RETRYING,
        HELLO_DONE,
        started("each", "2001-09-09T01:46:41.000Z"),
        ANN_FAILED,
        heartbeat("2001-09-09T01:46:41.000Z", 1, None),  # at each tenth, as on the console
        heartbeat("2001-09-09T01:46:41.100Z", 2, 20.0),
        EACH_DONE,
        SUMMARY,
    ]


def test_verbose_adds_every_item_and_the_response_body(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    assert run(tmp_path, emulator, fake_clock, verbose=True) == [
        started("hello", f"{T0}.000Z"),
        RETRYING,
        HELLO_DONE | {"body": "{}"},
        started("each", "2001-09-09T01:46:41.000Z"),
        ANN_FAILED,
        heartbeat("2001-09-09T01:46:41.000Z", 1, None),
        succeeded("bob", 1, "2001-09-09T01:46:41.100Z"),
        heartbeat("2001-09-09T01:46:41.100Z", 2, 20.0),
        succeeded("cy", 2, "2001-09-09T01:46:41.200Z"),
        EACH_DONE,
        SUMMARY,
    ]


def test_quiet_keeps_the_failures_and_the_summary_of_a_run_that_did_not_plainly_succeed(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock
) -> None:
    assert run(tmp_path, emulator, fake_clock, quiet=True) == [ANN_FAILED, EACH_DONE, SUMMARY]


# -- one reporter, called directly ------------------------------------------------------------


class Ticks:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def step(tmp_path: Path) -> StepPlan:
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    return load_plan(job).steps[1]


def reporter(out: io.StringIO, **options: Any) -> JsonLinesReporter:
    return JsonLinesReporter(out, wall=lambda: EPOCH, **options)


def test_without_a_total_a_heartbeat_comes_every_30_seconds(step: StepPlan) -> None:
    out = io.StringIO()
    log = reporter(out, clock=Ticks(10.0))
    log.foreach_started(step, None)
    for index in range(7):
        log.item_finished(step, ItemResult(index, index, Status.SUCCEEDED, 1))

    beats = [(r["done"], r["total"], r["rate"], r["eta"]) for r in lines(out)]
    assert beats == [(3, None, 0.1, None), (6, None, 0.1, None)]


def test_quiet_says_only_what_must_be_said(step: StepPlan) -> None:
    out = io.StringIO()
    log = reporter(out, quiet=True)

    log.say("resuming run r1")
    log.say("nothing to resume", always=True)
    log.step_started(step)
    log.step_finished(step, StepResult("each", Status.SUCCEEDED))
    log.summary(RunResult("r1", "job", "t", (StepResult("each", Status.SUCCEEDED),)))

    assert lines(out) == [
        {"ts": f"{T0}.000Z", "event": "message", "text": "nothing to resume"},
    ]


def test_a_canary_secret_is_masked_in_every_encoding(step: StepPlan) -> None:
    canary = 'canary-Sécret "quoted"/+?&=\\ end'
    REDACTOR.add(canary)
    out = io.StringIO()
    log = reporter(out, verbose=True)
    failure = Failure(FailureClass.SERVER, f"HTTP 500: {canary}")
    body = {"echo": canary, "nested": [canary]}

    log.say(f"message with {canary}")
    log.retrying(step, canary, failure, 1, 2.0)
    log.item_finished(step, ItemResult(0, canary, Status.FAILED, 1, error=canary, label=canary))
    log.step_finished(
        step, StepResult("each", Status.FAILED, 1, error=canary, response=Response(200, {}, body))
    )

    printed = out.getvalue()
    for name, form in encoded_forms(canary).items():
        assert form not in printed, name
    texts = [r.get("text") or r.get("error") for r in lines(out)]
    assert texts == [f"message with {MASK}", f"HTTP 500: {MASK}", MASK, MASK]
    assert lines(out)[-1]["body"] == json.dumps({"echo": MASK, "nested": [MASK]})


@pytest.mark.parametrize(
    ("hostile", "parsed"),
    [
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("nul\x00 del\x7f esc\x1b[2J bel\x07", "nul\x00 del\x7f esc\x1b[2J bel\x07"),
        ("line\nforged\r\u2028\u2029 bidi\u202e", "line\nforged\r\u2028\u2029 bidi\u202e"),
        ('quote" backslash\\ brace}', 'quote" backslash\\ brace}'),
    ],
)
def test_hostile_strings_are_escaped_and_each_line_stays_one_object(
    step: StepPlan, hostile: str, parsed: str
) -> None:
    out = io.StringIO()
    log = reporter(out)

    log.item_finished(step, ItemResult(0, 0, Status.FAILED, 1, error=hostile, label=hostile))

    (record,) = lines(out)  # one line, ASCII and printable: nothing reaches a terminal raw
    assert (record["item"], record["error"]) == (parsed, parsed)


def test_a_huge_value_is_cut_to_4096_characters(step: StepPlan) -> None:
    out = io.StringIO()

    reporter(out).item_finished(step, ItemResult(0, 0, Status.FAILED, 1, error="é" * 1_000_000))

    (record,) = lines(out)
    assert record["error"] == "é" * (MAX_STRING - 1) + "…"


def test_a_number_a_short_secret_would_mask_is_written_as_the_mask(step: StepPlan) -> None:
    REDACTOR.add("7")  # a secret output `7`: masked where it stands as a word
    out = io.StringIO()

    reporter(out).item_finished(step, ItemResult(0, 0, Status.FAILED, 7, error="boom"))

    (record,) = lines(out)
    assert (record["attempts"], record["error"]) == (MASK, "boom")


def test_a_secret_that_matches_a_key_withholds_the_line_but_keeps_it_json(step: StepPlan) -> None:
    REDACTOR.add('"error":')
    out = io.StringIO()

    reporter(out).item_finished(step, ItemResult(0, 0, Status.FAILED, 1, error="boom"))

    assert lines(out) == [
        {
            "ts": f"{T0}.000Z",
            "event": "item_finished",
            "withheld": "this line was withheld: masking a secret in it would have broken its JSON",
        }
    ]


def test_a_secret_that_matches_every_line_leaves_none(step: StepPlan) -> None:
    REDACTOR.add('{"ts":"')

    assert json_line({"ts": "t", "event": "message", "text": "hi"}) is None


def test_a_closed_stream_ends_nothing(step: StepPlan) -> None:
    out = io.StringIO()
    out.close()

    reporter(out).say("nobody reads this")  # no ValueError


def test_the_run_command_takes_it_in_place_of_the_console(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    job = tmp_path / "open.yaml"
    job.write_text(
        "version: 1\n"
        "orgs: {acme: {domain: acme.okta.com, credential: open}}\n"
        "credentials: {open: {type: none}}\n"
        "steps: [{id: one, flow: 'https://acme.workflows.okta.com/api/flo/f/invoke'}]\n"
    )
    out = io.StringIO()
    log = JsonLinesReporter(out, clock=fake_clock.monotonic, wall=fake_clock.time)

    code = runcmd.run(job, log, runcmd.RunOptions(emulate=True), fake_clock)

    assert code == 0
    records = lines(out)
    assert [record["event"] for record in records] == [
        "message",
        "step_started",
        "step_finished",
        "summary",
    ]
    assert records[0]["text"] == (
        "emulating Okta: every request goes to a built-in emulator on loopback"
    )
    assert records[-1]["outcome"] == "succeeded"
