"""`--log-format json`: the run's progress as JSON Lines — one JSON object per line on stdout.

The same events and verbosity as the console (report.py): ``--quiet`` keeps only failed items,
failed steps and, when the run fails, the summary; ``--verbose`` adds a line per item and each
step's response body. A foreach gets a heartbeat at each tenth of its items (every 30 s when
the total is unknown), never a live bar.

Every line has ``ts`` (when it was written: UTC, ISO 8601, milliseconds, ``Z``) and ``event``;
each event has all the keys listed for it, ``null`` where one does not apply:

- ``step_started``: ``step``, ``org``, ``method``.
- ``item_finished`` (one foreach item): ``step``; ``item`` (its label, else its index, as a
  string); ``index``; ``status`` (``succeeded``, ``failed``, ``unknown``: the flow may have
  run); ``attempts``; ``error``; ``http_status`` (of the last answer); ``restored`` (true: settled
  by the run this one resumes, not sent now).
- ``retrying``: ``step``; ``item`` (null outside a foreach); ``attempt`` (the one that failed);
  ``failure`` (its class: ``connect``, ``throttled``, ``unavailable``, ``server``, ``timeout``,
  ``dropped``); ``error``; ``wait`` (seconds before the next attempt).
- ``step_finished``: ``step``; ``status`` (``succeeded``, ``failed``, ``skipped``, ``not run``);
  ``ignored`` (failed under ``continue_on_error``); ``attempts``; ``seconds``; ``items``,
  ``left_out`` (by ``where``) and ``failed_items`` (a foreach; else null); ``error``;
  ``http_status``; ``restored``; ``body`` (``--verbose``: the response body as JSON text).
- ``heartbeat``: ``step``, ``done``, ``total`` (null: not known in advance), ``failed``,
  ``rate`` (items per second; null before any time has passed), ``eta`` (seconds; null
  without a total or a rate).
- ``message``: ``text`` (what the console would say, e.g. that a run resumes).
- ``summary``: ``run_id``; ``job`` (its name); ``started_at``; ``outcome`` (``succeeded``,
  ``succeeded with N ignored failures``, ``failed``); ``steps`` (per step: ``step``, ``status``,
  ``ignored``, ``attempts``, ``seconds``); ``unknown_count`` and ``unknown`` (the first few
  invocations that may have run the flow and were not sent again); ``advice`` (what to do about
  them).

Every string passes the one redactor, then is cut to 4096 characters (ending in ``…``);
lone surrogates become U+FFFD and every character outside printable ASCII is ``\\u``-escaped,
so each line is valid JSON and plain ASCII, however hostile a label, error or body. A number
that a registered secret would mask is written as the mask (a string); a line the redactor
would still break (a secret that matches our own keys) is replaced by one with only ``ts``,
``event`` and ``withheld`` (why), and dropped if even that would break. Each line leaves through
``boundary.Output``: a standard output that goes away ends nothing.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from owf_runner import redaction
from owf_runner.boundary import Output
from owf_runner.failures import Failure
from owf_runner.outcomes import ItemResult, RunResult, Status, StepResult
from owf_runner.plan import StepPlan
from owf_runner.report import Heartbeat, unknown_advice

MAX_STRING = 4096  # characters of one string value; a label is a name, a body is an excerpt
_SURROGATE = re.compile("[\ud800-\udfff]")
_WITHHELD = "this line was withheld: masking a secret in it would have broken its JSON"

Record = dict[str, Any]


@dataclass
class JsonLinesReporter:
    """The runner's Reporter, and the console's ``say``/``summary``, as JSON Lines."""

    stream: TextIO | None = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    verbose: bool = False
    clock: Callable[[], float] = time.monotonic  # heartbeats and rates
    wall: Callable[[], float] = time.time  # each line's "ts"

    def __post_init__(self) -> None:
        self.output = Output(self.stream)
        self.heartbeats: dict[str, Heartbeat] = {}

    def say(self, text: str, *, always: bool = False) -> None:
        if always or not self.quiet:
            self._emit("message", {"text": text})

    def step_started(self, step: StepPlan) -> None:
        if not self.quiet:
            self._emit(
                "step_started", {"step": step.id, "org": step.org.name, "method": step.method}
            )

    def foreach_started(self, step: StepPlan, total: int | None) -> None:
        self.heartbeats[step.id] = Heartbeat(total, self.clock())

    def item_finished(self, step: StepPlan, result: ItemResult) -> None:
        failed = result.status.failed
        if failed or self.verbose:
            self._emit("item_finished", _item(step, result))
        beat = self.heartbeats.get(step.id)
        if beat is not None:
            beat.add(failed)
            now = self.clock()
            if beat.beat_due(now) and not self.quiet:
                self._emit("heartbeat", _heartbeat(step, beat, now))

    def retrying(
        self, step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
    ) -> None:
        if not self.quiet:
            self._emit("retrying", _retrying(step, item, failure, attempt, wait))

    def step_finished(self, step: StepPlan, result: StepResult) -> None:
        self.heartbeats.pop(step.id, None)
        if result.status is Status.FAILED or not self.quiet:
            self._emit("step_finished", _step(step, result, with_body=self.verbose))

    def summary(self, run: RunResult, job: str = "JOB") -> None:
        if not (self.quiet and run.outcome == "succeeded"):  # cron mails only what went wrong
            self._emit("summary", _summary(run, job))

    def _emit(self, event: str, fields: Record) -> None:
        line = json_line({"ts": _timestamp(self.wall()), "event": event, **fields})
        if line is not None:
            self.output.write(line + "\n")


def json_line(record: Record) -> str | None:
    """``record`` as one line of JSON that stays valid once the redactor has been over it.

    Its strings are redacted and cut here; what the redactor can still find is a secret that
    matches our own numbers or keys (a four-digit PIN marked ``secret: true`` in ``seconds``):
    the numbers it would mask are masked as strings; a line it would still break is replaced
    by a notice; a notice it would break, too, is dropped (None).
    """
    line = _serialized(_cleaned(record))
    if _survives(line):
        return line
    line = _serialized(_cleaned(_numbers_masked(record)))
    if _survives(line):
        return line
    notice = {"ts": record["ts"], "event": record["event"], "withheld": _WITHHELD}
    line = _serialized(_cleaned(notice))
    return line if _survives(line) else None


def _serialized(record: Record) -> str:
    # ensure_ascii escapes every control character but DEL, which the console would escape
    # as `\x7f`: not a JSON escape.
    text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("\x7f", "\\u007f")


def _survives(line: str) -> bool:
    """Is ``line`` still JSON after the redaction Output gives it?"""
    redacted = redaction.REDACTOR.redact(line)
    if redacted == line:
        return True
    try:
        return isinstance(json.loads(redacted), dict)
    except ValueError:
        return False


def _cleaned(value: Any) -> Any:
    """Strings redacted, cut and made encodable; non-finite numbers null."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {key: _cleaned(part) for key, part in value.items()}
    if isinstance(value, list):
        return [_cleaned(part) for part in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _text(value: str) -> str:
    text = redaction.REDACTOR.redact(value)  # first: a cut must not keep part of a secret
    if len(text) > MAX_STRING:
        text = text[: MAX_STRING - 1] + "…"
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _numbers_masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _numbers_masked(part) for key, part in value.items()}
    if isinstance(value, list):
        return [_numbers_masked(part) for part in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = json.dumps(value)
        return value if redaction.REDACTOR.redact(text) == text else redaction.MASK
    return value


def _timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the fields of each event ---------------------------------------------------------------


def _item(step: StepPlan, result: ItemResult) -> Record:
    return {
        "step": step.id,
        "item": result.name,
        "index": result.index,
        "status": str(result.status),
        "attempts": result.attempts,
        "error": result.error,
        "http_status": result.response.status if result.response else None,
        "restored": result.restored,
    }


def _heartbeat(step: StepPlan, beat: Heartbeat, now: float) -> Record:
    elapsed = now - beat.started
    rate = beat.done / elapsed if elapsed > 0 else None  # no time yet: no rate to speak of
    remaining = beat.total - beat.done if beat.total else None
    return {
        "step": step.id,
        "done": beat.done,
        "total": beat.total,
        "failed": beat.failed,
        "rate": None if rate is None else round(rate, 2),
        "eta": round(remaining / rate) if remaining is not None and rate else None,
    }


def _retrying(
    step: StepPlan, item: str | None, failure: Failure, attempt: int, wait: float
) -> Record:
    failure_class = failure.failure_class
    return {
        "step": step.id,
        "item": item,
        "attempt": attempt,
        "failure": None if failure_class is None else str(failure_class),
        "error": str(failure).removeprefix(f"{failure_class}: "),
        "wait": round(wait, 3),
    }


def _step(step: StepPlan, result: StepResult, *, with_body: bool) -> Record:
    foreach = step.foreach is not None
    response = result.response
    body = response.body if with_body and response is not None else None
    return {
        "step": step.id,
        "status": str(result.status),
        "ignored": result.ignored,
        "attempts": result.attempts,
        "seconds": round(result.seconds, 3),
        "items": result.items if foreach else None,
        "left_out": result.left_out if foreach else None,
        "failed_items": result.failed_items if foreach else None,
        "error": result.error,
        "http_status": response.status if response else None,
        "restored": result.restored,
        "body": None if body is None else json.dumps(body, ensure_ascii=False),
    }


def _summary(run: RunResult, job: str) -> Record:
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "started_at": run.started_at,
        "outcome": run.outcome,
        "steps": [_step_row(step) for step in run.steps],
        "unknown_count": sum(step.unknown_count for step in run.steps),
        "unknown": [name for step in run.steps for name in step.unknown],
        "advice": unknown_advice(run, job),
    }


def _step_row(step: StepResult) -> Record:
    return {
        "step": step.id,
        "status": str(step.status),
        "ignored": step.ignored,
        "attempts": step.attempts,
        "seconds": round(step.seconds, 3),
    }
