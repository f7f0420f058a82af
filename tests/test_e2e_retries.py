"""Issue 4's scenarios over loopback sockets, counting what the emulator received.

Waits are on a fake clock (tests/fakes.py): the runner's sleeps are recorded, not
slept, and where the emulator shares that clock (`timed_emulator`) its `received_at` and its
rate limiter read the same virtual time. Scenarios without waits go through the CLI.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from owf_runner.auth import TOKEN_ATTEMPTS
from owf_runner.emulator import Emulator, Fault, FlowStub
from tests.conftest import Cli, pem, rsa_key
from tests.fakes import EPOCH, FakeClock, run_job

RunCli = Callable[..., Cli]
WriteJob = Callable[..., Path]
FLOW = "https://acme.workflows.okta.com/api/flo/f/invoke"
SLOW_BACKOFF = "    retry: {backoff: {initial: 60, max: 60}}\n"  # far above any server's wait


@pytest.fixture
def job(tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> WriteJob:
    """Writes a one-org, one-step job; the argument is extra YAML for the step.

    OAuth by default (its key registered with the wall-clock `emulator`; `run_job`
    registers it with the fake-clock one); `auth="none"` for a flow without security.
    """
    key = rsa_key()
    monkeypatch.setenv("OWF_RETRY_TEST_KEY", pem(key))
    emulator.register_client("0oaR", "kid-r", key.as_dict(private=False))

    def write(step_yaml: str, auth: str = "jwt") -> Path:
        path = tmp_path / "job.yaml"
        path.write_text(
            "version: 1\n"
            f"orgs: {{acme: {{domain: acme.okta.com, credential: {auth}}}}}\n"
            "credentials:\n"
            "  none: {type: none}\n"
            "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: kid-r,\n"
            "        private_key: {env: OWF_RETRY_TEST_KEY}}\n"
            "steps:\n"
            f"  - id: s\n    flow: {FLOW}\n{step_yaml}"
        )
        return path

    return write


def statuses(emulator: Emulator) -> list[int]:
    return [call.status for call in emulator.invocations()]


def at(emulator: Emulator) -> list[float]:
    """When each invocation arrived, in seconds of fake time since the clock started."""
    return [round(call.received_at - EPOCH, 6) for call in emulator.invocations()]


# -- server-named waits ------------------------------------------------------------


def test_unavailable_honours_retry_after(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    unavailable = FlowStub(faults=(Fault(status=503, headers={"Retry-After": "1"}),))

    done = run_job(
        job(SLOW_BACKOFF, auth="none"), timed_emulator, fake_clock, stubs={"f": unavailable}
    )

    assert done.code == 0, done.out
    assert statuses(timed_emulator) == [503, 200]
    assert at(timed_emulator) == [0.0, 1.0]
    assert fake_clock.sleeps == [1.0]
    assert done.waits("unavailable") == [1.0]


def test_throttled_twice_waits_for_the_rate_limit_reset(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    reset = {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "{{ epoch() + 1 }}"}
    throttled = FlowStub(faults=(Fault(times=2, status=429, headers=reset),))

    # The reset is read against the answer's Date, which the emulator takes from its clock.
    done = run_job(job(SLOW_BACKOFF), timed_emulator, fake_clock, stubs={"f": throttled})

    assert done.code == 0, done.out
    assert statuses(timed_emulator) == [429, 429, 200]
    assert done.waits("throttled") == [1.0, 1.0]
    assert fake_clock.sleeps == [1.0, 1.0]  # never the 60 s backoff


def test_an_absurd_retry_after_fails_at_once(
    job: WriteJob, cli: RunCli, emulator: Emulator
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(status=429, headers={"Retry-After": "86400"}),)))

    result = cli(str(job("")), "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [429]
    assert "the server asked to wait 86400s, over retry.max_wait (300s)" in result.out
    assert "retrying in" not in result.out


# -- what is (not) re-sent ---------------------------------------------------------


def test_server_error_is_not_resent_unless_idempotent(
    job: WriteJob, cli: RunCli, emulator: Emulator
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(status=500),)))

    result = cli(str(job("")), "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [500]
    assert "(not re-sent: the flow may have run; `idempotent: true` allows retries)" in result.out


def test_server_error_on_an_idempotent_step_is_resent(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    server_error = FlowStub(faults=(Fault(status=500),))
    path = job("    idempotent: true\n    retry: {backoff: {initial: 3, max: 3}}\n")

    done = run_job(path, timed_emulator, fake_clock, stubs={"f": server_error})

    assert done.code == 0
    assert statuses(timed_emulator) == [500, 200]
    assert fake_clock.sleeps == [3.0]
    assert done.waits("server") == [3.0]


def test_a_dropped_connection_is_sent_once(job: WriteJob, cli: RunCli, emulator: Emulator) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(drop=True),)))

    result = cli(str(job("")), "--emulator", emulator.base_url)

    assert result.code == 1
    assert len(emulator.invocations()) == 1
    assert "s: failed (1 attempt" in result.out
    assert "dropped: " in result.out


def test_attempts_bound_the_total(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    unavailable = FlowStub(faults=(Fault(times=9, status=503),))
    path = job("    retry: {attempts: 2, backoff: {initial: 3, max: 3}}\n")

    done = run_job(path, timed_emulator, fake_clock, stubs={"f": unavailable})

    assert done.code == 1
    assert statuses(timed_emulator) == [503, 503]
    assert fake_clock.sleeps == [3.0]


# -- pacing and throttling ---------------------------------------------------------


def test_forty_paced_items_meet_no_throttling(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    timed_emulator.rate_limit = 10
    path = job('    foreach: "{{ range(40) | list }}"\n    concurrency: 8\n', auth="none")

    done = run_job(path, timed_emulator, fake_clock)

    assert done.code == 0, done.out
    assert statuses(timed_emulator) == [200] * 40
    arrivals = at(timed_emulator)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.1 - 1e-6  # 10/s, evenly: never two in one tenth of a second
    assert arrivals[-1] == pytest.approx(3.9)


def test_without_pacing_the_same_load_is_throttled(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    """The control for the test above: the emulator's limit does bite a burst."""
    timed_emulator.rate_limit = 10
    path = job(
        '    foreach: "{{ range(40) | list }}"\n    concurrency: 8\n'
        "    rate_limit: 100000/s\n    retry: {attempts: 1}\n",
        auth="none",
    )

    done = run_job(path, timed_emulator, fake_clock)

    assert done.code == 1
    # A burst: the bucket's ten pass, the eight in flight behind them get 429s; then every
    # worker waits for the reset (1 s of fake time) and the next burst does the same.
    burst = [200] * 10 + [429] * 8
    assert statuses(timed_emulator) == burst + burst + [200] * 4
    assert [round(t) for t in at(timed_emulator)] == [0] * 18 + [1] * 18 + [2] * 4
    assert done.result.steps[0].error == "16 of 40 items failed"


def test_a_429_pauses_every_worker_on_the_flow(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    pause = Fault(times=1, status=429, headers={"Retry-After": "1"})
    path = job(
        '    foreach: "{{ range(12) | list }}"\n    concurrency: 4\n    rate_limit: 1000/s\n',
        auth="none",
    )

    done = run_job(
        path, timed_emulator, fake_clock, stubs={"f": FlowStub(faults=(Fault(times=4), pause))}
    )

    assert done.code == 0, done.out
    calls = timed_emulator.invocations()
    assert len(calls) == 13
    throttled = next(i for i, call in enumerate(calls) if call.status == 429)
    arrivals = at(timed_emulator)
    pause_ends = arrivals[throttled] + 1.0
    during = [t for t in arrivals[throttled + 1 :] if t < pause_ends - 1e-6]
    # Workers that had their turn before the 429 still send; no one starts a new turn
    # until the reset, when the throttled item is re-sent first.
    assert len(during) <= 3
    assert arrivals[throttled + 1 + len(during)] == pytest.approx(pause_ends)
    assert 1.0 in fake_clock.sleeps


# -- the token endpoint ------------------------------------------------------------


def test_a_second_401_fails_the_step_after_one_refresh(
    job: WriteJob, cli: RunCli, emulator: Emulator
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(times=2, status=401),)))

    result = cli(str(job("")), "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [401, 401]
    assert len(emulator.token_requests()) == 2


def test_token_endpoint_outage_is_retried_with_fresh_assertions(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    timed_emulator.set_token_faults(Fault(times=1, status=503), Fault(times=1, drop=True))

    done = run_job(job(""), timed_emulator, fake_clock)

    assert done.code == 0, done.out
    tokens = timed_emulator.token_requests()
    assert [call.status for call in tokens] == [503, 0, 200]
    assert len({call.jti for call in tokens}) == 3
    assert len(fake_clock.sleeps) == 2  # backoff between the three tries, on the fake clock


def test_token_endpoint_down_for_good_fails_the_step(
    job: WriteJob, emulator: Emulator, fake_clock: FakeClock
) -> None:
    emulator.set_token_faults(Fault(times=99, status=502))

    done = run_job(job(""), emulator, fake_clock)

    assert done.code == 1
    assert len(emulator.token_requests()) == TOKEN_ATTEMPTS
    assert len(fake_clock.sleeps) == TOKEN_ATTEMPTS - 1
    assert (
        f"s: failed (0 attempts, {fake_clock.now:.2f}s): could not reach the token endpoint "
        f"https://acme.okta.com/oauth2/v1/token ({TOKEN_ATTEMPTS} tries; HTTP 502)"
    ) in done.out
    assert emulator.invocations() == []


def test_dpop_required_exits_4_with_the_hint(
    job: WriteJob, cli: RunCli, emulator: Emulator
) -> None:
    emulator.require_dpop = True

    result = cli(str(job("")), "--emulator", emulator.base_url)

    assert result.code == 4
    assert len(emulator.token_requests()) == 1
    assert "refused: invalid_dpop_proof: " in result.err
    assert (
        "hint: untick 'Require Demonstrating Proof of Possession (DPoP) header in token "
        "requests' in the app's General Settings"
    ) in result.err
    assert emulator.invocations() == []


def test_an_emulator_on_a_fake_clock_accepts_assertions_signed_now(
    job: WriteJob, timed_emulator: Emulator, fake_clock: FakeClock
) -> None:
    done = run_job(job(""), timed_emulator, fake_clock)

    assert done.code == 0, done.out
