"""`owf-run history` and `owf-run show` lines, exactly."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from owf_runner.history import duration, history_lines, show_lines
from owf_runner.journal import STEP_INVOCATION, ItemRecord, RunRecord, StepRecord
from owf_runner.redaction import MASK, REDACTOR


def a_run(**kw: object) -> RunRecord:
    fields: dict[str, object] = {
        "id": "20261129T140000Z-ab12cd",
        "job_path": "/jobs/nightly.yaml",
        "job_sha256": "ab" * 32,
        "job_name": "nightly",
        "started_at": "2026-11-29T14:00:00Z",
        "finished_at": "2026-11-29T14:04:05Z",
        "status": "failed",
        "exit_code": 1,
        "steps_succeeded": 3,
        "steps_failed": 1,
        "items_succeeded": 1998,
        "items_failed": 1,
        "items_unknown": 1,
    }
    return RunRecord(**{**fields, **kw})  # type: ignore[arg-type]


def problem(index: int, status: str = "failed", **kw: object) -> ItemRecord:
    fields: dict[str, object] = {"run_id": "r", "step_id": "users", "index": index}
    return ItemRecord(**{**fields, "status": status, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.04, "0.0s"),
        (12.34, "12.3s"),
        (59.96, "60.0s"),
        (245.9, "4m05s"),
        (3725, "1h02m"),
        (183_600, "2d03h"),
        (-3, "0.0s"),  # a clock set back
    ],
)
def test_durations(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_no_runs() -> None:
    assert history_lines([]) == ["no runs recorded yet"]


def test_history_table() -> None:
    now = datetime(2026, 11, 29, 16, 0, 30, tzinfo=UTC).timestamp()
    runs = [
        a_run(
            id="20261129T160000Z-000002", job_name="hourly", started_at="2026-11-29T16:00:00Z",
            finished_at=None, status="running", exit_code=None, steps_succeeded=1,
            steps_failed=0, items_succeeded=0, items_failed=0, items_unknown=0,
        ),
        a_run(),
        a_run(
            id="20261128T140000Z-000001", started_at="2026-11-28T14:00:00+00:00",
            finished_at="2026-11-28T14:00:12.300000+00:00", status="succeeded", exit_code=0,
            steps_succeeded=4, steps_failed=0, items_succeeded=0, items_failed=0,
            items_unknown=0,
        ),
    ]  # fmt: skip
    assert history_lines(runs, now=now) == [
        "RUN                      JOB      STARTED               DURATION       STATUS     STEPS           ITEMS",  # noqa: E501
        "20261129T160000Z-000002  hourly   2026-11-29 16:00:00Z  running 30.0s  running    1 ok            -",  # noqa: E501
        "20261129T140000Z-ab12cd  nightly  2026-11-29 14:00:00Z  4m05s          failed     3 ok, 1 failed  1,998 ok, 1 failed, 1 unknown",  # noqa: E501
        "20261128T140000Z-000001  nightly  2026-11-28 14:00:00Z  12.3s          succeeded  4 ok            -",  # noqa: E501
    ]


def test_a_running_run_without_now_and_a_run_stopped_without_a_finish_time() -> None:
    runs = [
        a_run(finished_at=None, status="running", steps_failed=0, items_failed=0),
        a_run(finished_at=None, status="interrupted", started_at="not a time\x1b[2J"),
    ]
    assert history_lines(runs) == [
        "RUN                      JOB      STARTED               DURATION  STATUS       STEPS           ITEMS",  # noqa: E501
        "20261129T140000Z-ab12cd  nightly  2026-11-29 14:00:00Z  running   running      3 ok            1,998 ok, 1 unknown",  # noqa: E501
        "20261129T140000Z-ab12cd  nightly  not a time\\x1b[2J     -         interrupted  3 ok, 1 failed  1,998 ok, 1 failed, 1 unknown",  # noqa: E501
    ]


def test_control_characters_are_escaped_before_the_columns_are_measured() -> None:
    assert history_lines([a_run(job_name="evil\x1b[31m\nname", id="r1")]) == [
        "RUN  JOB                 STARTED               DURATION  STATUS  STEPS           ITEMS",
        "r1   evil\\x1b[31m\\nname  2026-11-29 14:00:00Z  4m05s     failed  3 ok, 1 failed  1,998 ok, 1 failed, 1 unknown",  # noqa: E501
    ]


def test_show_a_run_with_its_problems() -> None:
    REDACTOR.add("canary-secret-value-123")
    steps = [
        StepRecord(run_id="r", step_id="login", position=0, status="succeeded", attempts=1,
                   seconds=0.5),
        StepRecord(run_id="r", step_id="users", position=1, status="failed", attempts=1,
                   seconds=61.25, items=2000, failed_items=1),
    ]  # fmt: skip
    problems: dict[str, list[ItemRecord]] = {
        "login": [],
        "users": [
            problem(17, label="alice@example.com", http_status=500,
                    error="Internal error: canary-secret-value-123", execution_id="ex\x1b-17"),
            problem(1203, "sending"),
            problem(1500, "unknown", error="timed out after 30 s"),
            problem(1999, "failed", error="HTTP 502"),
        ],
    }  # fmt: skip

    def lookup(step_id: str) -> Iterable[ItemRecord]:
        return iter(problems[step_id])

    lines = show_lines(a_run(sessions=2), steps, lookup, limit=3)
    assert lines == [
        "run 20261129T140000Z-ab12cd",
        "  job:       nightly",
        "  path:      /jobs/nightly.yaml",
        "  started:   2026-11-29 14:00:00Z",
        "  duration:  4m05s",
        "  status:    failed",
        "  exit code: 1",
        "  sessions:  2",
        "  steps:     3 ok, 1 failed",
        "  items:     1,998 ok, 1 failed, 1 unknown",
        "",
        "STEP   STATUS     ATTEMPTS  ITEMS             TIME",
        "login  succeeded  1         -                 0.50s",
        "users  failed     1         2,000 (1 failed)  61.25s",
        "",
        "users: items that did not succeed",
        f"  alice@example.com: failed, HTTP 500, Internal error: {MASK}, execution ex\\x1b-17",
        "  #1203: outcome unknown (the run stopped while it was in flight)",
        "  #1500: outcome unknown, timed out after 30 s",
        "  ... and 1 more",
    ]


def test_show_a_step_without_foreach_and_a_run_still_going() -> None:
    run = a_run(finished_at=None, status="running", exit_code=None, items_failed=0)
    steps = [StepRecord(run_id="r", step_id="ping", position=0, status="failed", attempts=3)]
    failed = [problem(STEP_INVOCATION, step_id="ping", http_status=429)]
    lines = show_lines(run, steps, lambda step_id: failed)
    assert lines[4:7] == ["  duration:  running", "  status:    running", "  exit code: -"]
    assert lines[-2:] == ["ping: items that did not succeed", "  the request: failed, HTTP 429"]


def test_show_a_run_without_steps() -> None:
    lines = show_lines(a_run(steps_succeeded=0, steps_failed=0), [], lambda step_id: [])
    assert lines[-2:] == ["  steps:     -", "  items:     1,998 ok, 1 failed, 1 unknown"]
