"""One run of a job at a time: an OS file lock per job in the state directory (DESIGN §6).

The lock is ``flock`` on ``<state dir>/locks/<16 hex of sha256(resolved job path)>.lock``. The
kernel drops it when its holder dies, however it dies, so a killed run never blocks the next
one, and there is nothing stale to clean up. The holder writes its pid, start time and job
path into the file, for the message a second run prints and for anyone who looks; the file
is never deleted (a new holder could have locked it in between), only emptied on release.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from owf_runner.errors import ExitCode, OwfError, UsageError
from owf_runner.redaction import shown

LOCKS = "locks"
POLL_SECONDS = 0.1
MAX_HOLDER_BYTES = 4096  # what a holder writes is ~200 bytes; a larger file is not ours
_MAX_PID = 2**31
_SHOWN = 200  # characters of a holder's field a message shows
_OPEN_FLAGS = (
    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
)  # never through a planted link; never blocking on a planted FIFO; never inherited


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the run holding it; any field may be missing."""

    pid: int | None = None
    since: str | None = None  # ISO 8601 UTC
    job: str | None = None

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.since is not None:
            parts.append(f"since {shown(self.since, _SHOWN)}")
        return f" ({', '.join(parts)})" if parts else ""


class RunLocked(OwfError):
    """Another run of the job holds its lock."""

    exit_code = ExitCode.LOCKED

    def __init__(self, job_path: Path, holder: Holder, waited: float) -> None:
        self.holder = holder
        self.waited = waited
        job = shown(str(job_path))
        if waited > 0:
            super().__init__(
                f"another run of {job} is still in progress{holder.describe()} after waiting "
                f"{waited:g} s for it; try again later, or pass a longer --lock-wait"
            )
        else:
            super().__init__(
                f"another run of {job} is in progress{holder.describe()}; wait for it, or "
                f"pass --lock-wait SECONDS"
            )


def lock_path(state_dir: Path, job_path: Path) -> Path:
    """The job's lock file: named by a hash of its resolved path, as the journal knows it."""
    digest = hashlib.sha256(os.fsencode(_resolved(job_path))).hexdigest()
    return state_dir / LOCKS / f"{digest[:16]}.lock"


@contextlib.contextmanager
def hold_run_lock(
    state_dir: Path,
    job_path: Path,
    wait: float = 0.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
) -> Iterator[None]:
    """Holds the job's run lock for the ``with`` block, waiting up to ``wait`` seconds for it.

    RunLocked (exit 5) when another run holds it past then; UsageError (exit 2) when the lock
    file cannot be used (a planted link, not a regular file, no permission, no locking).
    """
    if not math.isfinite(wait) or wait < 0:  # NaN would wait forever, and quietly
        raise UsageError(f"--lock-wait expects seconds (0 or more), got {wait}")
    with _LockFile.open(lock_path(state_dir, job_path)) as lock:
        deadline = monotonic() + wait
        while not lock.try_lock():
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise RunLocked(job_path, lock.holder(), waited=wait)
            sleep(min(POLL_SECONDS, remaining))
        lock.write_holder(_resolved(job_path), now())
        try:
            yield
        finally:
            lock.release()


def _resolved(job_path: Path) -> str:
    try:
        return str(job_path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: the job could not have loaded anyway
        return str(job_path.absolute())


@dataclass(frozen=True)
class _LockFile:
    path: Path
    descriptor: int

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path) -> Iterator[_LockFile]:
        """The lock file, open; closing it drops any lock taken through it."""
        _ensure_locks_dir(path.parent)
        try:
            descriptor = os.open(path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            raise UsageError(f"lock file {shown(str(path))}: {_open_problem(exc)}") from None
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise UsageError(f"lock file {shown(str(path))}: not a regular file; remove it")
            yield cls(path, descriptor)
        finally:
            os.close(descriptor)

    def try_lock(self) -> bool:
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:  # ENOLCK: a file system without locks
            raise UsageError(
                f"lock file {shown(str(self.path))}: cannot lock it: {exc.strerror or exc}"
            ) from None
        return True

    def write_holder(self, job: str, started: float) -> None:
        """Best effort: a full disk must not stop a run that holds its lock."""
        since = datetime.datetime.fromtimestamp(started, datetime.UTC)
        record = {"pid": os.getpid(), "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "job": job}
        data = (json.dumps(record) + "\n").encode()  # ASCII: json escapes the rest
        with contextlib.suppress(OSError):
            os.ftruncate(self.descriptor, 0)
            os.pwrite(self.descriptor, data, 0)

    def holder(self) -> Holder:
        """Whatever the file holds (empty, garbage, huge): a Holder, with what could be read."""
        try:
            text = os.pread(self.descriptor, MAX_HOLDER_BYTES, 0).decode("utf-8", "replace")
            record, _ = json.JSONDecoder().raw_decode(text.lstrip())  # what follows: not ours
        except (OSError, ValueError, RecursionError):
            return Holder()
        return _holder_from(record) if isinstance(record, dict) else Holder()

    def release(self) -> None:
        """Emptied while still held, so no one reads a holder that is gone; then unlocked (for
        every copy of the descriptor, should a forked process have inherited one)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self.descriptor, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)


def _ensure_locks_dir(locks: Path) -> None:
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(locks, 0o700)
        is_dir = stat.S_ISDIR(os.lstat(locks).st_mode)
    except OSError as exc:
        raise UsageError(f"{shown(str(locks))}: {exc.strerror or exc}") from None
    if not is_dir:
        raise UsageError(
            f"{shown(str(locks))}: not a directory; remove it (owf-run keeps its run locks there)"
        )


def _open_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link: it could point anywhere
        return "a symbolic link, not a lock file owf-run made; remove it"
    if isinstance(exc, PermissionError):
        return "permission denied (made by another user, by a run under sudo?); remove it"
    return f"cannot open it: {exc.strerror or exc}"


def _holder_from(record: dict[str, Any]) -> Holder:
    pid = record.get("pid")
    since = record.get("since")
    job = record.get("job")
    return Holder(
        pid=pid if type(pid) is int and 0 < pid < _MAX_PID else None,
        since=since if isinstance(since, str) else None,
        job=job if isinstance(job, str) else None,
    )
