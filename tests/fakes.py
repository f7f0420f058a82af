"""Time for tests: a virtual clock the runner and the emulator share, and a way to run a job on it.

``FakeClock`` is a ``Clock``: ``sleep`` never really waits, it records the wait and
returns once virtual time reaches the sleeper's deadline. Time jumps to the earliest
deadline only when nothing else can happen first — no HTTP exchange through
``clock.track(transport)`` is in flight and every other task is waiting — so
concurrent sleepers wait for their own deadlines (they do not add up), and the
emulator (``Emulator(clock=clock.time)``) never sees the time change while it
handles a request: every ``received_at`` is the instant the runner sent it.

``run_job`` runs a job file through the real stages on such a clock, against an
emulator: ``load_plan`` → ``resolve_credentials`` (stand-ins for unset secrets) →
``prepare`` → ``build_client(EmulatorTransport(...))`` → ``build_auths`` → ``execute``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import io
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
import pytest

from owf_runner import commands, runcmd
from owf_runner.credentials import Resolved, build_auths, resolve_credentials
from owf_runner.emulation import prepare, stand_in
from owf_runner.emulator import Emulator, FlowStub
from owf_runner.http import EmulatorTransport, build_client, real_transport
from owf_runner.outcomes import RunResult
from owf_runner.plan import Plan
from owf_runner.report import ConsoleReporter
from owf_runner.runner import Reporter, Session, execute

# What FakeClock.time() reads at fake monotonic 0: 2001-09-09 01:46:40 UTC, long past, so that
# no wall-clock time (an assertion's iat, an HTTP Date) can ever pass for a fake one.
EPOCH = 1_000_000_000


class SteppingClock:
    """Time that moves only when slept through (or set); sleeping never really waits.

    For one sleeper at a time: a sleep moves ``now`` to its deadline at once. With
    ``advance=False`` every sleeper wakes at the instant it slept (to see the waits a
    pacer hands out). Concurrent runs against an emulator want ``FakeClock`` below.
    """

    def __init__(self, start: float = 0.0, advance: bool = True, epoch: float = 1.7e9) -> None:
        self.now = start
        self.advance = advance
        self.epoch = epoch
        self.sleeps: list[float] = []
        self.starts: list[float] = []  # for tests that note when something began

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    async def sleep(self, seconds: float) -> None:
        start = self.now
        self.sleeps.append(seconds)
        if self.advance:
            self.now = max(self.now, start + seconds)
        await asyncio.sleep(0)


class FakeClock:
    """Virtual time: ``monotonic()`` is ``now``, ``time()`` is ``epoch + now``; see the module."""

    def __init__(self, epoch: float = EPOCH) -> None:
        self.epoch = epoch
        self.now = 0.0
        self.sleeps: list[float] = []  # every wait asked for, in order
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # equal deadlines wake in the order they slept
        self._advancer: asyncio.Task[None] | None = None
        self._exchanges = 0
        self._idle: asyncio.Future[None] | None = None  # set when the last exchange ends

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        deadline = self.now + seconds
        if deadline <= self.now:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), woken))
        if self._advancer is None or self._advancer.done():
            self._advancer = loop.create_task(self._advance(), name="fake-clock")
        await woken

    def track(self, transport: httpx2.AsyncBaseTransport) -> httpx2.AsyncBaseTransport:
        """``transport``, with its exchanges holding the clock still while they are in flight."""
        return _Tracked(self, transport)

    async def _advance(self) -> None:
        while True:
            await asyncio.sleep(0)
            while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                return
            if self._exchanges:
                self._idle = asyncio.get_running_loop().create_future()
                await self._idle
            elif _all_others_wait():
                self.now = max(self.now, self._sleepers[0][0])
                while self._sleepers and self._sleepers[0][0] <= self.now:
                    woken = heapq.heappop(self._sleepers)[2]
                    if not woken.done():
                        woken.set_result(None)

    def _exchange_started(self) -> None:
        self._exchanges += 1

    def _exchange_ended(self) -> None:
        self._exchanges -= 1
        if not self._exchanges and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)


def _all_others_wait() -> bool:
    """Is every task but this one suspended on a future that is not done yet?"""
    me = asyncio.current_task()
    for task in asyncio.all_tasks():
        # CPython keeps the future a suspended task waits on in _fut_waiter (None: runnable).
        waiter = task._fut_waiter  # type: ignore[attr-defined]
        if task is not me and (waiter is None or waiter.done()):
            return False
    return True


class _Tracked(httpx2.AsyncBaseTransport):
    """Counts an exchange as in flight until its whole answer is read (or it failed)."""

    def __init__(self, clock: FakeClock, inner: httpx2.AsyncBaseTransport) -> None:
        self._clock = clock
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._clock._exchange_started()
        try:
            response = await self._inner.handle_async_request(request)
            try:
                raw = b"".join([part async for part in response.stream])  # type: ignore[union-attr]
            finally:
                await response.aclose()
        finally:
            self._clock._exchange_ended()
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx2.ByteStream(raw),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def run_commands_on(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """``owf-run run`` (the ``cli`` fixture) on ``clock``, its exchanges tracked."""
    monkeypatch.setattr(runcmd, "run", functools.partial(runcmd.run, clock=clock))
    monkeypatch.setattr(
        runcmd, "real_transport", lambda *bundles: clock.track(real_transport(*bundles))
    )


# -- a job through the real stages --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    result: RunResult
    out: str  # what the console reporter printed: progress lines, then the summary

    @property
    def code(self) -> int:
        return int(self.result.exit_code)

    def waits(self, failure_class: str) -> list[float]:
        """The waits announced in `retrying in N.Ns` lines for one failure class."""
        marker = f"({failure_class}: "
        return [
            float(line.rsplit("retrying in ", 1)[1].removesuffix("s"))
            for line in self.out.splitlines()
            if marker in line and "retrying in " in line
        ]


def run_job(
    job: Path,
    emulator: Emulator,
    clock: FakeClock,
    reporter: Reporter | None = None,
    *,
    stubs: Mapping[str, FlowStub] | None = None,
    variables: Mapping[str, Any] | None = None,
    verbose: bool = False,
    session: Session | None = None,
) -> Run:
    """Run ``job`` against ``emulator`` on ``clock``; the emulator must be running.

    Credentials whose secret is not set get stand-ins registered with the emulator (as a
    rehearsal does). ``stubs`` are set after the job's own stub file, and follow the
    job's security for their flow unless they name one. ``session`` (a stop, a log, what
    it resumes) is handed to ``execute`` as is; None: a fresh run.
    """
    plan = commands.load_plan(job, variables)
    resolved = resolve_credentials(plan, stand_in)
    prepare(emulator, plan, resolved, None)
    for flow_id, stub in (stubs or {}).items():
        prepared = emulator.stub(flow_id)
        if stub.security is None and prepared is not None:
            stub = dataclasses.replace(stub, security=prepared.security)
        emulator.set_stub(flow_id, stub)
    out = io.StringIO()
    console = ConsoleReporter(stream=out, verbose=verbose)
    result = asyncio.run(
        _execute(plan, resolved, emulator, reporter or console, clock, session=session)
    )
    console.summary(result)
    return Run(result, out.getvalue())


async def _execute(
    plan: Plan,
    resolved: Mapping[str, Resolved],
    emulator: Emulator,
    reporter: Reporter,
    clock: FakeClock,
    *,
    session: Session | None = None,
) -> RunResult:
    transport = EmulatorTransport(emulator.base_url, clock.track(real_transport()))
    async with build_client(transport, redirected=True) as client:
        auths = build_auths(plan, resolved, client, clock)
        return await execute(plan, client, auths, reporter, clock, session)
