"""Every error the user can act on is an OwfError carrying its exit code.

The CLI has one boundary that turns these into a message and that code;
anything else is a bug (exit 70).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from owf_runner.problems import Problem


class ExitCode(IntEnum):
    OK = 0
    STEP_FAILED = 1
    USAGE = 2
    INVALID_JOB = 3
    AUTH_REFUSED = 4
    LOCKED = 5
    INTERNAL = 70
    INTERRUPTED = 130
    TERMINATED = 143


class OwfError(Exception):
    exit_code = ExitCode.INTERNAL


class UsageError(OwfError):
    exit_code = ExitCode.USAGE


class ReportError(UsageError):
    """A report file cannot be written there; the message names the path and what to do."""


class JobError(OwfError):
    """The job file (or something it refers to) is invalid; nothing was sent."""

    exit_code = ExitCode.INVALID_JOB

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)))


class AuthError(OwfError):
    """The token endpoint refused the client."""

    exit_code = ExitCode.AUTH_REFUSED


class StepError(OwfError):
    """A step failed; the job stops (exit 1) unless the step continues on error."""

    exit_code = ExitCode.STEP_FAILED
