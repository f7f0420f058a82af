"""Stopping a run cleanly on SIGTERM or SIGINT (DESIGN §6).

A stop starts nothing new; requests already in flight get a grace period to finish, then
are cancelled — their outcome is unknown, and the journal records them `unknown` (a crash
before that leaves them `sending`, which a resume treats the same). Waits
the runner chose (backoff, pacing) end at once: what waits has not been sent.
A second signal cancels at once. The runner tells such a cancel from any other by
``Stop.requested`` and reports what it interrupted (runner.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from owf_runner.clock import Clock
from owf_runner.errors import ExitCode

STOP_SIGNALS = {signal.SIGTERM: ExitCode.TERMINATED, signal.SIGINT: ExitCode.INTERRUPTED}


class Stop:
    """Whether the run was asked to stop, by which signal, and what to cancel: the runner's
    own waits at once, what is in flight once the grace period is over."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.requested = False
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._waiting: set[asyncio.Task[Any]] = set()

    @property
    def exit_code(self) -> ExitCode | None:
        return None if self.signal is None else STOP_SIGNALS[self.signal]

    def request(self, signum: signal.Signals | None = None) -> None:
        self.signal = self.signal or signum
        self.requested = True
        for task in self._waiting:  # a backoff or a turn: nothing of theirs has left
            task.cancel()

    @contextlib.contextmanager
    def cancellable(self, task: asyncio.Task[Any]) -> Iterator[None]:
        """``task`` is cancelled if the grace period ends while it runs."""
        self._in_flight.add(task)
        try:
            yield
        finally:
            self._in_flight.discard(task)

    def cancel_in_flight(self) -> None:
        for task in self._in_flight:
            task.cancel()

    def clock(self, clock: Clock) -> Clock:
        return _StoppableClock(clock, self)

    async def wait(self, clock: Clock, seconds: float) -> None:
        """``clock.sleep(seconds)``, cancelled by a stop (the canceller handles the cancel)."""
        if self.requested:  # a wait that would begin now is cut short at once, as one under way
            raise asyncio.CancelledError
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - sleeps happen in tasks
        self._waiting.add(task)
        try:
            await clock.sleep(seconds)
        finally:
            self._waiting.discard(task)


class _StoppableClock:
    """``clock``, whose sleeps a stop cuts short (as a cancel the runner tells apart)."""

    def __init__(self, clock: Clock, stop: Stop) -> None:
        self._clock, self._stop = clock, stop

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def time(self) -> float:
        return self._clock.time()

    async def sleep(self, seconds: float) -> None:
        await self._stop.wait(self._clock, seconds)


@contextlib.contextmanager
def on_signals(stop: Stop, grace: float) -> Iterator[None]:
    """While inside: SIGTERM/SIGINT request ``stop``; ``grace`` seconds later (or at a second
    signal) whatever is still in flight is cancelled. Real time: a signal is a real event."""
    loop = asyncio.get_running_loop()

    def received(signum: signal.Signals) -> None:
        if stop.requested:
            stop.cancel_in_flight()
            return
        stop.request(signum)
        loop.call_later(grace, stop.cancel_in_flight)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, received, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
