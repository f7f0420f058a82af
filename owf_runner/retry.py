"""Retry policies from ``Retry`` settings, server-requested waits, and pacing."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Mapping

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import wait_exponential_jitter as wait_jittered
from tenacity.stop import stop_base

from owf_runner.http import HttpResponse
from owf_runner.model import Retry


class Failure(Exception):
    """One failed attempt: its class (None: never retried) and what to tell the user."""

    def __init__(
        self,
        failure_class: str | None,
        message: str,
        response: HttpResponse | None = None,
        requested_wait: float | None = None,  # from Retry-After / X-Rate-Limit-Reset
    ) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message
        self.response = response
        self.requested_wait = requested_wait


RetryHook = Callable[[Failure, int, float], None]  # failure, attempt number, wait


def retrying(policy: Retry, idempotent: bool, on_retry: RetryHook) -> AsyncRetrying:
    classes = policy.classes(idempotent)
    fallback = wait_jittered(multiplier=policy.backoff.initial, max=policy.backoff.max)

    def wait(state: RetryCallState) -> float:
        requested = _failure(state).requested_wait
        return requested if requested is not None else fallback(state)

    def before_sleep(state: RetryCallState) -> None:
        wait_for = state.next_action.sleep if state.next_action else 0.0
        on_retry(_failure(state), state.attempt_number, wait_for)

    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | _WaitTooLong(policy.max_wait),
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, Failure) and e.failure_class in classes),
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


def requested_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: Retry-After, else X-Rate-Limit-Reset."""
    retry_after = _retry_after(headers.get("retry-after", ""), now)
    if retry_after is not None:
        return retry_after
    reset = headers.get("x-rate-limit-reset")
    if reset and reset.strip().isdigit():
        server_now = _http_date(headers.get("date")) or (now or time.time())
        return max(0.0, int(reset) - server_now)
    return None


def _retry_after(value: str, now: float | None) -> float | None:
    if not value.strip():
        return None
    if value.strip().isdigit():
        return float(value)
    when = _http_date(value)
    return None if when is None else max(0.0, when - (now or time.time()))


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


class Pacer:
    """Evenly spaced turns for one flow URL, shared by all workers.

    A 429 holds every worker until the reset time: one pause, not a
    thundering herd of independent retries.
    """

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def turn(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)
