"""The error boundary: messages escaped and redacted; crash logs private, never via a symlink."""

from __future__ import annotations

import datetime
import logging
import os
import stat
from pathlib import Path

import pytest

from owf_runner import boundary, redaction
from owf_runner.errors import ExitCode, UsageError
from owf_runner.redaction import MASK, Redactor

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> Redactor:
    redactor = Redactor()
    redactor.add("boundary-canary-5e1d")
    monkeypatch.setattr(redaction, "REDACTOR", redactor)
    return redactor


def fail(error: BaseException) -> int:
    def action() -> int:
        raise error

    return boundary.call(action)


def test_an_error_message_is_redacted_and_its_controls_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = fail(UsageError("bad \x1b[31mvalue\r boundary-canary-5e1d\nsecond line"))

    assert code == ExitCode.USAGE
    assert capsys.readouterr().err == (f"owf-run: bad \\x1b[31mvalue\\r {MASK}\nsecond line\n")


def test_a_bug_is_a_private_log_and_a_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = fail(RuntimeError("boom boundary-canary-5e1d \x1b]0;title\x07"))

    assert code == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("owf-run: internal error (a bug in owf-runner); details in ")
    log = Path(err.rsplit(" ", 1)[-1].strip())
    assert log.parent == tmp_path / "state" / "logs"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert f"RuntimeError: boom {MASK} \\x1b]0;title\\x07\n" in log.read_text()


def test_a_symlink_planted_at_the_log_path_is_not_followed(tmp_path: Path) -> None:
    logs = tmp_path / "state" / "logs"
    logs.mkdir(parents=True)
    target = tmp_path / "victim.txt"
    target.write_text("untouched")
    planted = logs / f"owf-run-crash-20260102T030405Z-{os.getpid()}.log"
    planted.symlink_to(target)

    log = boundary.write_crash_log("Traceback: boundary-canary-5e1d\n", now=NOW)

    assert target.read_text() == "untouched"
    assert planted.is_symlink()
    assert log == logs / f"owf-run-crash-20260102T030405Z-{os.getpid()}-1.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text() == f"Traceback: {MASK}\n"


def test_an_unwritable_state_dir_falls_back_to_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("OWF_STATE_DIR", str(blocker))
    monkeypatch.setattr(boundary.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))

    log = boundary.write_crash_log("trace\n", now=NOW)

    assert log == tmp_path / "tmp" / f"owf-run-crash-20260102T030405Z-{os.getpid()}.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_lost_stderr_ends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone:
        def write(self, text: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr(boundary.sys, "stderr", Gone())

    assert fail(UsageError("nobody hears this")) == ExitCode.USAGE


def test_log_records_are_redacted_and_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    boundary.configure_logging(verbose=False)

    logging.getLogger("owf_runner.test").warning("key %s\x1b[0m", "boundary-canary-5e1d")

    assert capsys.readouterr().err == f"owf-run: WARNING: key {MASK}\\x1b[0m\n"
