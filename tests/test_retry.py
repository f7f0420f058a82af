"""Retry policies, server-requested waits and pacing — no wall-clock assertions."""

from __future__ import annotations

import asyncio
import email.utils
import types
from collections.abc import Sequence

import httpx2
import pytest

from owf_runner.model import Backoff, FailureClass, Retry
from owf_runner.retry import Failure, Pacer, requested_wait, retrying

NOW = 1_700_000_000.0  # a fixed "current time" (2023-11-14T22:13:20Z)
TINY = Backoff(initial=0.001, max=0.001)


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


def test_case_insensitive_headers_from_httpx() -> None:
    headers = httpx2.Headers({"Retry-After": "9"})

    assert requested_wait(headers, NOW) == 9.0


# -- retrying ------------------------------------------------------------------------

Hooked = list[tuple[str | None, int, float]]


def run(
    policy: Retry,
    failures: Sequence[BaseException],
    idempotent: bool = False,
) -> tuple[int, Hooked, object]:
    """Run an attempt loop whose first attempts raise ``failures`` in turn.

    Returns (attempts made, hook calls, result or the exception that escaped).
    """
    hooked: Hooked = []
    calls = 0

    def hook(failure: Failure, attempt: int, wait: float) -> None:
        hooked.append((failure.failure_class, attempt, wait))

    async def main() -> object:
        nonlocal calls
        async for attempt in retrying(policy, idempotent, hook):
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


def fail(failure_class: str | None, requested: float | None = None) -> Failure:
    return Failure(failure_class, f"{failure_class} failure", requested_wait=requested)


@pytest.mark.parametrize("failure_class", ["connect", "throttled", "unavailable"])
def test_default_classes_are_retried(failure_class: str) -> None:
    calls, hooked, result = run(Retry(backoff=TINY), [fail(failure_class)] * 2)

    assert result == "ok"
    assert calls == 3
    assert [(c, n) for c, n, _ in hooked] == [(failure_class, 1), (failure_class, 2)]


@pytest.mark.parametrize("failure_class", ["server", "timeout", "dropped", None])
def test_other_classes_are_not_retried_by_default(failure_class: str | None) -> None:
    failure = fail(failure_class)

    calls, hooked, result = run(Retry(backoff=TINY), [failure])

    assert calls == 1
    assert hooked == []
    assert result is failure


@pytest.mark.parametrize("failure_class", ["server", "timeout", "dropped", "connect"])
def test_idempotent_adds_server_timeout_dropped(failure_class: str) -> None:
    calls, hooked, result = run(Retry(backoff=TINY), [fail(failure_class)], idempotent=True)

    assert result == "ok"
    assert calls == 2
    assert [(c, n) for c, n, _ in hooked] == [(failure_class, 1)]


def test_unclassified_failure_is_never_retried_even_when_idempotent() -> None:
    calls, _, result = run(Retry(backoff=TINY), [fail(None)], idempotent=True)

    assert calls == 1
    assert isinstance(result, Failure)


def test_policy_classes() -> None:
    assert Retry().classes(False) == {"connect", "throttled", "unavailable"}
    assert Retry().classes(True) == {
        "connect",
        "throttled",
        "unavailable",
        "server",
        "timeout",
        "dropped",
    }
    only: tuple[FailureClass, ...] = ("server",)
    assert Retry(on=only).classes(False) == {"server"}


def test_explicit_on_replaces_the_default_classes() -> None:
    policy = Retry(backoff=TINY, on=("server",))

    server_calls, _, server_result = run(policy, [fail("server")])
    throttled_calls, _, throttled_result = run(policy, [fail("throttled")])

    assert (server_calls, server_result) == (2, "ok")
    assert throttled_calls == 1
    assert isinstance(throttled_result, Failure)


def test_attempts_bounds_total_tries_and_reraises_the_last_failure() -> None:
    failures = [fail("throttled") for _ in range(5)]

    calls, hooked, result = run(Retry(attempts=3, backoff=TINY), failures)

    assert calls == 3
    assert [n for _, n, _ in hooked] == [1, 2]
    assert result is failures[2]


def test_one_attempt_means_no_retry() -> None:
    calls, hooked, _ = run(Retry(attempts=1, backoff=TINY), [fail("connect")])

    assert (calls, hooked) == (1, [])


def test_requested_wait_above_max_wait_stops_at_once() -> None:
    failure = fail("throttled", requested=301.0)

    calls, hooked, result = run(Retry(backoff=TINY), [failure])

    assert calls == 1
    assert hooked == []
    assert result is failure


def test_requested_wait_within_max_wait_is_used_as_the_wait() -> None:
    calls, hooked, result = run(
        Retry(backoff=TINY, max_wait=1.0), [fail("throttled", requested=0.002)]
    )

    assert result == "ok"
    assert calls == 2
    assert hooked == [("throttled", 1, 0.002)]


def test_requested_wait_of_zero_max_wait() -> None:
    calls, _, result = run(Retry(backoff=TINY, max_wait=0.0), [fail("throttled", requested=0.0)])

    assert (calls, result) == (2, "ok")


def test_backoff_wait_is_bounded_by_backoff_max() -> None:
    _, hooked, _ = run(Retry(attempts=4, backoff=TINY), [fail("connect")] * 3)

    assert len(hooked) == 3
    assert all(0 <= wait <= 0.001 for _, _, wait in hooked)


def test_non_failure_exceptions_are_not_retried() -> None:
    error = ValueError("boom")

    calls, hooked, result = run(Retry(backoff=TINY), [error], idempotent=True)

    assert (calls, hooked, result) == (1, [], error)


# -- Pacer ------------------------------------------------------------------------


class FakeClock:
    """Replaces the ``time`` and ``asyncio`` the pacer sees; sleeping advances the clock."""

    def __init__(self, start: float, advance: bool = True) -> None:
        self.now = start
        self.advance = advance
        self.sleeps: list[float] = []
        self.starts: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(100.0)
    monkeypatch.setattr("owf_runner.retry.time", types.SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(
        "owf_runner.retry.asyncio", types.SimpleNamespace(Lock=asyncio.Lock, sleep=fake.sleep)
    )
    return fake


def turns(pacer: Pacer, clock: FakeClock, count: int, together: bool = False) -> None:
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


def test_pacer_spaces_sequential_turns_evenly(clock: FakeClock) -> None:
    pacer = Pacer(per_second=2.0)

    turns(pacer, clock, 4)

    assert clock.starts == [100.0, 100.5, 101.0, 101.5]
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_pacer_never_bursts_concurrent_turns(clock: FakeClock) -> None:
    clock.advance = False  # every worker asks at the same instant
    pacer = Pacer(per_second=10.0)

    turns(pacer, clock, 4, together=True)

    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.3])


def test_pacer_does_not_wait_after_idle_time(clock: FakeClock) -> None:
    pacer = Pacer(per_second=1.0)
    turns(pacer, clock, 1)
    clock.now += 60

    turns(pacer, clock, 1)

    assert clock.sleeps == []


def test_pacer_hold_pauses_the_next_turn(clock: FakeClock) -> None:
    pacer = Pacer(per_second=10.0)

    pacer.hold(5.0)
    turns(pacer, clock, 2)

    assert clock.sleeps == pytest.approx([5.0, 0.1])
    assert clock.starts == pytest.approx([105.0, 105.1])


def test_pacer_hold_never_shortens_a_longer_pause(clock: FakeClock) -> None:
    pacer = Pacer(per_second=10.0)

    pacer.hold(5.0)
    pacer.hold(1.0)
    turns(pacer, clock, 1)

    assert clock.sleeps == [5.0]


def test_pacer_without_a_rate_never_waits(clock: FakeClock) -> None:
    pacer = Pacer(per_second=0)

    turns(pacer, clock, 3, together=True)

    assert clock.sleeps == []
