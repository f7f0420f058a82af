"""The console sink: lines redacted and escaped as they leave; a lost stdout ends nothing."""

from __future__ import annotations

import errno
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from owf_runner import redaction
from owf_runner.boundary import Output
from owf_runner.commands import load_plan
from owf_runner.outcomes import ItemResult, RunResult, Status, StepResult
from owf_runner.plan import StepPlan
from owf_runner.redaction import MASK, Redactor
from owf_runner.report import ConsoleReporter


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> Redactor:
    redactor = Redactor()
    monkeypatch.setattr(redaction, "REDACTOR", redactor)
    return redactor


STAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "  # ISO 8601, UTC: cron logs sort and compare


def lines(out: io.StringIO) -> list[str]:
    """The printed lines without their time stamps."""
    return [re.sub(STAMP, "", line) for line in out.getvalue().splitlines()]


def test_a_line_has_its_control_characters_escaped_and_cannot_forge_another() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out)

    reporter.say("one: failed: \x1b[2J\x07\rtwo: succeeded\u202e (\x9b31m)")

    assert lines(out) == ["one: failed: \\x1b[2J\\x07\\rtwo: succeeded\\u202e (\\x9b31m)"]


def test_a_line_is_redacted_before_it_is_escaped(fresh_redactor: Redactor) -> None:
    fresh_redactor.add("tok\x1bcanary-secret")
    out = io.StringIO()

    ConsoleReporter(stream=out).say("got tok\x1bcanary-secret back")

    assert lines(out) == [f"got {MASK} back"]


def test_the_summary_is_redacted_and_escaped(fresh_redactor: Redactor) -> None:
    fresh_redactor.add("job-name-canary")
    out = io.StringIO()
    steps = (StepResult("s\x1b1", Status.SUCCEEDED, 1, 0.5),)

    ConsoleReporter(stream=out).summary(RunResult("r1", "job-name-canary", "t", steps))

    assert out.getvalue() == (
        f"run r1 of {MASK}: succeeded\n"
        "STEP    STATUS     ATTEMPTS  TIME\n"
        "s\\x1b1  succeeded  1         0.50s\n"
    )


class Failing(io.StringIO):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.tries = 0

    def write(self, text: str) -> int:
        self.tries += 1
        raise self.error


def test_a_reader_gone_is_let_go_silently(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Failing(BrokenPipeError(errno.EPIPE, "Broken pipe"))
    reporter = ConsoleReporter(stream=stream)

    reporter.say("first")
    reporter.say("second")

    assert stream.tries == 1  # not tried again
    assert capsys.readouterr().err == ""


def test_any_other_failure_of_stdout_is_one_note_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reporter = ConsoleReporter(stream=Failing(OSError(errno.ENOSPC, "No space left on device")))

    reporter.say("first")
    reporter.say("second")

    assert capsys.readouterr().err == (
        "owf-run: cannot write to standard output ([Errno 28] No space left on device); "
        "the run goes on without it\n"
    )


def test_a_closed_stream_is_let_go() -> None:
    stream = io.StringIO()
    stream.close()

    ConsoleReporter(stream=stream).say("nobody reads this")  # no ValueError


def test_no_stdout_at_all_prints_nothing() -> None:
    output = Output(None)

    output.write("into the void")

    assert output.gone


@pytest.fixture
def widowed_pipe() -> Iterator[TextIO]:
    """The writing end of a pipe whose reader has gone."""
    reader, writer = os.pipe()
    os.close(reader)
    with open(writer, "w", encoding="utf-8") as stream:
        yield stream


def test_a_broken_pipe_descriptor_is_pointed_at_devnull(widowed_pipe: TextIO) -> None:
    output = Output(widowed_pipe)

    output.write("x\n")
    widowed_pipe.write("a flush at exit finds somewhere to go\n")
    widowed_pipe.flush()

    assert output.gone
    assert os.fstat(widowed_pipe.fileno()).st_rdev == os.stat(os.devnull).st_rdev


# -- foreach progress ----------------------------------------------------------------------

FOREACH_JOB = """\
version: 1
orgs: {acme: {domain: acme.okta.com, credential: open}}
credentials: {open: {type: none}}
steps:
  - id: each
    flow: https://acme.workflows.okta.com/api/flo/f/invoke
    foreach: "{{ range(20) | list }}"
"""


class Ticks:
    """A clock that moves ``step`` seconds each time it is read after ``start()``."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def foreach_step(tmp_path: Path) -> StepPlan:
    job = tmp_path / "job.yaml"
    job.write_text(FOREACH_JOB)
    return load_plan(job).steps[0]


def run_items(reporter: ConsoleReporter, step: StepPlan, total: int | None, count: int) -> None:
    reporter.foreach_started(step, total)
    for index in range(count):
        status = Status.FAILED if index == 4 else Status.SUCCEEDED
        reporter.item_finished(step, ItemResult(index, index, status, 1, error="HTTP 500"))


def test_off_a_terminal_a_foreach_says_where_it_is_at_each_tenth(tmp_path: Path) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out, live=False, clock=Ticks(0.5))

    run_items(reporter, foreach_step(tmp_path), total=20, count=20)

    beats = [line for line in lines(out) if line.startswith("each: ")]
    assert len(beats) == 9  # at 2, 4, ... 18 of 20; the step's own line says the end
    assert beats[0] == "each: 2/20 items (10 %), 2.0/s, 0 failed, ETA 9s"
    assert beats[2] == "each: 6/20 items (30 %), 2.0/s, 1 failed, ETA 7s"
    assert "each[4]: failed: HTTP 500" in lines(out)


def test_without_a_total_a_heartbeat_comes_every_30_seconds(tmp_path: Path) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out, live=False, clock=Ticks(10.0))

    run_items(reporter, foreach_step(tmp_path), total=None, count=10)

    beats = [line for line in lines(out) if line.startswith("each: ")]
    assert beats == [
        "each: 3/? items, 0.1/s, 0 failed",
        "each: 6/? items, 0.1/s, 1 failed",
        "each: 9/? items, 0.1/s, 1 failed",
    ]


def test_quiet_prints_no_progress_only_failures(tmp_path: Path) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out, quiet=True, live=False, clock=Ticks(10.0))

    run_items(reporter, foreach_step(tmp_path), total=20, count=20)

    assert lines(out) == ["each[4]: failed: HTTP 500"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_foreach_gets_a_live_bar(tmp_path: Path) -> None:
    out = Terminal()
    reporter = ConsoleReporter(stream=out, clock=Ticks(0.5))
    step = foreach_step(tmp_path)

    run_items(reporter, step, total=20, count=20)
    reporter.step_finished(step, StepResult("each", Status.FAILED, 20, 1.0, error="1 of 20"))

    drawn = out.getvalue()
    assert reporter.live is True
    assert "20/20" in drawn
    assert "1 failed" in drawn
    assert "each[4]: failed: HTTP 500" in drawn
    assert "each: 2/20 items" not in drawn  # the bar replaces the heartbeat lines
