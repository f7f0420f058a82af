"""Retry policies, server-requested waits and pacing — on a fake clock, never sleeping."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
from collections.abc import Sequence
from pathlib import Path

import httpx2
import pytest

from owf_runner.commands import load_plan
from owf_runner.failures import AMBIGUOUS, DEFAULT_RETRY_ON, Failure, FailureClass, requested_wait
from owf_runner.plan import RetryPolicy
from owf_runner.retry import Pacer, retrying
from tests.fakes import SteppingClock

NOW = 1_700_000_000.0  # a fixed "current time" (2023-11-14T22:13:20Z)
CONNECT, THROTTLED, UNAVAILABLE = (
    FailureClass.CONNECT,
    FailureClass.THROTTLED,
    FailureClass.UNAVAILABLE,
)
SERVER, TIMEOUT, DROPPED = FailureClass.SERVER, FailureClass.TIMEOUT, FailureClass.DROPPED


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


# -- requested_wait --------------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert requested_wait({"retry-after": "7"}, NOW) == 7.0
    assert requested_wait({"retry-after": " 0 "}, NOW) == 0.0


def test_retry_after_http_date() -> None:
    assert requested_wait({"retry-after": http_date(NOW + 30)}, NOW) == 30.0


def test_retry_after_date_in_the_past_is_zero() -> None:
    assert requested_wait({"retry-after": http_date(NOW - 30)}, NOW) == 0.0


def test_retry_after_garbage_is_none() -> None:
    assert requested_wait({"retry-after": "soon"}, NOW) is None


def test_rate_limit_reset_is_relative_to_the_response_date() -> None:
    server_now = NOW - 3600  # the server clock is an hour behind ours
    headers = {"x-rate-limit-reset": str(int(server_now) + 42), "date": http_date(server_now)}

    assert requested_wait(headers, NOW) == 42.0


def test_rate_limit_reset_without_date_uses_now() -> None:
    assert requested_wait({"x-rate-limit-reset": str(int(NOW) + 5)}, NOW) == 5.0


def test_rate_limit_reset_in_the_past_is_zero() -> None:
    headers = {"x-rate-limit-reset": str(int(NOW) - 5), "date": http_date(NOW)}

    assert requested_wait(headers, NOW) == 0.0


def test_retry_after_wins_over_rate_limit_reset() -> None:
    headers = {"retry-after": "3", "x-rate-limit-reset": str(int(NOW) + 60)}

    assert requested_wait(headers, NOW) == 3.0


def test_no_wait_headers_is_none() -> None:
    assert requested_wait({}, NOW) is None
    assert requested_wait({"x-rate-limit-reset": "tomorrow"}, NOW) is None


@pytest.mark.parametrize(
    "value",
    ["²", "٣", "-5", "+5", "5.5", "1e999", "NaN", "inf", "9" * 16, "9" * 5000, "0x10", "5 5"],
)
def test_a_malformed_retry_after_is_absent(value: str) -> None:
    assert requested_wait({"retry-after": value}, NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 99 Foo 2024 25:61:61 GMT",
        "Mon, 01 Jan 99999 00:00:00 GMT",
        "Mon, 01 Jan 2024 00:00:00 +9999",
        "Mon, 01 Jan 2024 00:00:00 GMT" + " " * 100,  # longer than any HTTP date
        "\x00",
    ],
)
def test_a_garbage_retry_after_date_is_absent(value: str) -> None:
    assert requested_wait({"retry-after": value}, NOW) is None


def test_a_date_without_a_zone_is_utc() -> None:
    value = email.utils.formatdate(NOW + 30, usegmt=True).replace("GMT", "-0000")

    assert requested_wait({"retry-after": value}, NOW) == 30.0


@pytest.mark.parametrize("value", ["9" * 5000, "-5", "٣", "²", "1e3", " ", "NaN"])
def test_a_malformed_rate_limit_reset_is_absent(value: str) -> None:
    assert requested_wait({"x-rate-limit-reset": value}, NOW) is None


def test_a_malformed_retry_after_leaves_the_rate_limit_reset() -> None:
    headers = {"retry-after": "²", "x-rate-limit-reset": str(int(NOW) + 4)}

    assert requested_wait(headers, NOW) == 4.0


def test_a_malformed_date_leaves_a_reset_read_against_now() -> None:
    headers = {"x-rate-limit-reset": str(int(NOW) + 4), "date": "yesterday-ish"}

    assert requested_wait(headers, NOW) == 4.0


def test_fifteen_digits_are_a_wait_that_max_wait_then_refuses() -> None:
    assert requested_wait({"retry-after": "9" * 15}, NOW) == 999_999_999_999_999.0


def test_case_insensitive_headers_from_httpx() -> None:
    headers = httpx2.Headers({"Retry-After": "9"})

    assert requested_wait(headers, NOW) == 9.0


# -- the fake clock ------------------------------------------------------------------


# -- retrying ------------------------------------------------------------------------

# Defaults of `retry` (4 attempts, backoff 1 s doubling to 30 s, max_wait 300 s).
POLICY = RetryPolicy(
    attempts=4, backoff_initial=1.0, backoff_max=30.0, max_wait=300.0, on=DEFAULT_RETRY_ON
)
IDEMPOTENT = dataclasses.replace(POLICY, on=DEFAULT_RETRY_ON | AMBIGUOUS)
Hooked = list[tuple[FailureClass | None, int, float]]


def run(
    policy: RetryPolicy, failures: Sequence[BaseException], clock: SteppingClock | None = None
) -> tuple[int, Hooked, object]:
    """Run an attempt loop whose first attempts raise ``failures`` in turn.

    Returns (attempts made, hook calls, result or the exception that escaped).
    """
    clock = clock or SteppingClock()
    hooked: Hooked = []
    calls = 0

    def hook(failure: Failure, attempt: int, wait: float) -> None:
        hooked.append((failure.failure_class, attempt, wait))

    async def main() -> object:
        nonlocal calls
        async for attempt in retrying(policy, hook, clock):
            with attempt:
                calls += 1
                if calls <= len(failures):
                    raise failures[calls - 1]
                return "ok"
        raise AssertionError("unreachable")

    try:
        result = asyncio.run(main())
    except (Failure, ValueError) as exc:
        result = exc
    return calls, hooked, result


def fail(failure_class: FailureClass | None, requested: float | None = None) -> Failure:
    return Failure(failure_class, f"{failure_class} failure", requested_wait=requested)


@pytest.mark.parametrize("failure_class", [CONNECT, THROTTLED, UNAVAILABLE])
def test_default_classes_are_retried(failure_class: FailureClass) -> None:
    calls, hooked, result = run(POLICY, [fail(failure_class)] * 2)

    assert result == "ok"
    assert calls == 3
    assert [(c, n) for c, n, _ in hooked] == [(failure_class, 1), (failure_class, 2)]


@pytest.mark.parametrize("failure_class", [SERVER, TIMEOUT, DROPPED, None])
def test_other_classes_are_not_retried_by_default(failure_class: FailureClass | None) -> None:
    failure = fail(failure_class)

    calls, hooked, result = run(POLICY, [failure])

    assert calls == 1
    assert hooked == []
    assert result is failure


@pytest.mark.parametrize("failure_class", [SERVER, TIMEOUT, DROPPED, CONNECT])
def test_idempotent_adds_server_timeout_dropped(failure_class: FailureClass) -> None:
    calls, hooked, result = run(IDEMPOTENT, [fail(failure_class)])

    assert result == "ok"
    assert calls == 2
    assert [(c, n) for c, n, _ in hooked] == [(failure_class, 1)]


def test_unclassified_failure_is_never_retried_even_when_idempotent() -> None:
    calls, _, result = run(IDEMPOTENT, [fail(None)])

    assert calls == 1
    assert isinstance(result, Failure)


def test_explicit_on_replaces_the_default_classes() -> None:
    policy = dataclasses.replace(POLICY, on=frozenset({SERVER}))

    server_calls, _, server_result = run(policy, [fail(SERVER)])
    throttled_calls, _, throttled_result = run(policy, [fail(THROTTLED)])

    assert (server_calls, server_result) == (2, "ok")
    assert throttled_calls == 1
    assert isinstance(throttled_result, Failure)


def test_attempts_bounds_total_tries_and_reraises_the_last_failure() -> None:
    failures = [fail(THROTTLED) for _ in range(5)]

    calls, hooked, result = run(dataclasses.replace(POLICY, attempts=3), failures)

    assert calls == 3
    assert [n for _, n, _ in hooked] == [1, 2]
    assert result is failures[2]


def test_one_attempt_means_no_retry() -> None:
    calls, hooked, _ = run(dataclasses.replace(POLICY, attempts=1), [fail(CONNECT)])

    assert (calls, hooked) == (1, [])


def test_requested_wait_above_max_wait_stops_at_once() -> None:
    failure = fail(THROTTLED, requested=301.0)
    clock = SteppingClock()

    calls, hooked, result = run(POLICY, [failure], clock)

    assert calls == 1
    assert hooked == []
    assert result is failure
    assert clock.sleeps == []


def test_requested_wait_within_max_wait_is_used_as_the_wait() -> None:
    clock = SteppingClock()

    calls, hooked, result = run(POLICY, [fail(THROTTLED, requested=42.0)], clock)

    assert result == "ok"
    assert calls == 2
    assert hooked == [(THROTTLED, 1, 42.0)]
    assert clock.sleeps == [42.0]
    assert clock.now == 42.0


def test_requested_wait_of_zero_max_wait() -> None:
    policy = dataclasses.replace(POLICY, max_wait=0.0)

    calls, _, result = run(policy, [fail(THROTTLED, requested=0.0)])

    assert (calls, result) == (2, "ok")


def test_backoff_waits_go_to_the_clock_and_are_bounded_by_backoff_max() -> None:
    clock = SteppingClock()
    policy = dataclasses.replace(POLICY, backoff_initial=1.0, backoff_max=2.5)

    _, hooked, result = run(policy, [fail(CONNECT)] * 3, clock)

    assert result == "ok"
    assert len(hooked) == 3
    assert all(0 <= wait <= 2.5 for _, _, wait in hooked)
    assert clock.sleeps == [wait for _, _, wait in hooked]


def test_backoff_grows_from_backoff_initial() -> None:
    policy = dataclasses.replace(POLICY, backoff_initial=10.0, backoff_max=1000.0)

    _, hooked, _ = run(policy, [fail(CONNECT)] * 3)

    first, second, third = (wait for _, _, wait in hooked)
    # backoff_initial * 2**n, plus up to 1 s of jitter
    assert 10 <= first <= 11
    assert 20 <= second <= 21
    assert 40 <= third <= 41


def test_non_failure_exceptions_are_not_retried() -> None:
    error = ValueError("boom")

    calls, hooked, result = run(IDEMPOTENT, [error])

    assert (calls, hooked, result) == (1, [], error)


# -- the retry policy a step gets (plan.resolve) ---------------------------------------

JOB = """\
version: 1
orgs: {{acme: {{domain: acme.okta.com, credential: c}}}}
credentials: {{c: {{type: none}}}}
{defaults}steps:
  - id: plain
    flow: https://acme.workflows.okta.com/api/flo/a/invoke
  - id: safe
    idempotent: true
    flow: https://acme.workflows.okta.com/api/flo/b/invoke
"""


def policies(tmp_path: Path, defaults: str = "") -> tuple[RetryPolicy, RetryPolicy]:
    path = tmp_path / "job.yaml"
    path.write_text(JOB.format(defaults=defaults), encoding="utf-8")
    plain, safe = load_plan(path).steps
    return plain.retry, safe.retry


def test_the_default_classes_are_those_where_the_flow_did_not_run(tmp_path: Path) -> None:
    plain, safe = policies(tmp_path)

    assert plain.on == DEFAULT_RETRY_ON == {CONNECT, THROTTLED, UNAVAILABLE}
    assert safe.on == {CONNECT, THROTTLED, UNAVAILABLE, SERVER, TIMEOUT, DROPPED}
    assert {SERVER, TIMEOUT, DROPPED} == AMBIGUOUS


def test_idempotent_adds_the_ambiguous_classes_to_an_explicit_on(tmp_path: Path) -> None:
    plain, safe = policies(tmp_path, "defaults: {retry: {on: [throttled]}}\n")

    assert plain.on == {THROTTLED}
    assert safe.on == {THROTTLED, SERVER, TIMEOUT, DROPPED}


def test_an_empty_on_retries_nothing_unless_idempotent(tmp_path: Path) -> None:
    plain, safe = policies(tmp_path, "defaults: {retry: {on: []}}\n")

    assert plain.on == frozenset()
    assert safe.on == AMBIGUOUS


# -- Pacer ------------------------------------------------------------------------


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(100.0)


def turns(pacer: Pacer, clock: SteppingClock, count: int, together: bool = False) -> None:
    async def one() -> None:
        await pacer.turn()
        clock.starts.append(clock.now)

    async def main() -> None:
        if together:
            await asyncio.gather(*(one() for _ in range(count)))
        else:
            for _ in range(count):
                await one()

    asyncio.run(main())


def test_pacer_spaces_sequential_turns_evenly(clock: SteppingClock) -> None:
    pacer = Pacer(per_second=2.0, clock=clock)

    turns(pacer, clock, 4)

    assert clock.starts == [100.0, 100.5, 101.0, 101.5]
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_pacer_never_bursts_concurrent_turns(clock: SteppingClock) -> None:
    clock.advance = False  # every worker asks at the same instant
    pacer = Pacer(per_second=10.0, clock=clock)

    turns(pacer, clock, 4, together=True)

    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.3])


def test_pacer_does_not_wait_after_idle_time(clock: SteppingClock) -> None:
    pacer = Pacer(per_second=1.0, clock=clock)
    turns(pacer, clock, 1)
    clock.now += 60

    turns(pacer, clock, 1)

    assert clock.sleeps == []


def test_pacer_hold_pauses_the_next_turn(clock: SteppingClock) -> None:
    pacer = Pacer(per_second=10.0, clock=clock)

    pacer.hold(5.0)
    turns(pacer, clock, 2)

    assert clock.sleeps == pytest.approx([5.0, 0.1])
    assert clock.starts == pytest.approx([105.0, 105.1])


def test_pacer_hold_never_shortens_a_longer_pause(clock: SteppingClock) -> None:
    pacer = Pacer(per_second=10.0, clock=clock)

    pacer.hold(5.0)
    pacer.hold(1.0)
    turns(pacer, clock, 1)

    assert clock.sleeps == [5.0]


def test_pacer_without_a_rate_never_waits(clock: SteppingClock) -> None:
    pacer = Pacer(per_second=0, clock=clock)

    turns(pacer, clock, 3, together=True)

    assert clock.sleeps == []
