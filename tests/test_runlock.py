"""One run of a job at a time: the lock, with real processes where the kernel's part is the point.

A flock belongs to an open file description, so two ``hold_run_lock`` calls in one process
contend exactly as two processes do: most tests hold the lock in-process, and the ones about a
process dying (the kernel releasing its lock) use a real child.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from owf_runner.errors import ExitCode, UsageError
from owf_runner.runlock import Holder, RunLocked, hold_run_lock, lock_path

ROOT = Path(__file__).resolve().parent.parent
SINCE = 1_795_960_800.0  # 2026-11-29T14:00:00Z
CHILD = """
import sys, time
from pathlib import Path
from owf_runner.runlock import hold_run_lock
with hold_run_lock(Path(sys.argv[1]), Path(sys.argv[2])):
    print("locked", flush=True)
    time.sleep(60)
"""
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class FakeTime:
    """``sleep`` and ``monotonic`` for the wait loop: sleeping moves time, never waits."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda polls: None) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(len(self.sleeps))

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text("version: 1\n")
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def attempt(state: Path, job: Path, wait: float = 0.0, clock: FakeTime | None = None) -> RunLocked:
    clock = clock or FakeTime()
    with (
        pytest.raises(RunLocked) as raised,
        hold_run_lock(state, job, wait, sleep=clock.sleep, monotonic=clock.monotonic),
    ):
        pass
    assert raised.value.exit_code == ExitCode.LOCKED == 5
    return raised.value


def refused(state: Path, job: Path) -> str:
    with pytest.raises(UsageError) as raised, hold_run_lock(state, job):
        pass
    assert raised.value.exit_code == ExitCode.USAGE
    return str(raised.value)


@contextlib.contextmanager
def held(state: Path, job: Path) -> Iterator[None]:
    with hold_run_lock(state, job, now=lambda: SINCE):
        yield


# -- holding and releasing --------------------------------------------------------------


def test_the_holder_is_written_into_a_private_file(state: Path, job: Path) -> None:
    path = lock_path(state, job)
    with held(state, job):
        record = json.loads(path.read_text())
        assert record == {"pid": os.getpid(), "since": "2026-11-29T14:00:00Z", "job": str(job)}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes() == b""  # kept (deleting races a new holder), emptied


def test_released_on_exit_and_taken_again(state: Path, job: Path) -> None:
    with held(state, job):
        pass
    with held(state, job):
        pass


def test_released_when_the_block_raises(state: Path, job: Path) -> None:
    with pytest.raises(KeyError), held(state, job):
        raise KeyError("boom")
    with held(state, job):
        pass


def test_the_lock_is_named_after_the_resolved_job_path(state: Path, job: Path) -> None:
    path = lock_path(state, job)
    assert path.parent == state / "locks"
    assert re.fullmatch(r"[0-9a-f]{16}\.lock", path.name)
    (job.parent / "link.yaml").symlink_to(job)
    assert lock_path(state, job.parent / "sub" / ".." / "link.yaml") == path


def test_two_jobs_have_independent_locks(state: Path, job: Path) -> None:
    other = job.with_name("other.yaml")
    other.write_text("version: 1\n")
    with held(state, job), held(state, other):
        assert lock_path(state, job) != lock_path(state, other)


# -- a second run -------------------------------------------------------------------------


def test_a_second_run_is_refused_at_once(state: Path, job: Path) -> None:
    clock = FakeTime()
    with held(state, job):
        locked = attempt(state, job, clock=clock)
        assert json.loads(lock_path(state, job).read_text())["pid"] == os.getpid()  # untouched
    assert clock.sleeps == []
    assert str(locked) == (
        f"another run of {job} is in progress (pid {os.getpid()}, since 2026-11-29T14:00:00Z); "
        "wait for it, or pass --lock-wait SECONDS"
    )
    assert locked.holder == Holder(os.getpid(), "2026-11-29T14:00:00Z", str(job))


def test_waiting_until_the_holder_finishes(state: Path, job: Path) -> None:
    holder = contextlib.ExitStack()
    holder.enter_context(held(state, job))

    def release_at_third_poll(polls: int) -> None:
        if polls == 3:
            holder.close()

    clock = FakeTime(release_at_third_poll)
    with hold_run_lock(state, job, wait=30, sleep=clock.sleep, monotonic=clock.monotonic):
        assert json.loads(lock_path(state, job).read_text())["pid"] == os.getpid()
    assert clock.sleeps == [0.1, 0.1, 0.1]


def test_waiting_in_vain_says_how_long(state: Path, job: Path) -> None:
    clock = FakeTime()
    with held(state, job):
        locked = attempt(state, job, wait=0.35, clock=clock)
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.05])
    assert str(locked) == (
        f"another run of {job} is still in progress (pid {os.getpid()}, since "
        "2026-11-29T14:00:00Z) after waiting 0.35 s for it; try again later, or pass a longer "
        "--lock-wait"
    )


@pytest.mark.parametrize(
    ("contents", "shown"),
    [
        (b"", ""),
        (b"\x00\xff\xfe garbage \x1b[2J\n", ""),
        (b"{" * 4096, ""),
        (b"[" * 4000 + b"]" * 4000, ""),
        (b" " * 10_000_000 + b'{"pid": 12}', ""),  # past the 4 KiB read
        (b'{"pid": 12, "since": "x"}' + b"\xff" * 10_000_000, " (pid 12, since x)"),
        (b'{"pid": true, "since": 7}', ""),
        (b'{"pid": -1, "since": null}', ""),
        (b'{"pid": 99999999999999999999999}', ""),
        (
            b'{"pid": 12, "since": "\\u001b[31mred\\nforged"}',
            " (pid 12, since \\x1b[31mred\\nforged)",
        ),
        (b'{"pid": 12, "since": "' + b"s" * 300 + b'"}', f" (pid 12, since {'s' * 200}…)"),
    ],
    ids=[
        "empty",
        "binary",
        "braces",
        "deep",
        "huge",
        "huge-after-a-record",
        "wrong-types",
        "negative-pid",
        "huge-pid",
        "escapes",
        "long-since",
    ],
)
def test_whatever_the_lock_file_holds_the_message_is_clean(
    state: Path, job: Path, contents: bytes, shown: str
) -> None:
    with held(state, job):
        lock_path(state, job).write_bytes(contents)
        locked = attempt(state, job)
    assert str(locked) == (
        f"another run of {job} is in progress{shown}; wait for it, or pass --lock-wait SECONDS"
    )


# -- a real process holding the lock --------------------------------------------------------


@pytest.fixture
def start_holder(state: Path, job: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    children: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        command = [sys.executable, "-c", CHILD, str(state), str(job)]
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert first_line(child, timeout=10) == "locked\n"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def first_line(child: subprocess.Popen[str], timeout: float) -> str:
    """The child's first line, or "" if it has none within ``timeout`` (never a hang)."""
    assert child.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return child.stdout.readline()


def test_a_run_in_another_process_is_refused_at_once(
    state: Path, job: Path, start_holder: Callable[[], subprocess.Popen[str]]
) -> None:
    child = start_holder()
    clock = FakeTime()
    locked = attempt(state, job, clock=clock)
    assert clock.sleeps == []
    assert re.fullmatch(
        rf"another run of {re.escape(str(job))} is in progress \(pid {child.pid}, since "
        rf"{STAMP}\); wait for it, or pass --lock-wait SECONDS",
        str(locked),
    )


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(
    state: Path, job: Path, start_holder: Callable[[], subprocess.Popen[str]]
) -> None:
    child = start_holder()
    attempt(state, job)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    clock = FakeTime()
    with hold_run_lock(state, job, sleep=clock.sleep, monotonic=clock.monotonic):
        assert json.loads(lock_path(state, job).read_text())["pid"] == os.getpid()
    assert clock.sleeps == []


# -- a lock file that is not ours ----------------------------------------------------------


def test_a_symlink_at_the_lock_path_is_refused(state: Path, job: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    target.chmod(0o644)
    path = lock_path(state, job)
    path.parent.mkdir(mode=0o700)
    path.symlink_to(target)
    assert refused(state, job) == (
        f"lock file {path}: a symbolic link, not a lock file owf-run made; remove it"
    )
    assert target.read_bytes() == b"keep me"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_fifo_at_the_lock_path_is_refused(state: Path, job: Path) -> None:
    path = lock_path(state, job)
    path.parent.mkdir(mode=0o700)
    os.mkfifo(path)
    assert refused(state, job) == f"lock file {path}: not a regular file; remove it"


def test_a_directory_at_the_lock_path_is_refused(state: Path, job: Path) -> None:
    path = lock_path(state, job)
    path.mkdir(parents=True)
    assert refused(state, job) == f"lock file {path}: cannot open it: Is a directory"


@pytest.mark.parametrize("make", [Path.touch, lambda p: p.symlink_to(p.parent)])
def test_a_locks_entry_that_is_not_a_directory_is_refused(
    state: Path, job: Path, make: Callable[[Path], object]
) -> None:
    make(state / "locks")
    assert refused(state, job) == (
        f"{state}/locks: not a directory; remove it (owf-run keeps its run locks there)"
    )


def test_a_process_started_by_the_holder_does_not_keep_the_lock(state: Path, job: Path) -> None:
    # A `{command: ...}` secret could leave a daemon behind: it must not inherit the lock.
    command = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    with held(state, job):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, close_fds=False)
    try:
        assert first_line(child, timeout=10) == "up\n"
        with held(state, job):
            pass
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


@pytest.mark.parametrize("wait", [float("nan"), float("inf"), -1.0])
def test_a_wait_that_is_not_a_number_of_seconds(state: Path, job: Path, wait: float) -> None:
    with pytest.raises(UsageError) as raised, hold_run_lock(state, job, wait):
        pass
    assert str(raised.value) == f"--lock-wait expects seconds (0 or more), got {wait}"
