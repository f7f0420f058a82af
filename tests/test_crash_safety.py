"""Crash-safe runs end to end (DESIGN §6): real `owf-run` processes against the emulator.

Each test runs the console script as cron would, kills or signals it at a moment it learns
from the emulator (the call it waits for has arrived), and then checks what Okta received
(each item's invocations, counted by the item in the payload), exit codes, printed lines and
what the journal holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from owf_runner.emulator import Emulator, Fault, FlowStub
from tests.conftest import Cli
from tests.processes import Finished, Running, owf_run, started

HANG = 30.0  # seconds a flow takes to answer the call a test kills at: it never does in time
ITEMS = tuple(f"i{n:02}" for n in range(12))
OPEN = "credentials:\n  open: {type: none}\n"
RunCli = Callable[..., Cli]


# -- the rig: an emulator, a job file, a state dir --------------------------------------------


@dataclass(frozen=True)
class Rig:
    emulator: Emulator
    job: Path
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "OWF_STATE_DIR": str(self.state)}

    def args(self, *extra: str) -> list[str]:
        return [str(self.job), "--emulator", self.emulator.base_url, *extra]

    def run(self, *extra: str) -> Finished:
        return owf_run(self.args(*extra), self.env)

    @contextlib.contextmanager
    def start(self, *extra: str) -> Iterator[Running]:
        with started(self.args(*extra), self.env) as child:
            yield child

    def calls(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.emulator.calls) >= count

    def sent(self, flow: str = "each") -> Counter[str]:
        """How often the emulator received each item (named in the payload)."""
        return Counter(json.loads(call.body)["item"] for call in self.emulator.invocations(flow))

    def received(self, flow: str) -> list[bytes]:
        return [call.body for call in self.emulator.invocations(flow)]

    def write(self, text: str) -> None:
        self.job.write_text(text)


@pytest.fixture
def rig(emulator: Emulator, tmp_path: Path) -> Rig:
    return Rig(emulator, tmp_path / "job.yaml", tmp_path / "state")


def foreach_job(concurrency: int = 1, items: tuple[str, ...] = ITEMS) -> str:
    return f"""version: 1
vars:
  names: [{", ".join(items)}]
orgs:
  local: {{domain: acme.okta.com, credential: open}}
{OPEN}defaults:
  rate_limit: 1000/s
steps:
  - id: each
    flow: https://acme.workflows.okta.com/api/flo/each/invoke
    foreach: "{{{{ vars.names }}}}"
    concurrency: {concurrency}
    label: "{{{{ item }}}}"
    payload: {{item: "{{{{ item }}}}"}}
"""


def open_stub(*faults: Fault) -> FlowStub:
    return FlowStub(security="none", faults=faults)


def hang_at(call: int, count: int = 1) -> FlowStub:
    """Calls before ``call`` answer at once; ``count`` calls from it on hang."""
    before = (Fault(times=call - 1),) if call > 1 else ()
    return open_stub(*before, Fault(times=count, delay=HANG))


# -- the journal, read as another program would ------------------------------------------------


def query(state: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    uri = f"file:{state / 'runs.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(sql, params).fetchall()


def only_run(state: Path) -> str:
    (run,) = query(state, "SELECT id FROM runs")
    return str(run[0])


def item_statuses(state: Path, run_id: str) -> dict[str, str]:
    rows = query(state, "SELECT label, status FROM items WHERE run_id = ?", run_id)
    return {str(label): str(status) for label, status in rows}


def run_status(state: Path, run_id: str) -> tuple[object, ...]:
    (row,) = query(state, "SELECT status, exit_code, sessions FROM runs WHERE id = ?", run_id)
    return row


def lines(text: str) -> list[str]:
    """Printed lines without their ISO 8601 timestamp (cron output carries one)."""
    return [line.split(" ", 1)[1] if line[:4].isdigit() else line for line in text.splitlines()]


def once(items: tuple[str, ...] | list[str], times: int = 1) -> Counter[str]:
    return Counter(dict.fromkeys(items, times))


def unknown_advice(rig: Rig, run_id: str, names: list[str]) -> str:
    count = len(names)
    many = count != 1
    return (
        f"{count} invocation{'s' if many else ''} may have run the flow and "
        f"{'were' if many else 'was'} not sent again: {', '.join(names)}. Check in Okta whether "
        f"they ran; `owf-run {rig.job} --resume --retry-unknown` sends them again "
        f"(`owf-run show {run_id}` lists them)."
    )


# -- 1. kill -9 mid-foreach ---------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_killed_run_resumes_sending_each_item_once_and_the_in_flight_ones_only_on_request(
    rig: Rig, cli: RunCli, concurrency: int
) -> None:
    rig.write(foreach_job(concurrency))
    rig.emulator.set_stub("each", hang_at(4, count=concurrency))
    with rig.start() as first:
        first.await_event(rig.calls(3 + concurrency), "every worker to have a request in flight")
        assert first.killed().code == -signal.SIGKILL
    in_flight = sorted(json.loads(call.body)["item"] for call in rig.emulator.calls[3:])
    if concurrency == 1:
        assert in_flight == ["i03"]
    run_id = only_run(rig.state)
    assert item_statuses(rig.state, run_id) == {
        **dict.fromkeys(ITEMS[:3], "succeeded"),
        **dict.fromkeys(in_flight, "sending"),
    }
    assert run_status(rig.state, run_id) == ("running", None, 1)

    resumed = rig.run("--resume")

    assert resumed.code == 1, resumed.out + resumed.err
    assert rig.sent() == once(ITEMS), "every item once over both runs; the in-flight ones unsent"
    names = [f"each[{item}]" for item in in_flight]
    assert lines(resumed.out)[0] == f"resuming run {run_id}: only what did not succeed is sent"
    assert resumed.out.splitlines()[-1] == unknown_advice(rig, run_id, names)
    assert resumed.err == ""
    for item in in_flight:
        assert (
            f"each[{item}]: failed: not re-sent: its outcome is unknown since run {run_id} "
            "(in flight when the run stopped); `--retry-unknown` sends it again"
        ) in lines(resumed.out)
    shown = cli("show", run_id)
    assert shown.code == 0
    assert shown.out.splitlines()[-len(in_flight) - 1 :] == [
        "each: items that did not succeed",
        *(
            f"  {item}: outcome unknown (the run stopped while it was in flight)"
            for item in in_flight
        ),
    ]

    retried = rig.run("--resume", "--retry-unknown")

    assert retried.code == 0, retried.out + retried.err
    assert rig.sent() == once(ITEMS) + once(in_flight)
    assert item_statuses(rig.state, run_id) == dict.fromkeys(ITEMS, "succeeded")

    final = rig.run("--resume")

    assert final.code == 0
    assert lines(final.out) == [f"nothing to resume: the latest run of {rig.job} succeeded"]
    assert rig.sent() == once(ITEMS) + once(in_flight)
    assert run_status(rig.state, run_id) == ("succeeded", 0, 3)
