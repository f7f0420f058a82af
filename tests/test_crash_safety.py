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
import re
import secrets
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import pytest

from owf_runner.emulator import Emulator, Fault, FlowStub
from owf_runner.history import UNKNOWN_OUTCOME
from owf_runner.http import build_client
from owf_runner.runlock import lock_path
from owf_runner.runner import STOPPED_IN_FLIGHT
from tests.conftest import Cli, encodings, pem, rsa_key
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

    def sent(self) -> Counter[str]:
        """How often the emulator received each item (named in the payload), on any flow."""
        return Counter(json.loads(call.body)["item"] for call in self.emulator.invocations())

    def received(self, flow: str) -> list[bytes]:
        return [call.body for call in self.emulator.invocations(flow)]

    def write(self, text: str) -> None:
        self.job.write_text(text)


@pytest.fixture
def rig(emulator: Emulator, tmp_path: Path) -> Rig:
    return Rig(emulator, tmp_path / "job.yaml", tmp_path / "state")


def foreach_job(
    concurrency: int = 1, items: tuple[str, ...] = ITEMS, slow: tuple[str, ...] = ()
) -> str:
    """One foreach step sending each item to flow `each` — or, for the ``slow`` items, to
    flow `slow`: which items hang is then up to the test, not to the order calls arrive in."""
    flow = "{{ 'slow' if item in vars.slow else 'each' }}" if slow else "each"
    return f"""version: 1
vars:
  names: [{", ".join(items)}]
  slow: [{", ".join(slow)}]
orgs:
  local: {{domain: acme.okta.com, credential: open}}
{OPEN}defaults:
  rate_limit: 1000/s
steps:
  - id: each
    flow: "https://acme.workflows.okta.com/api/flo/{flow}/invoke"
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


STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def lines(text: str) -> list[str]:
    """Printed lines without their ISO 8601 timestamp (cron output carries one)."""
    return [STAMP.sub("", line) for line in text.splitlines()]


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


VARYING = {  # what differs from run to run in `history` and `show` lines
    "<moment>": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ",
    "<duration> ": r"\d+\.\ds *",  # and its padding
    "<seconds>": r"\d+\.\d\ds",
}


def assert_lines(text: str, expected: list[str]) -> None:
    """``text`` is ``expected`` line for line, but for the VARYING parts."""
    patterns = []
    for line in expected:
        pattern = re.escape(line)
        for token, varying in VARYING.items():
            pattern = pattern.replace(re.escape(token), varying)
        patterns.append(pattern)
    got = text.splitlines()
    matched = len(got) == len(patterns) and all(map(re.fullmatch, patterns, got))
    assert matched, "\n".join(["got:", *got, "expected:", *expected])


def show_header(rig: Rig, run_id: str, *, status: str, code: int, sessions: int) -> list[str]:
    return [
        f"run {run_id}",
        "  job:       job",
        f"  path:      {rig.job.resolve()}",
        "  started:   <moment>",
        "  duration:  <duration> ",
        f"  status:    {status} (emulated)",
        f"  exit code: {code}",
        f"  sessions:  {sessions}",
    ]


# -- kill -9 mid-foreach ---------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_killed_run_resumes_sending_each_item_once_and_the_in_flight_ones_only_on_request(
    rig: Rig, cli: RunCli, concurrency: int
) -> None:
    # The first three items are answered; the next ones hang, one per worker.
    answered, in_flight = list(ITEMS[:3]), list(ITEMS[3 : 3 + concurrency])
    rig.write(foreach_job(concurrency, slow=tuple(in_flight)))
    rig.emulator.set_stub("each", open_stub())
    rig.emulator.set_stub("slow", open_stub(Fault(times=len(in_flight), delay=HANG)))
    with rig.start() as first:
        first.await_event(rig.calls(3 + concurrency), "every worker to have a request in flight")
        assert first.killed().code == -signal.SIGKILL
    assert rig.sent() == once(answered + in_flight)
    rig.emulator.set_stub("slow", open_stub())  # from now on it answers at once
    run_id = only_run(rig.state)
    assert item_statuses(rig.state, run_id) == {
        **dict.fromkeys(answered, "succeeded"),
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
    ok = len(ITEMS) - concurrency
    shown = cli("show", run_id)
    assert shown.code == 0
    assert_lines(
        shown.out,
        [
            *show_header(rig, run_id, status="failed", code=1, sessions=2),
            "  steps:     1 failed",
            f"  items:     {ok} ok, {concurrency} unknown",
            "",
            "STEP  STATUS  ATTEMPTS  ITEMS          TIME",
            # The in-flight items' tries count: each was sending, so one may have left.
            f"each  failed  {len(ITEMS):<8}  12 ({concurrency} failed)  <seconds>",
            "",
            "each: items that did not succeed",
            *(f"  {item}: {UNKNOWN_OUTCOME}" for item in in_flight),
        ],
    )

    retried = rig.run("--resume", "--retry-unknown")

    assert retried.code == 0, retried.out + retried.err
    assert rig.sent() == once(ITEMS) + once(in_flight)
    assert item_statuses(rig.state, run_id) == dict.fromkeys(ITEMS, "succeeded")

    final = rig.run("--resume")

    assert final.code == 0
    assert lines(final.out) == [f"nothing to resume: the latest run of {rig.job} succeeded"]
    assert rig.sent() == once(ITEMS) + once(in_flight)
    assert run_status(rig.state, run_id) == ("succeeded", 0, 3)
    assert_lines(
        cli("history").out,
        [
            "RUN                      JOB  STARTED               DURATION  STATUS"
            "                STEPS  ITEMS",
            f"{run_id}  job  <moment>  <duration>  succeeded (emulated)  1 ok   12 ok",
        ],
    )


def test_a_resume_killed_in_turn_resumes_again_sending_nothing_twice(rig: Rig) -> None:
    items = ITEMS[:10]
    rig.write(foreach_job(items=items, slow=("i02", "i06")))
    rig.emulator.set_stub("each", open_stub())
    rig.emulator.set_stub("slow", open_stub(Fault(times=2, delay=HANG)))
    with rig.start() as first:
        first.await_event(rig.calls(3), "i02's request")
        first.killed()
    with rig.start("--resume") as second:  # i02 is not sent again: its outcome is unknown
        second.await_event(rig.calls(7), "i06's request")
        second.killed()
    assert rig.sent() == once(items[:7])

    third = rig.run("--resume")

    assert third.code == 1, third.out + third.err
    assert rig.sent() == once(items)
    run_id = only_run(rig.state)
    assert third.out.splitlines()[-1] == unknown_advice(rig, run_id, ["each[i02]", "each[i06]"])
    assert item_statuses(rig.state, run_id) == {
        **dict.fromkeys(items, "succeeded"),
        "i02": "sending",
        "i06": "sending",
    }
    assert run_status(rig.state, run_id) == ("failed", 1, 3)


# -- one run of a job at a time ---------------------------------------------------------------


def oauth_job() -> str:
    return """version: 1
orgs:
  acme: {domain: acme.okta.com, credential: jwt}
credentials:
  jwt: {type: private_key_jwt, client_id: 0oaX, key_id: kid-x, private_key: {env: OWF_TEST_KEY}}
steps:
  - id: hold
    flow: https://acme.workflows.okta.com/api/flo/hold/invoke
    payload: {item: hold}
"""


@pytest.fixture
def oauth_rig(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Rig:
    key = rsa_key()
    monkeypatch.setenv("OWF_TEST_KEY", pem(key))
    rig.emulator.register_client("0oaX", "kid-x", key.as_dict(private=False))
    rig.write(oauth_job())
    return rig


def test_a_second_run_while_the_first_holds_the_lock_exits_5_sending_nothing(
    oauth_rig: Rig,
) -> None:
    rig = oauth_rig
    rig.emulator.set_stub("hold", FlowStub(faults=(Fault(delay=HANG),)))
    with rig.start() as first:
        first.await_event(lambda: bool(rig.emulator.invocations()), "the first run's request")
        calls = len(rig.emulator.calls)  # its token request and its invocation

        second = rig.run()

        assert first.process.poll() is None, "the second run did not wait for the first"
    assert second.code == 5, second.out + second.err
    assert re.fullmatch(
        rf"owf-run: another run of {re.escape(str(rig.job))} is in progress \(pid {first.pid}, "
        r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); wait for it, or pass --lock-wait SECONDS\n",
        second.err,
    ), second.err
    assert second.out == ""
    assert len(rig.emulator.calls) == calls == 2, (
        "the second run sent nothing, not even for a token"
    )


def test_lock_wait_runs_once_a_killed_holder_is_gone(oauth_rig: Rig) -> None:
    rig = oauth_rig
    rig.emulator.set_stub("hold", FlowStub(faults=(Fault(delay=HANG),)))
    lock = lock_path(rig.state, rig.job)
    with rig.start() as first, contextlib.ExitStack() as stack:
        first.await_event(lambda: bool(rig.emulator.invocations()), "the first run's request")
        waiting = stack.enter_context(rig.start("--lock-wait", "30"))
        waiting.await_event(lambda: waiting.has_open(lock), "the second run to try the lock")

        first.killed()  # the kernel drops its lock: nothing stale is left to block the next
        done = waiting.finish()

    assert done.code == 0, done.out + done.err
    assert rig.received("hold") == [b'{"item":"hold"}'] * 2
    assert len(rig.emulator.token_requests()) == 2
    runs = query(rig.state, "SELECT status, exit_code FROM runs ORDER BY status")
    assert runs == [("interrupted", None), ("succeeded", 0)]  # the killed one, marked so


# -- SIGTERM and SIGINT ------------------------------------------------------------------

SIGNALS = pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)


@SIGNALS
def test_a_signal_lets_the_request_in_flight_finish_within_the_grace_and_resume_finishes(
    rig: Rig, signum: int, code: int, word: str
) -> None:
    rig.write(foreach_job(items=ITEMS[:8]))
    # The third call takes a moment to answer, far less than the grace period.
    rig.emulator.set_stub("each", open_stub(Fault(times=2), Fault(delay=0.2)))
    with rig.start("--grace", "30") as child:
        child.await_event(rig.calls(3), "the third item's request")
        child.send(signum)
        stopped = child.finish()

    assert stopped.code == code, stopped.out + stopped.err
    assert stopped.err == f"owf-run: {word}; finish the job with: owf-run {rig.job} --resume\n"
    assert "may have run the flow" not in stopped.out
    run_id = only_run(rig.state)
    statuses = item_statuses(rig.state, run_id)
    assert statuses["i02"] == "succeeded", "the request in flight was let finish"
    assert set(statuses.values()) <= {"succeeded", "failed"}, statuses  # nothing unknown
    assert run_status(rig.state, run_id) == ("interrupted", code, 1)

    resumed = rig.run("--resume")

    assert resumed.code == 0, resumed.out + resumed.err
    assert rig.sent() == once(ITEMS[:8])
    assert item_statuses(rig.state, run_id) == dict.fromkeys(ITEMS[:8], "succeeded")


@SIGNALS
def test_a_signal_with_a_short_grace_leaves_the_hanging_request_unknown(
    rig: Rig, signum: int, code: int, word: str
) -> None:
    rig.write(foreach_job(items=ITEMS[:4]))
    rig.emulator.set_stub("each", hang_at(3))
    with rig.start("--grace", "0.2") as child:
        child.await_event(rig.calls(3), "the hanging request")
        child.send(signum)
        stopped = child.finish()

    assert stopped.code == code, stopped.out + stopped.err
    run_id = only_run(rig.state)
    assert stopped.out.splitlines()[-1] == unknown_advice(rig, run_id, ["each[i02]"])
    assert stopped.err == f"owf-run: {word}; finish the job with: owf-run {rig.job} --resume\n"
    assert item_statuses(rig.state, run_id) == {
        "i00": "succeeded",
        "i01": "succeeded",
        "i02": "unknown",
    }
    assert rig.sent() == once(ITEMS[:3])


def test_a_second_signal_cancels_the_request_in_flight_without_waiting_out_the_grace(
    rig: Rig,
) -> None:
    rig.write(foreach_job(items=ITEMS[:2]))
    rig.emulator.set_stub("each", hang_at(1))
    with rig.start("--grace", "600") as child:
        child.await_event(rig.calls(1), "the hanging request")
        child.send(signal.SIGTERM)
        child.await_event(lambda: child.took(signal.SIGTERM), "the first signal to be taken")
        child.send(signal.SIGTERM)
        stopped = child.finish()

    assert stopped.code == 143, stopped.out + stopped.err
    run_id = only_run(rig.state)
    assert query(rig.state, "SELECT label, status, error FROM items") == [
        ("i00", "unknown", STOPPED_IN_FLIGHT)
    ]
    assert stopped.out.splitlines()[-1] == unknown_advice(rig, run_id, ["each[i00]"])
    assert stopped.err == f"owf-run: terminated; finish the job with: owf-run {rig.job} --resume\n"


# -- a changed job file ----------------------------------------------------------------------


def test_resuming_after_the_job_file_changed_is_refused_unless_forced(rig: Rig) -> None:
    rig.write(foreach_job(items=ITEMS[:4]))
    rig.emulator.set_stub("each", open_stub(Fault(status=400)))  # i00 fails: the flow did not run
    assert rig.run().code == 1
    run_id = only_run(rig.state)
    rig.write(rig.job.read_text() + "# edited since\n")

    refused = rig.run("--resume")

    assert refused.code == 3, refused.out + refused.err
    assert refused.err == (
        f"owf-run: {rig.job.resolve()} has changed since run {run_id}: resuming could send what "
        "that run would not have; run the job afresh (without --resume), or pass --force to "
        "resume anyway\n"
    )
    assert rig.sent() == once(ITEMS[:4]), "nothing sent"

    forced = rig.run("--resume", "--force")

    assert forced.code == 0, forced.out + forced.err
    assert rig.sent() == once(ITEMS[:4]) + once(["i00"])
    assert run_status(rig.state, run_id) == ("succeeded", 0, 2)


# -- which run --resume continues -----------------------------------------------------------


def test_resume_run_continues_the_older_run_it_names(rig: Rig) -> None:
    rig.write(foreach_job(items=ITEMS[:4]))
    # The first run's first call fails (i00), the second run's second (i01).
    rig.emulator.set_stub("each", open_stub(Fault(status=400), Fault(times=4), Fault(status=400)))
    assert rig.run().code == 1
    older = only_run(rig.state)
    assert rig.run().code == 1

    resumed = rig.run("--resume", "--run", older)

    assert resumed.code == 0, resumed.out + resumed.err
    assert lines(resumed.out)[0] == f"resuming run {older}: only what did not succeed is sent"
    assert rig.sent() == once(ITEMS[:4], 2) + once(["i00"])
    assert item_statuses(rig.state, older) == dict.fromkeys(ITEMS[:4], "succeeded")


USAGE_ERRORS = {
    ("--resume", "--run", "nope"): "no run 'nope' in the journal (`owf-run history` lists them)",
    ("--retry-unknown",): "--retry-unknown goes with --resume",
    ("--run", "nope"): "--run goes with --resume",
}


def test_resume_usage_errors_exit_2_sending_nothing(rig: Rig) -> None:
    rig.write(foreach_job(items=ITEMS[:2]))
    rig.emulator.set_stub("each", open_stub())
    with contextlib.ExitStack() as stack:  # side by side: each only reads its arguments
        children = {args: stack.enter_context(rig.start(*args)) for args in USAGE_ERRORS}
        refused = {args: child.finish() for args, child in children.items()}

    for args, message in USAGE_ERRORS.items():
        assert refused[args] == Finished(2, "", f"owf-run: {message}\n"), args
    assert rig.emulator.calls == []


# -- secret outputs: never journaled, so a resume runs their step again or refuses -------


def secret_job(idempotent: bool) -> str:
    return f"""version: 1
orgs:
  acme: {{domain: acme.okta.com, credential: jwt}}
  hooks: {{domain: hooks.okta.com, credential: hook}}
credentials:
  jwt: {{type: private_key_jwt, client_id: 0oaX, key_id: kid-x, private_key: {{env: OWF_TEST_KEY}}}}
  hook: {{type: client_token, token: {{env: OWF_TEST_HOOK_TOKEN}}}}
defaults:
  rate_limit: 1000/s
steps:
  - id: login
    org: acme
    flow: https://acme.workflows.okta.com/api/flo/login/invoke
    idempotent: {str(idempotent).lower()}
    payload: {{item: login}}
    outputs:
      session: {{value: "{{{{ response.body.session }}}}", secret: true}}
      user: "{{{{ response.body.user }}}}"
  - id: use
    org: hooks
    flow: https://hooks.workflows.okta.com/api/flo/use/invoke
    payload:
      item: use
      session: "{{{{ steps.login.outputs.session }}}}"
      user: "{{{{ steps.login.outputs.user }}}}"
"""


@dataclass(frozen=True)
class Canaries:
    session: str  # a secret output's value
    client_token: str
    private_key: str


# A server that echoes what it was sent: the secret comes back in a failure's body.
ECHO_REFUSAL = Fault(status=400, body={"echo": "{{ request.body.session }}"})


@pytest.fixture
def canaries(oauth_rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Canaries:
    tag = secrets.token_hex(8)
    found = Canaries(f"canary/séance+{tag}", f"ct+{tag}/tok=", os.environ["OWF_TEST_KEY"])
    monkeypatch.setenv("OWF_TEST_HOOK_TOKEN", found.client_token)
    oauth_rig.emulator.register_client_token(found.client_token)
    body = {"session": found.session, "user": "00u1"}
    oauth_rig.emulator.set_stub("login", FlowStub(body=body))
    return found


def use_payload(canaries: Canaries) -> bytes:
    return json.dumps(
        {"item": "use", "session": canaries.session, "user": "00u1"},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def test_resume_refuses_to_repeat_a_step_that_is_not_idempotent_for_its_secret_output(
    oauth_rig: Rig, canaries: Canaries
) -> None:
    rig = oauth_rig
    rig.write(secret_job(idempotent=False))
    rig.emulator.set_stub("use", FlowStub(security="client_token", faults=(ECHO_REFUSAL,)))
    assert rig.run().code == 1
    calls = len(rig.emulator.calls)

    refused = rig.run("--resume")

    assert refused.code == 3, refused.out + refused.err
    assert refused.err == (
        "owf-run: step use still has to run and may use the secret outputs of step login, which "
        "the journal does not keep; running it again would repeat it, and it is not "
        "`idempotent: true`: run the job afresh, or mark login idempotent if it is safe to "
        "repeat\n"
    )
    assert len(rig.emulator.calls) == calls, "nothing sent"


def test_resume_runs_an_idempotent_step_again_for_its_secret_output_which_is_never_stored(
    oauth_rig: Rig, canaries: Canaries, cli: RunCli
) -> None:
    rig = oauth_rig
    rig.write(secret_job(idempotent=True))
    hang = Fault(delay=HANG)
    rig.emulator.set_stub("use", FlowStub(security="client_token", faults=(ECHO_REFUSAL, hang)))
    assert rig.run().code == 1
    assert (len(rig.received("login")), len(rig.received("use"))) == (1, 1)
    with rig.start("--resume") as second:
        second.await_event(lambda: len(rig.received("use")) == 2, "the resumed step's request")
        second.killed()  # with the WAL as it is mid-run: a secret must not be in it either
    assert (len(rig.received("login")), len(rig.received("use"))) == (2, 2)
    assert (rig.state / "runs.sqlite3-wal").stat().st_size > 0
    assert_no_canary(files_under(rig.state), rig.emulator, canaries)

    done = rig.run("--resume", "--retry-unknown")

    assert done.code == 0, done.out + done.err
    assert (len(rig.received("login")), len(rig.received("use"))) == (3, 3)
    assert rig.received("use") == [use_payload(canaries)] * 3
    run_id = only_run(rig.state)
    assert query(rig.state, "SELECT step_id, outputs FROM steps WHERE run_id = ?", run_id) == [
        ("login", '{"user": "00u1"}'),
        ("use", "{}"),
    ]
    printed: list[Cli | Finished] = [cli("history"), cli("show", run_id)]
    printed.append(owf_run(["show", run_id], rig.env))
    assert_no_canary([*files_under(rig.state), *printed], rig.emulator, canaries)


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def assert_no_canary(
    places: Sequence[Path | Cli | Finished], emulator: Emulator, canaries: Canaries
) -> None:
    """No form of any secret (conftest.encodings) in the files' raw bytes or printed text."""
    issued = [call.headers["authorization"].split()[1] for call in emulator.invocations("login")]
    assertions = [
        parse_qs(call.body.decode())["client_assertion"][0] for call in emulator.token_requests()
    ]
    forms = {
        form.encode()
        for secret in (*vars(canaries).values(), *issued, *assertions)
        for form in encodings(secret)
    }
    for place in places:
        data = place.read_bytes() if isinstance(place, Path) else (place.out + place.err).encode()
        leaked = [form for form in forms if form in data]
        assert not leaked, f"{place}: {leaked[:3]}"


# -- restored outputs render the same ------------------------------------------------------


def outputs_job() -> str:
    return f"""version: 1
vars:
  names: [{", ".join(ITEMS[:4])}]
orgs:
  local: {{domain: acme.okta.com, credential: open}}
{OPEN}defaults:
  rate_limit: 1000/s
steps:
  - id: create
    flow: https://acme.workflows.okta.com/api/flo/create/invoke
    payload: {{item: create}}
    outputs:
      user_id: "{{{{ response.body.id }}}}"
      groups: "{{{{ response.body.groups }}}}"
  - id: each
    flow: https://acme.workflows.okta.com/api/flo/each/invoke
    foreach: "{{{{ vars.names }}}}"
    label: "{{{{ item }}}}"
    payload:
      item: "{{{{ item }}}}"
      user: "{{{{ steps.create.outputs.user_id }}}}"
      groups: "{{{{ steps.create.outputs.groups }}}}"
      answered: "{{{{ steps.create.response.body.id }}}}"
      status: "{{{{ steps.create.response.status }}}}"
      run: "{{{{ run.id }}}}"
"""


def test_a_resume_renders_the_restored_outputs_of_a_step_as_the_run_did(
    rig: Rig, cli: RunCli
) -> None:
    rig.write(outputs_job())
    answer = {"id": "00u-7", "groups": ["eng", {"on-call": True}], "n": 3}
    rig.emulator.set_stub("create", FlowStub(security="none", body=answer))
    rig.emulator.set_stub("each", open_stub(Fault(times=2), Fault(status=400)))  # i02 fails
    assert rig.run().code == 1
    run_id = only_run(rig.state)

    resumed = rig.run("--resume")

    assert resumed.code == 0, resumed.out + resumed.err
    assert (
        lines(resumed.out)[1]
        == "create: succeeded (earlier; restored from the journal, not run again)"
    )
    assert len(rig.received("create")) == 1
    expected = [
        json.dumps(
            {
                "item": item,
                "user": "00u-7",
                "groups": ["eng", {"on-call": True}],
                "answered": "00u-7",
                "status": 200,
                "run": run_id,
            },
            separators=(",", ":"),
        ).encode()
        for item in (*ITEMS[:4], "i02")
    ]
    assert rig.received("each") == expected
    assert_lines(
        cli("show", run_id).out,
        [
            *show_header(rig, run_id, status="succeeded", code=0, sessions=2),
            "  steps:     2 ok",
            "  items:     4 ok",  # a foreach's items; the plain step counts among the steps
            "",
            "STEP    STATUS     ATTEMPTS  ITEMS  TIME",
            "create  succeeded  1         -      <seconds>",
            "each    succeeded  5         4      <seconds>",  # i02: once in each session
        ],
    )


# -- which run is the latest -------------------------------------------------------------------


def rename_run(state: Path, old: str, new: str, started_at: str) -> None:
    with contextlib.closing(sqlite3.connect(state / "runs.sqlite3")) as db, db:
        db.execute("UPDATE runs SET id = ?, started_at = ? WHERE id = ?", (new, started_at, old))
        for table in ("steps", "items"):
            db.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?", (new, old))  # noqa: S608


def test_resume_continues_the_run_begun_last_even_within_the_same_second(
    rig: Rig, cli: RunCli
) -> None:
    """Ordered by the random part of their ids, an older failed run could be taken for the
    latest, and a resume would send again what the newer run had sent."""
    rig.write(foreach_job(items=ITEMS[:1]))
    rig.emulator.set_stub("each", open_stub(Fault(status=400)))
    # In this process (no crash here, and quicker): the journal is what is under test.
    assert cli(*rig.args()).code == 1  # fails: the flow did not run
    older = only_run(rig.state)
    assert cli(*rig.args()).code == 0  # a fresh run: sent, and it ran
    (newer,) = {str(run) for (run,) in query(rig.state, "SELECT id FROM runs")} - {older}
    # Both begun in one second, their random suffixes sorting against the order they began in
    # (half of all such pairs do): the journal holds nothing else that tells them apart.
    (started,) = query(rig.state, "SELECT started_at FROM runs WHERE id = ?", older)[0]
    rename_run(rig.state, older, "20261129T140000Z-ffffff", str(started))
    rename_run(rig.state, newer, "20261129T140000Z-000000", str(started))

    resumed = cli(*rig.args("--resume"))

    assert lines(resumed.out) == [f"nothing to resume: the latest run of {rig.job} succeeded"]
    assert rig.sent() == Counter({"i00": 2}), "the item that succeeded is not sent again"


# -- how long a request in flight may take -----------------------------------------------------


def test_a_request_in_flight_is_bounded_by_its_step_timeout_not_a_library_default() -> None:
    """httpx2's default Timeout(5.0) would fail any flow slower than 5 s (outcome unknown),
    whatever the step's timeout, and no grace period could let it finish."""
    # Checked on the client, not end to end: seeing a 5 s cut-off would take 5 s of every run.
    client = build_client(httpx2.AsyncHTTPTransport(), redirected=False)
    # Once the request has left, only the step's deadline (asyncio.timeout) may end the wait.
    assert (client.timeout.read, client.timeout.write) == (None, None)
