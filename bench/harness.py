"""What every workload shares: the temporary folder, the client key, the emulator processes,
running owf-run and the plain loops, and taking turns between them."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from measure import EmulatorProcess, Finished, FlowStats, command_name, run_measured
from workloads import CLIENT_ID, KEY_ID, ClientKey

BENCH = Path(__file__).resolve().parent
OKTA_RATE = 10  # invocations per second per flow, as Okta allows and the paced emulator enforces

T = TypeVar("T")


class BenchError(Exception):
    """A run that did not do what it should (it failed, or the emulator saw other calls)."""


@dataclass(frozen=True)
class Trial:
    """One run against the emulator, as measured from outside."""

    seconds: float  # from the first invocation's arrival to the process's exit
    span: float  # from the first invocation's arrival to the last's
    throttled: int  # 429 answers
    peak_rss_mb: float
    wall: float  # the whole process: startup, loading, the token fetch, the run


def interleave(runs: Sequence[Callable[[], T]], rounds: int) -> list[list[T]]:
    """Each run `rounds` times, taking turns and rotating who goes first, so a machine that
    slows down or speeds up during the benchmark weighs on every side alike."""
    results: list[list[T]] = [[] for _ in runs]
    for turn in range(rounds):
        for index in _rotated(len(runs), turn):
            results[index].append(runs[index]())
    return results


def _rotated(count: int, turn: int) -> list[int]:
    shift = turn % count
    return [*range(shift, count), *range(shift)]


class Bench:
    """The setup shared by the workloads; emulator processes start on first use."""

    def __init__(self, folder: Path, owf_run: Path) -> None:
        self.folder = folder
        self.owf_run = owf_run
        self.key = ClientKey.create(folder)
        self.env = {**os.environ, "OWF_STATE_DIR": str(folder / "state")}
        self._emulators: dict[int | None, EmulatorProcess] = {}
        self._runs = 0

    def emulator(self, rate_limit: int | None = None) -> EmulatorProcess:
        """The emulator (by default it never throttles; `rate_limit` gets one that does)."""
        if rate_limit not in self._emulators:
            arguments = ["--client-id", CLIENT_ID, "--kid", KEY_ID]
            arguments += ["--public-key", str(self.key.public_jwk)]
            if rate_limit is not None:
                arguments += ["--rate-limit", str(rate_limit)]
            script = BENCH / "emulator_server.py"
            self._emulators[rate_limit] = EmulatorProcess(script, arguments, self._emulator_env())
        return self._emulators[rate_limit]

    def _emulator_env(self) -> dict[str, str]:
        """The emulator is always this checkout's, even when PYTHONPATH points owf-run at
        another version to compare: only the side being measured changes."""
        return {**self.env, "PYTHONPATH": str(BENCH.parent)}

    def prepare_baselines(self) -> None:
        """The plain loops get a bearer token from the (unthrottled) emulator, fetched once,
        before anything is timed."""
        if "BENCH_BEARER_TOKEN" not in self.env:
            self.env["BENCH_BEARER_TOKEN"] = self.key.bearer_token(self.emulator().url)

    def owf(self, *arguments: str) -> list[str]:
        return [str(self.owf_run), *arguments]

    def owf_job(self, job: Path, emulator: EmulatorProcess) -> list[str]:
        return self.owf("run", str(job), "--quiet", "--emulator", emulator.url)

    def baseline(self, *arguments: str) -> list[str]:
        return [sys.executable, str(BENCH / "baselines.py"), *arguments]

    def run(self, argv: Sequence[str]) -> Finished:
        """Run a command from the temporary folder; a non-zero exit is a BenchError."""
        self._runs += 1
        finished = run_measured(argv, self.env, self.folder / f"run-{self._runs}.log")
        if not finished.ok:
            raise BenchError(finished.failure())
        return finished

    def trial(
        self, emulator: EmulatorProcess, flow: str, expected: int, argv: Sequence[str]
    ) -> Trial:
        """Run `argv` against `emulator`, which must see `expected` successful calls of `flow`."""
        emulator.reset()
        finished = self.run(argv)
        stats = emulator.flow(flow)
        _check_calls(stats, expected, argv)
        assert stats is not None  # _check_calls refused None
        seconds = finished.ended_at - stats.first
        throttled = stats.statuses.get(429, 0)
        return Trial(seconds, stats.span, throttled, finished.peak_rss_mb, finished.wall)

    def close(self) -> list[str]:
        """Stop the emulators; one note a process on how much memory it took."""
        notes = []
        for rate_limit, emulator in self._emulators.items():
            kind = "unthrottled" if rate_limit is None else f"{rate_limit}/s"
            notes.append(f"emulator ({kind}) peak RSS: {emulator.peak_rss_mb():.0f} MB")
            emulator.close()
        return notes


def _check_calls(stats: FlowStats | None, expected: int, argv: Sequence[str]) -> None:
    statuses = {} if stats is None else stats.statuses
    succeeded = statuses.get(200, 0)
    others = {code: n for code, n in statuses.items() if code not in (200, 429)}
    if succeeded != expected or others:
        also = f", others: {others}" if others else ""
        raise BenchError(
            f"`{command_name(argv)}`: the emulator answered {succeeded} of {expected} calls "
            f"with 200{also}"
        )
