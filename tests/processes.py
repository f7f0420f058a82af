"""Real `owf-run` processes for end-to-end tests: started, waited on, signalled, always reaped.

Tests synchronise with a child on events (the emulator has received a call, the child has a
file open), never on sleeps: ``wait_until`` polls for the event and fails the test if it has
not happened within ``EVENT_TIMEOUT`` — a bound on a hang, not a guess at a duration.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OWF_RUN = Path(sys.executable).parent / "owf-run"  # the console script of this venv
EVENT_TIMEOUT = 30.0  # seconds: an event not seen by then is not coming
PROCESS_TIMEOUT = 60.0  # seconds a child may take to finish once it should
POLL_SECONDS = 0.005


@dataclass(frozen=True)
class Finished:
    """A child's exit code (negative: the signal that killed it) and what it printed."""

    code: int
    out: str
    err: str


def owf_run(args: Sequence[str], env: Mapping[str, str]) -> Finished:
    """`owf-run ARGS` to its end."""
    done = subprocess.run(
        [str(OWF_RUN), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    return Finished(done.returncode, done.stdout, done.stderr)


class Running:
    """A started `owf-run`: signal it, then collect how it finished."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self) -> Finished:
        out, err = self.process.communicate(timeout=PROCESS_TIMEOUT)
        return Finished(self.process.returncode, out, err)

    def killed(self) -> Finished:
        """kill -9, as a crash or the OOM killer would: nothing of the child's runs after."""
        self.send(signal.SIGKILL)
        return self.finish()

    def await_event(self, happened: Callable[[], bool], what: str) -> None:
        """``wait_until``, failing at once (with what it printed) if the child exits first."""

        def seen() -> bool:
            if happened():
                return True
            if self.process.poll() is not None:
                done = self.finish()
                raise AssertionError(f"exited {done.code} before {what}:\n{done.out}{done.err}")
            return False

        wait_until(seen, what)

    def took(self, signum: int) -> bool:
        """Has the child taken ``signum`` (Linux: no longer pending in /proc/PID/status)?
        Until then a second one would merge with it: the kernel queues one of each."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        masks = re.findall(r"^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$", status, re.MULTILINE)
        return not any(int(mask, 16) >> (signum - 1) & 1 for mask in masks)

    def has_open(self, path: Path) -> bool:
        """Does the child hold ``path`` open (Linux: its /proc fd links)?"""
        fds, target = Path(f"/proc/{self.pid}/fd"), path.resolve()
        with contextlib.suppress(OSError):  # it may have exited, or closed one meanwhile
            return any(_points_to(link, target) for link in fds.iterdir())
        return False


def _points_to(link: Path, path: Path) -> bool:
    try:
        return os.readlink(link) == str(path)
    except OSError:
        return False


@contextlib.contextmanager
def started(args: Sequence[str], env: Mapping[str, str]) -> Iterator[Running]:
    """`owf-run ARGS`, running in the background; killed and reaped whatever the test does
    (a child left with open pipes would make a ResourceWarning, an error under pytest)."""
    pipe = subprocess.PIPE
    with (
        _sigint_not_ignored(),
        subprocess.Popen(
            [str(OWF_RUN), *args], stdout=pipe, stderr=pipe, text=True, env=dict(env)
        ) as process,
    ):
        try:
            yield Running(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Children start with SIGINT at its default, even when pytest itself was started in the
    background by a shell (which ignores SIGINT, and an ignored signal stays ignored across
    exec): a handled signal is reset to the default across exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_until(happened: Callable[[], bool], what: str, timeout: float = EVENT_TIMEOUT) -> None:
    """Return as soon as ``happened()``; fail the test if it has not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not happened():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it did not happen")
        time.sleep(POLL_SECONDS)
