"""Processes measured from outside: wall time, exit time, peak RSS; the emulator's process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RUN_TIMEOUT = 900.0  # seconds; today's 5,000-step `plan` takes about a minute
OUTPUT_TAIL = 600  # characters of a failed command's output shown under the table


@dataclass(frozen=True)
class Finished:
    """One finished child process, as the operating system accounted for it."""

    argv: tuple[str, ...]
    exit_code: int
    wall: float  # seconds from start to reaped
    ended_at: float  # epoch seconds when it was reaped (comparable with the emulator's clock)
    peak_rss_mb: float  # this child's own peak, not its children's
    cpu: float  # seconds of CPU, user and system, this child's own
    output: str  # the end of what it printed, for a failure's explanation

    def failure(self) -> str:
        output = self.output.strip()[-OUTPUT_TAIL:]
        return f"`{command_name(self.argv)}` exited {self.exit_code}: {output}"


def command_name(argv: Sequence[str]) -> str:
    """The command without the temporary folder's long paths: `owf-run run chain-1000.yaml`."""
    return " ".join(Path(word).name if "/" in word else word for word in argv[:3])


def run_measured(argv: Sequence[str], env: Mapping[str, str], log: Path) -> Finished:
    """Run `argv` to its end; os.wait4 gives this one child's peak RSS and CPU time
    (RUSAGE_CHILDREN would give the largest peak of every child so far, and their sum)."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env
        )
        watchdog = threading.Timer(RUN_TIMEOUT, process.kill)
        watchdog.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall, ended_at = time.perf_counter() - started, time.time()
        watchdog.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap it again
    text = log.read_text(encoding="utf-8", errors="replace")
    rss_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    cpu = usage.ru_utime + usage.ru_stime
    return Finished(tuple(argv), process.returncode, wall, ended_at, rss_mb, cpu, text)


@dataclass(frozen=True)
class FlowStats:
    """What the emulator saw of one flow during a run."""

    count: int
    statuses: dict[int, int]
    first: float
    last: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowStats:
        statuses = {int(code): n for code, n in data["statuses"].items()}
        return cls(data["count"], statuses, data["first"], data["last"])

    @property
    def span(self) -> float:
        """From the first invocation's arrival to the last's."""
        return self.last - self.first


class EmulatorProcess:
    """bench/emulator_server.py in a child process, driven over its stdin/stdout."""

    def __init__(self, script: Path, arguments: Sequence[str], env: Mapping[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(script), *arguments],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.url: str = self._read()["url"]

    def reset(self) -> None:
        self._ask("reset")

    def flow(self, name: str) -> FlowStats | None:
        """What `name` received since the last reset (None: not a single call)."""
        data = self._ask("stats")["flows"].get(name)
        return None if data is None else FlowStats.from_json(data)

    def peak_rss_mb(self) -> float:
        return float(self._ask("stats")["peak_rss_mb"])

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # end of input stops the server
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _ask(self, command: str) -> dict[str, Any]:
        stdin = self._pipe(self._process.stdin)
        stdin.write(command + "\n")
        stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        line = self._pipe(self._process.stdout).readline()
        if not line:
            raise RuntimeError(f"the emulator process ended (exit {self._process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    @staticmethod
    def _pipe(stream: IO[str] | None) -> IO[str]:
        assert stream is not None  # opened with PIPE
        return stream
