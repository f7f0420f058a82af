"""What every workload shares: the temporary folder, the client key, the emulator processes,
running owf-run and the plain loops, and taking turns between them."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from measure import EmulatorProcess, Finished, FlowStats, command_name, run_measured
from workloads import CLIENT_ID, KEY_ID, ClientKey

BENCH = Path(__file__).resolve().parent
OKTA_RATE = 10  # invocations per second per flow, as Okta allows and the paced emulator enforces
REFUSED = 400  # what a failing emulator answers (emulator_server.py's REFUSED)

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
    cpu: float  # seconds of CPU the whole process took, user and system
    journaled: int  # items the run's journal holds as succeeded (0: none, or no journal)


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


@dataclass(frozen=True)
class EmulatorKind:
    """Which emulator: one that never throttles nor fails, or one that does."""

    rate_limit: int | None = None  # invocations/s per flow, then 429
    fail_after: int | None = None  # `echo` answers REFUSED once it answered this many calls

    def arguments(self) -> list[str]:
        arguments = [] if self.rate_limit is None else ["--rate-limit", str(self.rate_limit)]
        if self.fail_after is not None:
            arguments += ["--fail-after", str(self.fail_after)]
        return arguments

    def __str__(self) -> str:
        kinds = [] if self.rate_limit is None else [f"{self.rate_limit}/s"]
        kinds += [] if self.fail_after is None else [f"failing after {self.fail_after:,} calls"]
        return ", ".join(kinds) or "unthrottled"


UNTHROTTLED = EmulatorKind()


class Bench:
    """The setup shared by the workloads; emulator processes start on first use.

    Every owf-run gets a state directory of its own (OWF_STATE_DIR), new and inside the
    temporary folder: runs never pile up in one journal nor share a lock, and the user's own
    state directory is never touched."""

    def __init__(self, folder: Path, owf_run: Path) -> None:
        self.folder = folder
        self.owf_run = owf_run
        self.key = ClientKey.create(folder)
        # A backstop: run() gives every command a state directory of its own.
        self.env = {**os.environ, "OWF_STATE_DIR": str(folder / "state-shared")}
        self._emulators: dict[EmulatorKind, EmulatorProcess] = {}
        self._runs = 0
        self._states = itertools.count(1)

    def emulator(self, kind: EmulatorKind = UNTHROTTLED) -> EmulatorProcess:
        """The emulator of this kind (by default it never throttles nor fails)."""
        if kind not in self._emulators:
            arguments = ["--client-id", CLIENT_ID, "--kid", KEY_ID]
            arguments += ["--public-key", str(self.key.public_jwk), *kind.arguments()]
            script = BENCH / "emulator_server.py"
            self._emulators[kind] = EmulatorProcess(script, arguments, self._emulator_env())
        return self._emulators[kind]

    def new_state(self) -> Path:
        """A state directory no run has used (owf-run creates it)."""
        return self.folder / f"state-{next(self._states)}"

    def copy_state(self, state: Path) -> Path:
        """A new state directory holding what `state` holds (its journal, its locks)."""
        copy = self.new_state()
        shutil.copytree(state, copy)
        return copy

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

    def owf_job(
        self, job: Path, emulator: EmulatorProcess, *options: str, journal: bool = True
    ) -> list[str]:
        """`owf-run run JOB --quiet --emulator URL`; without the journal's records when
        `journal` is false (bench/no_journal.py, this Python's owf_runner)."""
        arguments = ["run", str(job), "--quiet", "--emulator", emulator.url, *options]
        if journal:
            return self.owf(*arguments)
        return [sys.executable, str(BENCH / "no_journal.py"), *arguments]

    def baseline(self, *arguments: str) -> list[str]:
        return [sys.executable, str(BENCH / "baselines.py"), *arguments]

    def run(self, argv: Sequence[str], state: Path | None = None, exit_code: int = 0) -> Finished:
        """Run a command with `state` as its state directory (default: a new one, removed
        after); an exit other than `exit_code` is a BenchError."""
        self._runs += 1
        fresh = state is None
        state = self.new_state() if state is None else state
        env = {**self.env, "OWF_STATE_DIR": str(state)}
        try:
            finished = run_measured(argv, env, self.folder / f"run-{self._runs}.log")
        finally:
            if fresh:
                shutil.rmtree(state, ignore_errors=True)
        if finished.exit_code != exit_code:
            raise BenchError(finished.failure())
        return finished

    def trial(
        self,
        emulator: EmulatorProcess,
        flow: str,
        expected: int,
        argv: Sequence[str],
        state: Path | None = None,
    ) -> Trial:
        """Run `argv` against `emulator`, which must see `expected` successful calls of `flow`.
        The run's state directory, `state` or a new one, is removed after: the trial is its
        last user."""
        emulator.reset()
        state = self.new_state() if state is None else state
        try:
            finished = self.run(argv, state)
            journaled = journaled_items(state)
        finally:
            shutil.rmtree(state, ignore_errors=True)
        stats = emulator.flow(flow)
        _check_calls(stats, expected, argv)
        assert stats is not None  # _check_calls refused None
        seconds = finished.ended_at - stats.first
        throttled = stats.statuses.get(429, 0)
        rss, wall, cpu = finished.peak_rss_mb, finished.wall, finished.cpu
        return Trial(seconds, stats.span, throttled, rss, wall, cpu, journaled)

    def close(self) -> list[str]:
        """Stop the emulators; one note a process on how much memory it took."""
        notes = []
        for kind, emulator in self._emulators.items():
            notes.append(f"emulator ({kind}) peak RSS: {emulator.peak_rss_mb():.0f} MB")
            emulator.close()
        return notes


JOURNAL = "runs.sqlite3"
_SUCCEEDED_ITEMS = "SELECT count(*) FROM items WHERE status = 'succeeded'"


def journaled_items(state: Path) -> int:
    """Items `state`'s journal holds as succeeded (0: no journal). Read with sqlite3, not
    owf_runner, so that the bench runs against a version of owf-run that has none."""
    path = state / JOURNAL
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            count: int = db.execute(_SUCCEEDED_ITEMS).fetchone()[0]
    except sqlite3.Error as error:
        raise BenchError(f"{path.name}: cannot count its items: {error}") from error
    return count


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
