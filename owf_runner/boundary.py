"""The one error boundary: OwfError → message + exit code; anything else is a bug.

Everything written here passes through the redactor; a bug's traceback goes to
a log file (without local variables) and the user gets its path.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from owf_runner.errors import ExitCode, JobError, OwfError
from owf_runner.redaction import REDACTOR

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
        _error(str(exc))
        return exc.exit_code
    except OwfError as exc:
        _error(f"owf-run: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _error("owf-run: interrupted")
        return ExitCode.INTERRUPTED
    except Terminated:
        _error("owf-run: terminated")
        return ExitCode.TERMINATED
    except Exception:
        log = write_crash_log(traceback.format_exc())
        _error(f"owf-run: internal error (a bug in owf-runner); details in {log}")
        return ExitCode.INTERNAL


def _error(text: str) -> None:
    sys.stderr.write(REDACTOR.redact(text) + "\n")
    sys.stderr.flush()


def state_dir() -> Path:
    configured = os.environ.get("OWF_STATE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "owf-runner"


def write_crash_log(text: str) -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    for folder in (state_dir() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"owf-run-crash-{stamp}-{os.getpid()}.log"
            path.write_text(REDACTOR.redact(text), encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(could not write a log file)")


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR.redact(super().format(record))


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
