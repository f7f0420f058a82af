"""The console sink: lines redacted and escaped as they leave; a lost stdout ends nothing."""

from __future__ import annotations

import errno
import io
import os
import re
from collections.abc import Iterator
from typing import TextIO

import pytest

from owf_runner import redaction
from owf_runner.boundary import Output
from owf_runner.outcomes import RunResult, Status, StepResult
from owf_runner.redaction import MASK, Redactor
from owf_runner.report import ConsoleReporter


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> Redactor:
    redactor = Redactor()
    monkeypatch.setattr(redaction, "REDACTOR", redactor)
    return redactor


def lines(out: io.StringIO) -> list[str]:
    """The printed lines without their HH:MM:SS stamps."""
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in out.getvalue().splitlines()]


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
