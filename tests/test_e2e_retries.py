"""Issue 4's scenarios through the real CLI, counting what the emulator received."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from tenacity import wait_none

from owf_runner import auth
from owf_runner.emulator import Emulator, Fault, FlowStub
from tests.conftest import Cli, pem, rsa_key

RunCli = Callable[..., Cli]
FLOW = "https://acme.workflows.okta.com/api/flo/f/invoke"


@pytest.fixture
def job(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], str]:
    """Writes a one-org, one-step OAuth job; the argument is extra YAML for the step."""
    key = rsa_key()
    monkeypatch.setenv("OWF_RETRY_TEST_KEY", pem(key))
    emulator.register_client("0oaR", "kid-r", key.as_dict(private=False))

    def write(step_yaml: str) -> str:
        path = tmp_path / "job.yaml"
        path.write_text(
            "version: 1\n"
            "orgs: {acme: {domain: acme.okta.com, credential: jwt}}\n"
            "credentials:\n"
            "  jwt: {type: private_key_jwt, client_id: 0oaR, key_id: kid-r,\n"
            "        private_key: {env: OWF_RETRY_TEST_KEY}}\n"
            "steps:\n"
            f"  - id: s\n    flow: {FLOW}\n{step_yaml}"
        )
        return str(path)

    return write


def statuses(emulator: Emulator) -> list[int]:
    return [call.status for call in emulator.invocations()]


def waits(out: str, failure_class: str) -> list[float]:
    pattern = rf"attempt \d+ failed \({failure_class}: .*\); retrying in ([\d.]+)s"
    return [float(w) for w in re.findall(pattern, out)]


def test_throttled_twice_waits_for_the_rate_limit_reset(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    reset = {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "{{ epoch() + 1 }}"}
    emulator.set_stub("f", FlowStub(faults=(Fault(times=2, status=429, headers=reset),)))
    # A backoff far above the reset proves the wait came from the header.
    path = job("    retry: {backoff: {initial: 60, max: 60}}\n")

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 0, result.out
    assert statuses(emulator) == [429, 429, 200]
    logged = waits(result.out, "throttled")
    assert len(logged) == 2
    assert all(0 <= wait <= 1.0 for wait in logged)


def test_unavailable_honours_retry_after(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(status=503, headers={"Retry-After": "1"}),)))
    path = job("    retry: {backoff: {initial: 60, max: 60}}\n")

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 0
    assert statuses(emulator) == [503, 200]
    assert waits(result.out, "unavailable") == [1.0]


def test_server_error_is_not_resent_unless_idempotent(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(status=500),)))

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [500]
    assert "(not re-sent: the flow may have run; `idempotent: true` allows retries)" in result.out


def test_server_error_on_an_idempotent_step_is_resent(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(status=500),)))
    path = job("    idempotent: true\n    retry: {backoff: {initial: 0.01, max: 0.01}}\n")

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 0
    assert statuses(emulator) == [500, 200]
    assert len(waits(result.out, "server")) == 1


def test_a_dropped_connection_is_sent_once(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(drop=True),)))

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 1
    assert len(emulator.invocations()) == 1
    assert "s: failed (1 attempt" in result.out
    assert "dropped: " in result.out


def test_attempts_bound_the_total(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(times=9, status=503),)))
    path = job("    retry: {attempts: 2, backoff: {initial: 0.01, max: 0.01}}\n")

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [503, 503]


def test_an_absurd_retry_after_fails_at_once(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(status=429, headers={"Retry-After": "86400"}),)))

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [429]
    assert "the server asked to wait 86400s, over retry.max_wait (300s)" in result.out
    assert "retrying in" not in result.out


def test_forty_paced_items_meet_no_throttling(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.rate_limit = 10
    path = job('    foreach: "{{ range(40) | list }}"\n    concurrency: 8\n')

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 0, result.out
    assert statuses(emulator) == [200] * 40


def test_without_pacing_the_same_load_is_throttled(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    """The control for the test above: the emulator's limit does bite a burst."""
    emulator.rate_limit = 10
    path = job(
        '    foreach: "{{ range(40) | list }}"\n    concurrency: 8\n'
        "    rate_limit: 100000/s\n    retry: {attempts: 1}\n"
    )

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 1
    assert 429 in statuses(emulator)


def test_a_429_pauses_every_worker_on_the_flow(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    pause = Fault(times=1, status=429, headers={"Retry-After": "1"})
    emulator.set_stub("f", FlowStub(faults=(Fault(times=4), pause)))
    path = job(
        '    foreach: "{{ range(12) | list }}"\n    concurrency: 4\n    rate_limit: 1000/s\n'
    )

    result = cli(path, "--emulator", emulator.base_url)

    assert result.code == 0, result.out
    calls = emulator.invocations()
    throttled_at = next(call.received_at for call in calls if call.status == 429)
    during_pause = [c for c in calls if throttled_at < c.received_at < throttled_at + 0.9]
    # Requests already in flight may land; no worker starts a new one until the reset.
    assert len(during_pause) <= 3
    assert len(calls) == 13


def test_a_second_401_fails_the_step_after_one_refresh(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.set_stub("f", FlowStub(faults=(Fault(times=2, status=401),)))

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 1
    assert statuses(emulator) == [401, 401]
    assert len(emulator.token_requests()) == 2


def test_token_endpoint_outage_is_retried_with_fresh_assertions(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "TOKEN_RETRY_WAIT", wait_none())
    emulator.set_token_faults(Fault(times=1, status=503), Fault(times=1, drop=True))

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 0, result.err
    tokens = emulator.token_requests()
    assert [call.status for call in tokens] == [503, 0, 200]
    assert len({call.jti for call in tokens}) == 3


def test_token_endpoint_down_for_good_exits_4(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "TOKEN_RETRY_WAIT", wait_none())
    emulator.set_token_faults(Fault(times=99, status=502))

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 4
    assert len(emulator.token_requests()) == auth.TOKEN_ATTEMPTS
    assert "token endpoint unavailable: HTTP 502" in result.err
    assert emulator.invocations() == []


def test_dpop_required_exits_4_with_the_hint(
    job: Callable[[str], str], emulator: Emulator, cli: RunCli
) -> None:
    emulator.require_dpop = True

    result = cli(job(""), "--emulator", emulator.base_url)

    assert result.code == 4
    assert len(emulator.token_requests()) == 1
    assert "refused: invalid_dpop_proof: " in result.err
    assert (
        "hint: untick 'Require Demonstrating Proof of Possession (DPoP) header in token "
        "requests' in the app's General Settings"
    ) in result.err
    assert emulator.invocations() == []
