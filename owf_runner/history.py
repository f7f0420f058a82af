"""`owf-run history` and `owf-run show`: the journal's records as lines of text.

Pure formatting: the records come from ``owf_runner.journal``; nothing here reads the database.
Every cell is escaped (control characters made visible) before the columns are measured, so
they line up as printed; text that came from a server (labels, reasons, execution ids) is also
redacted and cut (``shown``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from owf_runner.journal import (
    EMULATOR,
    RUNNING,
    SENDING,
    STEP_INVOCATION,
    UNKNOWN,
    ItemRecord,
    RunRecord,
    StepRecord,
    instant,
)
from owf_runner.redaction import escape_controls, shown

NO_RUNS = "no runs recorded yet"
UNKNOWN_OUTCOME = "outcome unknown (the run stopped while it was in flight)"
_REASON_CHARS = 200
_LABEL_CHARS = 80


def history_lines(runs: Sequence[RunRecord], now: float | None = None) -> list[str]:
    """One row per run, newest first as given. ``now`` (epoch seconds), when given, shows how
    long a run still `running` has been going."""
    if not runs:
        return [NO_RUNS]
    heading = ("RUN", "JOB", "STARTED", "DURATION", "STATUS", "STEPS", "ITEMS")
    return _table([heading, *(_history_row(run, now) for run in runs)])


def _history_row(run: RunRecord, now: float | None) -> tuple[str, ...]:
    return (
        escape_controls(run.id),
        escape_controls(run.job_name),
        _moment(run.started_at),
        _run_duration(run, now),
        _status(run),
        _step_counts(run),
        _item_counts(run),
    )


def _status(run: RunRecord) -> str:
    """A rehearsal says so: what it sent never reached Okta."""
    status = escape_controls(run.status)
    return f"{status} (emulated)" if run.target == EMULATOR else status


def show_lines(
    run: RunRecord,
    steps: Sequence[StepRecord],
    problems: Callable[[str], Iterable[ItemRecord]],
    limit: int = 20,
) -> list[str]:
    """One run: its header, its steps, then each step's failed and unknown items (the first
    ``limit`` of them): ``problems(step_id)`` yields them in index order, as
    ``journal.items(run.id, step_id, PROBLEMS)`` does."""
    lines = _header(run)
    if steps:
        lines += ["", *_steps_table(steps)]
    for step in steps:
        lines += _problem_lines(step.step_id, problems(step.step_id), limit)
    return lines


def _header(run: RunRecord) -> list[str]:
    fields = {
        "job": escape_controls(run.job_name),
        "path": escape_controls(run.job_path),
        "started": _moment(run.started_at),
        "duration": _run_duration(run, None),
        "status": _status(run),
        "exit code": "-" if run.exit_code is None else str(run.exit_code),
        "sessions": str(run.sessions),
        "steps": _step_counts(run),
        "items": _item_counts(run),
    }
    width = max(map(len, fields)) + 1
    return [f"run {escape_controls(run.id)}"] + [
        f"  {(name + ':').ljust(width)} {value}" for name, value in fields.items()
    ]


def _steps_table(steps: Sequence[StepRecord]) -> list[str]:
    heading = ("STEP", "STATUS", "ATTEMPTS", "ITEMS", "TIME")
    rows = [
        (
            escape_controls(step.step_id),
            escape_controls(step.status),
            str(step.attempts),
            _step_items(step),
            f"{step.seconds:.2f}s",
        )
        for step in steps
    ]
    return _table([heading, *rows])


def _step_items(step: StepRecord) -> str:
    if not step.items:
        return "-"
    failed = f" ({step.failed_items:,} failed)" if step.failed_items else ""
    return f"{step.items:,}{failed}"


def _problem_lines(step_id: str, items: Iterable[ItemRecord], limit: int) -> list[str]:
    lines: list[str] = []
    more = 0
    for item in items:  # streamed: only the first `limit` are kept, the rest counted
        if len(lines) < limit:
            lines.append(f"  {_problem(item)}")
        else:
            more += 1
    if not lines:
        return []
    tail = [f"  ... and {more:,} more"] if more else []
    return ["", f"{escape_controls(step_id)}: items that did not succeed", *lines, *tail]


def _problem(item: ItemRecord) -> str:
    if item.status == SENDING:
        return f"{_item_name(item)}: {UNKNOWN_OUTCOME}"
    parts = ["outcome unknown" if item.status == UNKNOWN else escape_controls(item.status)]
    if item.http_status is not None:
        parts.append(f"HTTP {item.http_status}")
    if item.error:
        parts.append(shown(item.error, _REASON_CHARS))
    if item.execution_id:
        parts.append(f"execution {shown(item.execution_id, _LABEL_CHARS)}")
    return f"{_item_name(item)}: {', '.join(parts)}"


def _item_name(item: ItemRecord) -> str:
    if item.label:
        return shown(item.label, _LABEL_CHARS)
    return "the request" if item.index == STEP_INVOCATION else f"#{item.index}"


# -- cells ------------------------------------------------------------------------------------


def _step_counts(run: RunRecord) -> str:
    return _counts((run.steps_succeeded, "ok"), (run.steps_failed, "failed"))


def _item_counts(run: RunRecord) -> str:
    return _counts(
        (run.items_succeeded, "ok"), (run.items_failed, "failed"), (run.items_unknown, "unknown")
    )


def _counts(*counts: tuple[int, str]) -> str:
    """``1,998 ok, 1 failed``: the counts that are not zero; ``-`` when all are."""
    return ", ".join(f"{count:,} {name}" for count, name in counts if count) or "-"


def _run_duration(run: RunRecord, now: float | None) -> str:
    started = instant(run.started_at)
    finished = instant(run.finished_at)
    if started is None:
        return "-"
    if finished is not None:
        return duration((finished - started).total_seconds())
    if run.status != RUNNING:
        return "-"  # stopped without a finish time
    return RUNNING if now is None else f"{RUNNING} {duration(now - started.timestamp())}"


def duration(seconds: float) -> str:
    """``12.3s``, ``4m05s``, ``1h02m``, ``2d03h``."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _moment(text: str) -> str:
    """An ISO 8601 time as ``2026-11-29 14:00:00Z``; as written (escaped) if it is not one."""
    moment = instant(text)
    if moment is None:
        return escape_controls(text)
    return datetime.fromtimestamp(moment.timestamp(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell (cells are escaped already)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
