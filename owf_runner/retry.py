"""Retry policies as tenacity retryers, and pacing per flow — both on an injected Clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import wait_exponential_jitter as wait_jittered
from tenacity.stop import stop_base

from owf_runner.clock import Clock
from owf_runner.failures import Failure
from owf_runner.plan import RetryPolicy

RetryHook = Callable[[Failure, int, float], None]  # failure, attempt number, wait
T = TypeVar("T")


async def with_retries(
    attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, on_retry: RetryHook, clock: Clock
) -> T:
    """``attempt()``, retried as ``retrying`` retries it.

    The first try runs bare: most calls succeed, and building a tenacity retryer costs
    more than the rest of the runner's own work on a step. Only a failure the policy
    retries builds one, and hands it that failure as its first attempt, so the waits,
    hooks and attempt numbers are those of a retryer that ran from the start.
    """
    try:
        return await attempt()
    except Failure as failure:
        if failure.failure_class not in policy.on:
            raise
        first: Failure | None = failure
    async for retry in retrying(policy, on_retry, clock):
        with retry:
            if first is not None:
                replayed, first = first, None
                raise replayed
            return await attempt()
    raise AssertionError("unreachable: the retryer returns or raises")  # pragma: no cover


def retrying(policy: RetryPolicy, on_retry: RetryHook, clock: Clock) -> AsyncRetrying:
    fallback = wait_jittered(multiplier=policy.backoff_initial, max=policy.backoff_max)

    def wait(state: RetryCallState) -> float:
        requested = _failure(state).requested_wait
        return requested if requested is not None else fallback(state)

    def before_sleep(state: RetryCallState) -> None:
        wait_for = state.next_action.sleep if state.next_action else 0.0
        on_retry(_failure(state), state.attempt_number, wait_for)

    return AsyncRetrying(
        sleep=clock.sleep,
        stop=stop_after_attempt(policy.attempts) | _WaitTooLong(policy.max_wait),
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, Failure) and e.failure_class in policy.on),
        before_sleep=before_sleep,
        reraise=True,
    )


def _failure(state: RetryCallState) -> Failure:
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, Failure)  # noqa: S101 - only Failures are retried
    return exc


class _WaitTooLong(stop_base):
    """Fail at once rather than sleep past what the user allowed (the next cron run)."""

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        requested = exc.requested_wait if isinstance(exc, Failure) else None
        return requested is not None and requested > self.max_wait


class Pacer:
    """Evenly spaced turns for one flow URL, shared by all workers.

    A 429 holds every worker until the reset time: one pause, not a
    thundering herd of independent retries.
    """

    def __init__(self, per_second: float, clock: Clock) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def turn(self) -> None:
        async with self._lock:
            now = self._clock.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await self._clock.sleep(start - now)

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, self._clock.monotonic() + seconds)
