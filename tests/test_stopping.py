"""Stopping a run (DESIGN §6): what a stop leaves behind at each point it can come — between
steps, in a backoff, in a pacer's wait, with a request in flight — on a fake clock against the
in-process emulator; and ``on_signals`` with a real signal on a real event loop."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from owf_runner import commands, runcmd, runner
from owf_runner.credentials import resolve_credentials
from owf_runner.emulation import prepare, stand_in
from owf_runner.emulator import Emulator, Fault, FlowStub, RecordedCall
from owf_runner.errors import ExitCode
from owf_runner.failures import Failure
from owf_runner.http import EmulatorTransport, real_transport
from owf_runner.outcomes import ItemResult, RunResult, Status, StepResult
from owf_runner.plan import StepPlan
from owf_runner.report import ConsoleReporter
from owf_runner.runner import Session, new_run
from owf_runner.stopping import Stop, on_signals
from tests.fakes import FakeClock, Run, run_job

RETRY = "    retry: {attempts: 3, backoff: {initial: 2, max: 2}}\n"
NOT_RESENT = "(not re-sent: the flow may have run; `idempotent: true` allows retries)"
STOPPED_AFTER_ONE = "not retried: the run was stopped after 1 attempt"
STOPPED_FIRST = "not sent: the run was stopped first"
STOPPED_EARLY = "stopped before every item had run"
DROPPED = "dropped: RemoteProtocolError: Server disconnected without sending a response."
HEADER = (
    "version: 1\n"
    "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
    "credentials:\n"
    "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: k, private_key: {env: NOPE_KEY}}\n"
    "steps:\n"
)


def step(step_id: str, extra: str = "", flow: str = "f") -> str:
    return (
        f"  - id: {step_id}\n"
        f"    flow: https://acme.workflows.okta.com/api/flo/{flow}/invoke\n"
        f"{extra}"
    )


class Hooks:
    """A silent Reporter that lets a test act at a moment of the run."""

    def __init__(self) -> None:
        self.on_retrying: Callable[[], None] = lambda: None
        self.on_item: Callable[[ItemResult], None] = lambda result: None
        self.on_step: Callable[[StepResult], None] = lambda result: None

    def step_started(self, step: StepPlan) -> None:
        pass

    def foreach_started(self, step: StepPlan, total: int | None) -> None:
        pass

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        self.on_item(result)

    def retrying(
        self, step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
    ) -> None:
        self.on_retrying()

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        self.on_step(result)


class Log:
    """A RunLog in memory: what was announced as sending, and every invocation's result."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None]] = []
        self.results: list[ItemResult] = []
        self.on_sending: Callable[[int | None], None] = lambda index: None

    def step_started(self, step: StepPlan) -> None:
        pass

    async def sending(
        self, step: StepPlan, index: int | None, label: str | None, item: Any
    ) -> None:
        self.sent.append((step.id, index))
        self.on_sending(index)

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        self.results.append(result)

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        pass

    def by_index(self) -> dict[int | None, ItemResult]:
        return {result.index: result for result in self.results}


class OnCall:
    """The emulator's ``on_call``: runs ``action`` (from the serving thread) for each call of
    ``kind`` (flow invocations unless told)."""

    def __init__(self) -> None:
        self.action: Callable[[RecordedCall], object] = lambda call: None
        self.kind = "invoke"

    def __call__(self, call: RecordedCall) -> None:
        if call.kind == self.kind:
            self.action(call)


@pytest.fixture
def on_call() -> OnCall:
    return OnCall()


@pytest.fixture
def emulator(fake_clock: FakeClock, on_call: OnCall) -> Iterator[Emulator]:
    emu = Emulator(clock=fake_clock.time, on_call=on_call)
    with emu.running():
        yield emu


class Setup:
    """One job, its stop, its log and its hooks: what each test drives."""

    def __init__(self, tmp_path: Path, emulator: Emulator, clock: FakeClock) -> None:
        self.tmp_path, self.emulator, self.clock = tmp_path, emulator, clock
        self.stop, self.log, self.hooks = Stop(), Log(), Hooks()

    def run(self, steps: str, *faults: Fault) -> Run:
        job = self.tmp_path / "job.yaml"
        job.write_text(HEADER + steps)
        session = Session(new_run(self.clock), log=self.log, stop=self.stop)
        stubs = {"f": FlowStub(faults=faults)} if faults else None
        return run_job(job, self.emulator, self.clock, self.hooks, stubs=stubs, session=session)

    def sent_items(self) -> list[Any]:
        return [json.loads(call.body)["n"] for call in self.emulator.invocations()]


@pytest.fixture
def setup(tmp_path: Path, emulator: Emulator, fake_clock: FakeClock) -> Setup:
    return Setup(tmp_path, emulator, fake_clock)


def statuses(done: Run) -> list[str]:
    return [str(result.status) for result in done.result.steps]


# -- between steps ---------------------------------------------------------------------------------


def test_a_stop_requested_before_the_run_sends_nothing(setup: Setup) -> None:
    setup.stop.request(signal.SIGTERM)

    done = setup.run(step("a") + step("b"))

    assert statuses(done) == ["not run", "not run"]
    assert setup.emulator.calls == []  # not even a token
    assert setup.log.sent == []


def test_a_stop_after_a_step_leaves_the_later_steps_not_run(setup: Setup) -> None:
    setup.hooks.on_step = lambda result: setup.stop.request()

    done = setup.run(step("a") + step("b", flow="g") + step("c", flow="h"))

    assert statuses(done) == ["succeeded", "not run", "not run"]
    assert [call.flow_id for call in setup.emulator.invocations()] == ["f"]
    assert setup.log.sent == [("a", None)]


# -- in a wait of the runner's own: nothing of it has left -----------------------------------------


def test_a_stop_during_a_retry_backoff_fails_the_step_as_not_retried(setup: Setup) -> None:
    def stop_once_the_backoff_sleeps() -> None:
        asyncio.get_running_loop().call_soon(setup.stop.request)  # runs once the task waits

    setup.hooks.on_retrying = stop_once_the_backoff_sleeps

    done = setup.run(step("a", RETRY) + step("b"), Fault(times=5, status=503))

    assert statuses(done) == ["failed", "not run"]
    failed = done.result.steps[0]
    assert (failed.error, failed.attempts, failed.unknown_count) == (STOPPED_AFTER_ONE, 1, 0)
    [result] = setup.log.results
    assert (result.status, result.error) == (Status.FAILED, STOPPED_AFTER_ONE)
    assert len(setup.emulator.invocations()) == 1
    assert setup.clock.sleeps == [2.0]  # the backoff began, and was cut short
    assert setup.clock.now == 0.0


def test_a_stop_between_tries_sends_no_further_try(setup: Setup) -> None:
    setup.hooks.on_retrying = setup.stop.request  # before the backoff: it is never slept

    done = setup.run(step("a", RETRY), Fault(times=5, status=503))

    assert done.result.steps[0].error == STOPPED_AFTER_ONE
    assert setup.log.results[0].status is Status.FAILED
    assert len(setup.emulator.invocations()) == 1
    assert setup.clock.sleeps == []


PACED = '    foreach: "{{ [0, 1] }}"\n    concurrency: 2\n    rate_limit: 1/s\n'
PACED_PAYLOAD = '    payload: {n: "{{ item }}"}\n'


def test_a_stop_while_an_item_waits_its_pacer_turn_leaves_it_not_sent(setup: Setup) -> None:
    setup.hooks.on_item = lambda result: setup.stop.request()  # item 1 waits for t=1 s

    done = setup.run(step("a", PACED + PACED_PAYLOAD))

    assert setup.sent_items() == [0]
    assert setup.log.sent == [("a", 0)]
    waited = setup.log.by_index()[1]
    assert (waited.status, waited.attempts, waited.error) == (Status.FAILED, 0, STOPPED_FIRST)
    assert done.result.steps[0].error == "1 of 2 items failed"  # every item had been taken
    assert done.result.steps[0].unknown_count == 0
    assert setup.clock.now == 0.0  # its wait was cut short, not slept through


def test_a_stop_ends_a_token_fetchs_backoff_and_its_retries(
    setup: Setup, emulator: Emulator, on_call: OnCall
) -> None:
    job = setup.tmp_path / "job.yaml"
    job.write_text(HEADER + step("a"))
    plan = commands.load_plan(job)
    resolved = resolve_credentials(plan, stand_in)
    prepare(emulator, plan, resolved, None)
    emulator.set_token_faults(Fault(times=3, status=503))
    on_call.kind = "token"
    session = Session(new_run(setup.clock), log=setup.log, stop=setup.stop)

    async def main() -> RunResult:  # as `owf-run` wires it: runcmd._execute
        loop = asyncio.get_running_loop()
        on_call.action = lambda call: loop.call_soon_threadsafe(setup.stop.request)
        transport = EmulatorTransport(emulator.base_url, setup.clock.track(real_transport()))
        reporter = ConsoleReporter(stream=io.StringIO())
        return await runcmd._execute(plan, resolved, transport, reporter, setup.clock, session, 60)

    result = asyncio.run(main())

    assert len(emulator.token_requests()) == 1
    assert result.steps[0].error == STOPPED_FIRST
    assert emulator.invocations() == []


# -- with a request in flight ----------------------------------------------------------------------


def stop_and_cancel_once_the_emulator_has_the_call(setup: Setup, on_call: OnCall) -> None:
    """As a second signal would: stop, then cancel what is in flight — from the loop's thread."""

    def capture_loop(index: int | None) -> None:
        loop = asyncio.get_running_loop()

        def stop_now() -> None:
            setup.stop.request(signal.SIGTERM)
            setup.stop.cancel_in_flight()

        on_call.action = lambda call: loop.call_soon_threadsafe(stop_now)

    setup.log.on_sending = capture_loop


SLOW = Fault(delay=5.0)  # real seconds in the emulator's thread: the cancel comes long before


def test_a_request_cancelled_in_flight_is_unknown(setup: Setup, on_call: OnCall) -> None:
    stop_and_cancel_once_the_emulator_has_the_call(setup, on_call)

    done = setup.run(step("a") + step("b"), SLOW)

    assert statuses(done) == ["failed", "not run"]
    failed = done.result.steps[0]
    assert failed.error == runner.STOPPED_IN_FLIGHT
    assert (failed.unknown, failed.unknown_count, failed.attempts) == (("a",), 1, 1)
    [result] = setup.log.results
    assert (result.status, result.error) == (Status.UNKNOWN, runner.STOPPED_IN_FLIGHT)
    assert result.as_context()["status"] == "failed"  # templates know two ways to fail
    assert len(setup.emulator.invocations()) == 1


def test_an_item_cancelled_in_flight_is_unknown_and_named(setup: Setup, on_call: OnCall) -> None:
    stop_and_cancel_once_the_emulator_has_the_call(setup, on_call)

    done = setup.run(step("a", '    foreach: "{{ [0, 1, 2] }}"\n' + PACED_PAYLOAD), SLOW)

    failed = done.result.steps[0]
    assert failed.status is Status.FAILED
    assert failed.error == (
        f"{STOPPED_EARLY}; 1 of 1 items failed (1 of them may have run the flow: not re-sent)"
    )
    assert (failed.unknown, failed.unknown_count, failed.items) == (("a[0]",), 1, 1)
    [result] = failed.failures
    assert (result.status, result.error) == (Status.UNKNOWN, runner.STOPPED_IN_FLIGHT)
    assert result.as_context()["status"] == "failed"
    assert setup.sent_items() == [0]


def test_only_what_was_in_flight_is_unknown(setup: Setup, on_call: OnCall) -> None:
    stop_and_cancel_once_the_emulator_has_the_call(setup, on_call)  # item 1 waits its turn
    items = '    foreach: "{{ [0, 1] }}"\n    concurrency: 2\n'

    done = setup.run(step("a", items + PACED_PAYLOAD), SLOW)

    results = setup.log.by_index()
    assert (results[0].status, results[0].error) == (Status.UNKNOWN, runner.STOPPED_IN_FLIGHT)
    assert (results[1].status, results[1].attempts, results[1].error) == (
        Status.FAILED,
        0,
        STOPPED_FIRST,
    )
    assert done.result.steps[0].error == (
        "2 of 2 items failed (1 of them may have run the flow: not re-sent)"
    )
    assert setup.sent_items() == [0]


# -- a foreach stopped mid-way ---------------------------------------------------------------------


def test_a_foreach_stopped_mid_way_starts_no_further_item(setup: Setup) -> None:
    # Three workers take items 0, 1, 2, paced 0.1 s apart; the first, done with item 0, takes
    # item 3 and waits its turn; the stop comes once item 1 is done: 2 and 3 are waiting.
    setup.hooks.on_item = lambda result: setup.stop.request() if result.index == 1 else None
    items = '    foreach: "{{ range(10) | list }}"\n    concurrency: 3\n'

    done = setup.run(step("a", items + PACED_PAYLOAD) + step("b"))

    assert setup.sent_items() == [0, 1]
    assert setup.log.sent == [("a", 0), ("a", 1)]
    assert set(setup.log.by_index()) == {0, 1, 2, 3}  # 4 to 9 never started
    waited = [setup.log.by_index()[i] for i in (2, 3)]
    assert [(r.status, r.attempts, r.error) for r in waited] == [
        (Status.FAILED, 0, STOPPED_FIRST)
    ] * 2
    failed = done.result.steps[0]
    assert failed.error == f"{STOPPED_EARLY}; 2 of 4 items failed"
    assert (failed.items, failed.unknown_count) == (4, 0)
    assert statuses(done) == ["failed", "not run"]
    assert setup.clock.now == 0.1  # the waits for 0.2 s and 0.3 s were cut short


def test_an_item_stopped_while_its_sending_is_put_on_record_is_not_sent(setup: Setup) -> None:
    """The stop came as its `sending` was committed: it had not left, so it does not."""
    setup.log.on_sending = lambda index: setup.stop.request()
    items = '    foreach: "{{ range(10) | list }}"\n'

    done = setup.run(step("a", items + PACED_PAYLOAD))

    assert setup.sent_items() == []
    [result] = setup.log.results
    assert (result.status, result.attempts, result.error) == (Status.FAILED, 0, STOPPED_FIRST)
    assert done.result.steps[0].items == 1


def test_a_stop_during_the_last_item_leaves_the_foreach_succeeded(setup: Setup) -> None:
    setup.hooks.on_item = lambda result: setup.stop.request() if result.index == 2 else None

    done = setup.run(step("a", '    foreach: "{{ [0, 1, 2] }}"\n' + PACED_PAYLOAD) + step("b"))

    assert setup.sent_items() == [0, 1, 2]
    assert statuses(done) == ["succeeded", "not run"]
    assert done.result.steps[0].error is None


# -- ambiguous failures ----------------------------------------------------------------------------


def test_a_dropped_connection_on_a_step_that_is_not_idempotent_is_unknown(setup: Setup) -> None:
    done = setup.run(step("a", RETRY), Fault(times=1, drop=True))

    failed = done.result.steps[0]
    [result] = setup.log.results
    assert result.status is Status.UNKNOWN
    assert result.error == failed.error == f"{DROPPED} {NOT_RESENT}"
    assert (failed.status, failed.unknown, failed.unknown_count) == (Status.FAILED, ("a",), 1)
    assert len(setup.emulator.invocations()) == 1


def test_a_dropped_connection_on_an_idempotent_step_is_retried_never_unknown(
    setup: Setup,
) -> None:
    done = setup.run(step("a", "    idempotent: true\n" + RETRY), Fault(times=1, drop=True))

    assert statuses(done) == ["succeeded"]
    assert [r.status for r in setup.log.results] == [Status.SUCCEEDED]
    assert len(setup.emulator.invocations()) == 2


def test_an_idempotent_step_dropped_on_every_try_fails_without_being_unknown(
    setup: Setup,
) -> None:
    done = setup.run(step("a", "    idempotent: true\n" + RETRY), Fault(times=5, drop=True))

    failed = done.result.steps[0]
    assert (failed.status, failed.attempts, failed.unknown_count) == (Status.FAILED, 3, 0)
    assert [r.status for r in setup.log.results] == [Status.FAILED]
    assert "(not re-sent" not in str(failed.error)


def test_a_refusal_is_a_plain_failure_not_unknown(setup: Setup) -> None:
    done = setup.run(step("a"), Fault(times=1, status=400))

    assert [r.status for r in setup.log.results] == [Status.FAILED]
    assert done.result.steps[0].unknown_count == 0


# -- on_signals: a real signal on a real loop ------------------------------------------------------


async def _until(condition: Callable[[], bool]) -> None:
    """A signal reaches the loop through its wake-up pipe within a few iterations."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the signal never reached the loop")


def test_sigterm_requests_the_stop_and_the_handler_goes_with_the_context() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stop = Stop()

    async def main() -> None:
        with on_signals(stop, grace=60.0):
            os.kill(os.getpid(), signal.SIGTERM)
            await _until(lambda: stop.requested)

    asyncio.run(main())

    assert (stop.requested, stop.signal, stop.exit_code) == (True, signal.SIGTERM, 143)
    assert stop.exit_code is ExitCode.TERMINATED
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_sigint_exits_130() -> None:
    stop = Stop()

    async def main() -> None:
        with on_signals(stop, grace=60.0):
            os.kill(os.getpid(), signal.SIGINT)
            await _until(lambda: stop.requested)

    asyncio.run(main())

    assert stop.exit_code is ExitCode.INTERRUPTED
    assert int(ExitCode.INTERRUPTED) == 130


def test_in_flight_work_is_cancelled_once_the_grace_period_is_over() -> None:
    stop = Stop()

    async def main() -> bool:
        in_flight = asyncio.ensure_future(asyncio.Event().wait())
        with on_signals(stop, grace=0.0), stop.cancellable(in_flight):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait([in_flight])  # the grace timer (0 s) cancels it
        return in_flight.cancelled()

    assert asyncio.run(main()) is True
    assert stop.exit_code == 143


def test_a_second_signal_cancels_in_flight_work_at_once() -> None:
    stop = Stop()

    async def main() -> bool:
        in_flight = asyncio.ensure_future(asyncio.Event().wait())
        with on_signals(stop, grace=3600.0), stop.cancellable(in_flight):
            os.kill(os.getpid(), signal.SIGTERM)
            await _until(lambda: stop.requested)
            assert not in_flight.done()  # the first signal lets it finish
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait([in_flight])
        return in_flight.cancelled()

    assert asyncio.run(main()) is True
    assert stop.exit_code == 143  # the first signal names the exit


def test_a_stop_ends_the_runners_own_waits_at_once() -> None:
    clock = FakeClock()
    stop = Stop()

    async def main() -> None:
        sleeper = asyncio.ensure_future(stop.clock(clock).sleep(30.0))
        await asyncio.sleep(0)
        stop.request()
        with pytest.raises(asyncio.CancelledError):
            await sleeper

    asyncio.run(main())

    assert (clock.sleeps, clock.now) == ([30.0], 0.0)


def test_after_a_stop_the_runner_waits_no_more() -> None:
    clock = FakeClock()
    stop = Stop()
    stop.request()

    with pytest.raises(asyncio.CancelledError):  # told apart by the runner, as a cut-short wait
        asyncio.run(stop.clock(clock).sleep(30.0))

    assert clock.sleeps == []
