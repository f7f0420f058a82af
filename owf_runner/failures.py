"""Failure classes (DESIGN §2 Retry): what went wrong, and whether the flow may have run."""

from __future__ import annotations

import datetime
import email.utils
import json
import re
from collections.abc import Mapping
from enum import StrEnum

from owf_runner.outcomes import Response
from owf_runner.redaction import shown

EXCERPT = 300  # characters of a server's body quoted in a message


class FailureClass(StrEnum):
    CONNECT = "connect"  # the request never left: DNS, refused, connect timeout
    THROTTLED = "throttled"  # 429: Okta refused before running the flow
    UNAVAILABLE = "unavailable"  # 503
    SERVER = "server"  # 500, 502, 504: the flow may have run
    TIMEOUT = "timeout"  # no answer after the request was sent
    DROPPED = "dropped"  # the connection broke mid-response


DEFAULT_RETRY_ON = frozenset(
    {FailureClass.CONNECT, FailureClass.THROTTLED, FailureClass.UNAVAILABLE}
)
# The flow may have run: retried only when the user says the step is idempotent.
AMBIGUOUS = frozenset({FailureClass.SERVER, FailureClass.TIMEOUT, FailureClass.DROPPED})

_STATUS_CLASSES = {
    429: FailureClass.THROTTLED,
    503: FailureClass.UNAVAILABLE,
    500: FailureClass.SERVER,
    502: FailureClass.SERVER,
    504: FailureClass.SERVER,
}


def classify_status(status: int) -> FailureClass | None:
    return _STATUS_CLASSES.get(status)


class Failure(Exception):
    """One failed attempt: its class (None: never retried) and what to tell the user."""

    def __init__(
        self,
        failure_class: FailureClass | None,
        message: str,
        response: Response | None = None,
        requested_wait: float | None = None,  # from Retry-After / X-Rate-Limit-Reset
    ) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message
        self.response = response
        self.requested_wait = requested_wait


def status_failure(
    response: Response, expected: frozenset[int] | None, max_wait: float, now: float
) -> Failure | None:
    """The failure an answer is (None: it is the success the step expects)."""
    status = response.status
    if expected is not None and status in expected:
        return None
    if 300 <= status < 400:
        location = shown(response.headers.get("location", "(none)"), EXCERPT)
        message = f"HTTP {status} redirect to {location}; redirects are not followed"
        return Failure(None, message, response)
    failure_class = classify_status(status)
    if failure_class is None and expected is None and 200 <= status < 300:
        return None
    wait = requested_wait(response.headers, now) if failure_class else None
    wanted = ", ".join(map(str, sorted(expected))) if expected else "2xx"
    message = f"HTTP {status} (expected {wanted}){_excerpt(response)}"
    if wait is not None and wait > max_wait:
        message += f"; the server asked to wait {wait:.0f}s, over retry.max_wait ({max_wait:g}s)"
    return Failure(failure_class, message, response, wait)


def _excerpt(response: Response) -> str:
    if response.body is None:
        return ""
    text = response.body if isinstance(response.body, str) else json.dumps(response.body)
    return ": " + shown(text, EXCERPT)


def requested_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked us to wait: Retry-After, else X-Rate-Limit-Reset.

    ``now`` is epoch seconds; a reset is read against the response's own Date when given.
    A malformed value (``²``, ``-5``, ``NaN``, 5000 digits, a bad date) counts as absent.
    """
    retry_after = _retry_after(headers.get("retry-after", ""), now)
    if retry_after is not None:
        return retry_after
    reset = _seconds(headers.get("x-rate-limit-reset", ""))
    if reset is None:
        return None
    server_now = _http_date(headers.get("date", "")) or now
    return max(0.0, reset - server_now)


def _retry_after(value: str, now: float) -> float | None:
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    when = _http_date(value)
    return None if when is None else max(0.0, when - now)


# ASCII digits only (str.isdigit also takes "²" and "٣"); 15 of them is 31 million years.
_SECONDS = re.compile(r"[0-9]{1,15}")


def _seconds(value: str) -> float | None:
    value = value.strip()
    return float(value) if _SECONDS.fullmatch(value) else None


def _http_date(value: str) -> float | None:
    if not value.strip() or len(value) > 64:  # an HTTP date is 29 characters
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC, as RFC 5322 means it
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
