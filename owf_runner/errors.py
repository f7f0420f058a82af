"""Every error the user can act on is an OwfError carrying its exit code.

The CLI has one boundary that turns these into a message and that code;
anything else is a bug (exit 70).
"""

from __future__ import annotations


class ExitCode:
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


class JobError(OwfError):
    """The job file (or something it refers to) is invalid; nothing was sent."""

    exit_code = ExitCode.INVALID_JOB

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class CredentialError(JobError):
    """A secret reference could not be resolved into a usable value."""

    def __init__(self, message: str) -> None:
        super().__init__([message])


class AuthError(OwfError):
    """The token endpoint refused the client."""

    exit_code = ExitCode.AUTH_REFUSED


class StepError(OwfError):
    """A step failed; the job stops (exit 1) unless the step continues on error."""

    exit_code = ExitCode.STEP_FAILED
