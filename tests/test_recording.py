"""The journal as the runner's RunLog (recording.py): `sending` committed before a request
leaves, outcomes as they come, never a secret output — a real Journal in tmp_path, the runner
on a fake clock against the in-process emulator."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from owf_runner.emulator import Emulator, Fault, FlowStub, RecordedCall
from owf_runner.journal import FILENAME, RUNNING, STEP_INVOCATION, Journal, RunRecord
from owf_runner.plan import OutputPlan, StepPlan
from owf_runner.recording import JournalLog, execution_id, item_digest, public_outputs
from owf_runner.runner import STOPPED_IN_FLIGHT, Session, new_run
from owf_runner.stopping import Stop
from tests.fakes import FakeClock, Run, run_job

SECRET = "tok-8c1f0e5a9b7d4e2f"
HEADER = (
    "version: 1\n"
    "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
    "credentials:\n"
    "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}\n"
    "steps:\n"
    "  - id: a\n"
    "    flow: https://acme.workflows.okta.com/api/flo/f/invoke\n"
)
ITEMS = '    foreach: "{{ [0, 1, 2] }}"\n    payload: {n: "{{ item }}"}\n'
SECRET_OUTPUTS = (
    "    outputs:\n"
    '      token: {value: "{{ response.body.token }}", secret: true}\n'
    '      user: "{{ response.body.user }}"\n'
)


class Peeks:
    """The emulator's ``on_call``: what another process reads in the journal at the moment
    the emulator has the call (from the serving thread, on a connection of its own)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.seen: list[tuple[int, str | None]] = []
        self.then: Callable[[], object] = lambda: None  # after the peek

    def __call__(self, call: RecordedCall) -> None:
        if call.kind != "invoke":
            return
        payload = json.loads(call.body or b"null")
        index = payload["n"] if isinstance(payload, dict) else STEP_INVOCATION
        db = sqlite3.connect(self.database, isolation_level=None)
        try:
            row = db.execute("SELECT status FROM items WHERE idx = ?", (index,)).fetchone()
        finally:
            db.close()
        self.seen.append((index, None if row is None else row[0]))
        self.then()


class LoopLog(JournalLog):
    """A JournalLog that knows its run's event loop (for a thread to call into)."""

    loop: asyncio.AbstractEventLoop | None = None

    def step_started(self, step: StepPlan) -> None:
        self.loop = asyncio.get_running_loop()
        super().step_started(step)

    def call_soon(self, callback: Callable[[], object]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(callback)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def peeks(state: Path) -> Peeks:
    return Peeks(state / FILENAME)


@pytest.fixture
def emulator(fake_clock: FakeClock, peeks: Peeks) -> Iterator[Emulator]:
    emu = Emulator(clock=fake_clock.time, on_call=peeks)
    with emu.running():
        yield emu


@pytest.fixture
def journal(state: Path) -> Iterator[Journal]:
    with Journal.open(state) as opened:
        yield opened


class Recorded:
    """A job run with a JournalLog: its log, its run id, and what the journal then holds."""

    def __init__(self, tmp_path: Path, emulator: Emulator, clock: FakeClock, journal: Journal):
        self.tmp_path, self.emulator, self.clock, self.journal = tmp_path, emulator, clock, journal
        self.info = new_run(clock)
        self.log = LoopLog(journal, self.info.id)
        self.stop = Stop()

    def run(self, extra: str, stub: FlowStub | None = None) -> Run:
        job = self.tmp_path / "job.yaml"
        job.write_text(HEADER + extra)
        self.journal.begin_run(
            RunRecord(id=self.info.id, job_path=str(job), job_sha256="00" * 32,
                      job_name="job", started_at=self.info.started_at, status=RUNNING)
        )  # fmt: skip
        session = Session(self.info, log=self.log, stop=self.stop)
        stubs = None if stub is None else {"f": stub}
        return run_job(job, self.emulator, self.clock, stubs=stubs, session=session)

    def items(self) -> list[Any]:
        return list(self.journal.items(self.info.id, "a"))

    def dump(self) -> str:
        """Every value the journal file holds, as SQL text."""
        db = sqlite3.connect(self.journal.path)
        try:
            return "\n".join(db.iterdump())
        finally:
            db.close()


@pytest.fixture
def recorded(
    tmp_path: Path, emulator: Emulator, fake_clock: FakeClock, journal: Journal
) -> Recorded:
    return Recorded(tmp_path, emulator, fake_clock, journal)


# -- sending before the request ---------------------------------------------------------------


def test_each_item_is_committed_sending_before_its_request_arrives(
    recorded: Recorded, peeks: Peeks
) -> None:
    done = recorded.run(ITEMS + "    concurrency: 3\n")

    assert done.code == 0
    assert sorted(peeks.seen) == [(0, "sending"), (1, "sending"), (2, "sending")]
    assert [(r.index, r.status, r.attempts, r.http_status) for r in recorded.items()] == [
        (0, "succeeded", 1, 200),
        (1, "succeeded", 1, 200),
        (2, "succeeded", 1, 200),
    ]
    assert [r.digest for r in recorded.items()] == [item_digest(n) for n in (0, 1, 2)]


def test_a_step_without_foreach_is_committed_sending_before_its_request(
    recorded: Recorded, peeks: Peeks
) -> None:
    done = recorded.run("")

    assert done.code == 0
    assert peeks.seen == [(STEP_INVOCATION, "sending")]
    [record] = recorded.items()
    assert (record.index, record.status, record.digest) == (STEP_INVOCATION, "succeeded", None)


def test_a_retried_item_stays_sending_on_record_until_its_outcome(
    recorded: Recorded, peeks: Peeks
) -> None:
    retry = "    retry: {attempts: 3, backoff: {initial: 2, max: 2}}\n"

    recorded.run(retry, FlowStub(faults=(Fault(times=1, status=503),)))

    assert peeks.seen == [(STEP_INVOCATION, "sending"), (STEP_INVOCATION, "sending")]
    [record] = recorded.items()
    assert (record.status, record.attempts) == ("succeeded", 2)


def test_an_ambiguous_failure_is_recorded_unknown(recorded: Recorded) -> None:
    done = recorded.run("", FlowStub(faults=(Fault(drop=True),)))

    assert done.code == 1
    [record] = recorded.items()
    assert (record.status, record.http_status) == ("unknown", None)
    assert record.error == done.result.steps[0].error


def test_an_item_cancelled_in_flight_is_recorded_unknown(recorded: Recorded, peeks: Peeks) -> None:
    def stop_now() -> None:
        recorded.stop.request()
        recorded.stop.cancel_in_flight()  # as when the grace period is over

    peeks.then = lambda: recorded.log.call_soon(stop_now)

    recorded.run(ITEMS, FlowStub(faults=(Fault(delay=5.0),)))

    [record] = recorded.items()  # items 1 and 2 never started: nothing on record
    assert (record.index, record.status, record.attempts) == (0, "unknown", 1)
    assert record.error == STOPPED_IN_FLIGHT
    assert peeks.seen == [(0, "sending")]
    assert recorded.log._digests == {}


# -- what is kept, and what never is ---------------------------------------------------------


def test_secret_outputs_are_never_written(recorded: Recorded) -> None:
    stub = FlowStub(body={"token": SECRET, "user": "u1"}, echo=False)

    done = recorded.run(SECRET_OUTPUTS, stub)

    assert done.code == 0
    assert done.result.steps[0].outputs == {"token": SECRET, "user": "u1"}  # in memory only
    [step] = recorded.journal.steps(recorded.info.id)
    assert step.outputs == {"user": "u1"}
    [item] = recorded.items()
    assert item.outputs == {"user": "u1"}
    assert SECRET not in recorded.dump()  # nor in a stored body or response: redacted


def test_secret_outputs_of_foreach_items_are_never_written(recorded: Recorded) -> None:
    stub = FlowStub(body={"token": SECRET, "user": "u1"}, echo=False)

    recorded.run(ITEMS + SECRET_OUTPUTS, stub)

    assert [item.outputs for item in recorded.items()] == [{"user": "u1"}] * 3
    assert SECRET not in recorded.dump()


def output(name: str, secret: bool) -> OutputPlan:
    return OutputPlan(name, None, secret)  # type: ignore[arg-type]  # the value is not read


def test_public_outputs_drop_exactly_the_secret_ones() -> None:
    class Step:
        outputs = (output("token", True), output("user", False))

    public = public_outputs(Step(), {"token": SECRET, "user": "u1", "extra": 2})  # type: ignore[arg-type]

    assert public == {"user": "u1", "extra": 2}


def test_execution_id_is_recorded_from_the_okta_header(recorded: Recorded) -> None:
    recorded.run("", FlowStub(headers={"X-Okta-Flow-Execution-Id": "exec-42"}))

    [record] = recorded.items()
    assert record.execution_id == "exec-42"


def test_execution_id_is_recorded_from_the_body(recorded: Recorded) -> None:
    recorded.run(ITEMS, FlowStub(body={"executionId": "exec-7"}, echo=False))

    assert [record.execution_id for record in recorded.items()] == ["exec-7"] * 3


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"x-okta-flow-execution-id": "h1"}, {"executionId": "b1"}, "h1"),  # the header first
        ({"x-execution-id": "h2"}, None, "h2"),
        ({}, {"executionId": "b1"}, "b1"),
        ({}, {"execution_id": "b2"}, "b2"),
        ({"x-okta-flow-execution-id": ""}, {"executionId": "b1"}, "b1"),  # empty: not an id
        ({}, {"executionId": 42}, None),  # not text: not an id
        ({}, ["executionId"], None),
        ({}, "executionId", None),
        ("not headers", None, None),
    ],
)
def test_execution_id_from_headers_or_body(headers: Any, body: Any, expected: str | None) -> None:
    assert execution_id(headers, body) == expected


# -- item digests ------------------------------------------------------------------------------


def test_an_items_digest_does_not_depend_on_key_order() -> None:
    assert item_digest({"a": 1, "b": [1, 2]}) == item_digest({"b": [1, 2], "a": 1})
    assert item_digest({"a": 1}) != item_digest({"a": 2})
    assert item_digest([1, 2]) != item_digest([2, 1])
    assert item_digest(1) != item_digest("1")


def test_a_csv_rows_digest_is_the_one_earlier_versions_recorded() -> None:
    """A resume compares fingerprints with the journal's: the text hashed must never change."""
    row = {"name": "Ada", "email": "ada@example.com"}
    text = "row:5:email15:ada@example.com4:name3:Ada"
    assert item_digest(row) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_a_mapping_with_keys_of_several_types_is_fingerprinted_as_json() -> None:
    mixed = {1: "a", "b": "c"}
    text = json.dumps(mixed, sort_keys=False, ensure_ascii=False, default=repr)
    assert item_digest(mixed) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert item_digest({"a": "1", "b": 2}) != item_digest({"a": "1", "b": "2"})


def test_an_items_digest_is_short_hex_and_takes_any_value() -> None:
    digests = [item_digest(value) for value in ("\ud800", b"raw", object, None)]

    assert all(len(d) == 16 and int(d, 16) >= 0 for d in digests)
    assert item_digest("\ud800") == item_digest("\ud800")


def test_the_digest_map_is_empty_after_a_run(recorded: Recorded) -> None:
    recorded.run('    foreach: "{{ range(50) | list }}"\n    concurrency: 5\n')

    assert len(recorded.items()) == 50
    assert recorded.log._digests == {}  # in flight only: memory stays flat


def test_the_digest_map_is_empty_after_failures_too(recorded: Recorded) -> None:
    faults = (Fault(times=1, drop=True), Fault(times=1, status=400))

    recorded.run(ITEMS, FlowStub(faults=faults))

    assert [r.status for r in recorded.items()] == ["unknown", "failed", "succeeded"]
    assert recorded.log._digests == {}


def test_an_item_that_never_was_sending_gets_its_digest_at_its_outcome(
    recorded: Recorded,
) -> None:
    label = '    label: "{{ item.name.upper() }}"\n'  # fails for the item without a name

    recorded.run("    foreach: \"{{ [{'name': 'x'}, {}] }}\"\n" + label)

    records = recorded.items()
    assert [(r.index, r.status) for r in records] == [(0, "succeeded"), (1, "failed")]
    assert records[1].digest == item_digest({})
    assert recorded.log._digests == {}


def test_a_step_record_holds_no_secret_and_its_steps_answer(recorded: Recorded) -> None:
    stub = FlowStub(body={"token": SECRET, "user": "u1"}, echo=False)

    recorded.run(SECRET_OUTPUTS, stub)

    [step] = recorded.journal.steps(recorded.info.id)
    assert step.response is not None
    assert step.response["status"] == 200
    assert step.response["body"]["user"] == "u1"
    assert SECRET not in json.dumps(step.response)
