"""The one error boundary: OwfError → message + exit code; anything else is a bug.

Everything written here is redacted and has its control characters escaped (``printable``);
a bug's traceback goes to a private log file (without local variables) and the user gets its
path.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar

from owf_runner.errors import ExitCode, JobError, OwfError
from owf_runner.redaction import printable

T = TypeVar("T")
_QUIET_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "authlib")


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that the run unwinds the same way."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, with SIGTERM cancelling the run as SIGINT does.

    A plain handler would raise Terminated wherever the main thread happens to be; inside
    asyncio's socket code that reads as a broken connection, and the run ends as if a
    request had failed. Through the loop, the run is cancelled cleanly instead.
    """
    import asyncio  # here, not at the top: the start-up path (--version, errors) stays light

    async def guarded() -> T:
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        terminated = asyncio.Event()

        def terminate() -> None:
            terminated.set()
            if task is not None:
                task.cancel()

        previous = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, terminate)
        try:
            return await main
        except asyncio.CancelledError:
            if terminated.is_set():
                raise Terminated from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    return asyncio.run(guarded())


def call(action: Callable[[], int]) -> int:
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _guarded(action)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _guarded(action: Callable[[], int]) -> int:
    try:
        return action()
    except JobError as exc:
        to_stderr(str(exc))
        return exc.exit_code
    except OwfError as exc:
        to_stderr(f"owf-run: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        to_stderr("owf-run: interrupted")
        return ExitCode.INTERRUPTED
    except Terminated:
        to_stderr("owf-run: terminated")
        return ExitCode.TERMINATED
    except Exception:
        log = write_crash_log(traceback.format_exc())
        to_stderr(f"owf-run: internal error (a bug in owf-runner); details in {log}")
        return ExitCode.INTERNAL


def to_stderr(text: str) -> None:
    """One message on standard error, if it is still there: a lost stderr ends nothing."""
    try:
        sys.stderr.write(printable(text) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        point_at_devnull(sys.stderr)  # or Python's flush at exit turns the exit code into 120
    except AttributeError:  # started with standard error closed: sys.stderr is None
        pass


class Output:
    """A stream we print to that may go away; losing it never ends a run or reads as a bug.

    A reader gone (``| head -1``) is normal and silent. Any other failure (a full disk, a
    vanished terminal) gets one note on standard error. Either way the descriptor is pointed at
    /dev/null, so that Python's own flush at exit finds nothing to complain about.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.gone = stream is None  # started with standard output closed (`>&-`)

    def write(self, text: str) -> None:
        if self.gone or self.stream is None:
            return
        try:
            self.stream.write(printable(text))
            self.stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            self._lose(self.stream, exc)

    def _lose(self, stream: TextIO, exc: Exception) -> None:
        self.gone = True
        point_at_devnull(stream)
        if not isinstance(exc, BrokenPipeError | ValueError):
            to_stderr(
                f"owf-run: cannot write to standard output ({exc}); the run goes on without it"
            )


def point_at_devnull(stream: TextIO) -> None:
    try:
        descriptor = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # in memory, or no stream: nothing to flush
        return
    os.dup2(devnull, descriptor)
    os.close(devnull)


def state_dir() -> Path:
    """Where crash logs go: the state directory the environment names (statedir.py's rules;
    a --state-dir option is not known here, as a crash can come before options are read)."""
    from owf_runner.statedir import state_dir as chosen

    return chosen(None, os.environ)


def write_crash_log(text: str, now: datetime.datetime | None = None) -> Path:
    """The traceback, redacted, in a new file only its owner can read.

    In the state directory's ``logs`` (made 0700), else the temporary directory. The file is
    created exclusively and never through a symlink: a name already taken, by a planted link or
    anything else, is skipped for the next one.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    stem = f"owf-run-crash-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"
    data = printable(text).encode("utf-8")
    for folder in (state_dir() / "logs", Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            return _write_new_file(folder, stem, data)
    return Path("(could not write a log file)")


_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _write_new_file(folder: Path, stem: str, data: bytes) -> Path:
    for attempt in range(100):
        path = folder / (f"{stem}.log" if attempt == 0 else f"{stem}-{attempt}.log")
        try:
            descriptor = os.open(path, _CREATE_NEW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        return path
    raise FileExistsError(folder)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("owf-run: %(levelname)s: %(message)s"))
    root = logging.getLogger("owf_runner")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    for name in _QUIET_LOGGERS:
        # The HTTP library's own logger would print URLs and headers.
        logging.getLogger(name).setLevel(logging.WARNING)
