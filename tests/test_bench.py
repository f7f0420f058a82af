"""bench/run.py runs end to end (timings are never asserted: they are what it measures), and
the emulator options it relies on: a bounded call record, an observer, a deep listen backlog."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from owf_runner.emulator import Emulator, FlowStub, RecordedCall
from owf_runner.emulator._http import Server

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"
HEADER = re.compile(r"^workload +owf-run +baseline +ratio +target +result$", re.MULTILINE)


def _bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quick_bench_prints_the_table() -> None:
    # (a) runs owf-run and both plain loops against the emulator process, (c) the throttling
    # emulator, (f) bare processes: every moving part, in a few seconds.
    done = _bench("--quick", "--only", "a,c,f")

    assert done.returncode == 0, done.stdout + done.stderr
    assert HEADER.search(done.stdout)
    workloads = re.findall(r"^(\(\w\) [^\n]*?)  ", done.stdout, re.MULTILINE)
    assert workloads == [
        "(a) 20 chained steps vs sync loop",
        "(a) 20 chained steps vs asyncio loop",
        "(a) 20 chained steps, whole process vs sync loop",
        "(a) 20 chained steps, journal vs none",
        "(c) 5 items at the default 10/s: first to last call",
        "(c) 5 items at the default 10/s: 429s",
        "(f) owf-run --help vs bare python",
    ]
    assert "ERROR" not in done.stdout


def test_tiny_bench_measures_the_journal_and_a_resume() -> None:
    # (d) runs owf-run, owf-run without the journal's records (bench/no_journal.py: it must
    # leave no item in its journal, or the row is an ERROR) and the plain loop; (g) a failed
    # run, then --resume against a fresh run.
    done = _bench("--scale", "0.002", "--rounds", "1", "--big-rounds", "1", "--only", "d,g")

    assert done.returncode == 0, done.stdout + done.stderr
    workloads = re.findall(r"^(\(\w\) [^\n]*?)  ", done.stdout, re.MULTILINE)
    assert workloads == [
        "(d) 200 CSV rows x50: items/s vs asyncio loop",
        "(d) 200 CSV rows x50: peak RSS",
        "(d) 200 CSV rows x50: items/s, journal vs none",
        "(d) 200 CSV rows x50: CPU per item, journal vs none",
        "(d) 200 CSV rows x50: peak RSS, journal vs none",
        "(g) --resume of 200 rows, 10 left: whole process vs a fresh run of those",
        "(g) --resume of 200 rows, 10 left: items skipped/s",
        "(g) --resume of 200 rows, 10 left: peak RSS vs the fresh run",
    ]
    assert "ERROR" not in done.stdout


def test_bench_refuses_an_unknown_workload() -> None:
    done = _bench("--only", "a,x")

    assert done.returncode == 2
    assert done.stderr.endswith("run.py: error: --only: unknown x (known: a, b, c, d, e, f, g)\n")


def _invoke_echo(emulator: Emulator, times: int) -> None:
    emulator.set_stub("echo", FlowStub(security="none"))
    with emulator.running() as base_url, httpx2.Client() as client:
        for n in range(times):
            client.post(f"{base_url}/api/flo/echo/invoke", json={"n": n})


def test_emulator_keeps_only_the_latest_calls_when_bounded() -> None:
    emulator = Emulator(keep_calls=2)

    _invoke_echo(emulator, 3)

    assert [call.body for call in emulator.calls] == [b'{"n":1}', b'{"n":2}']


def test_emulator_observer_sees_every_call_even_unrecorded() -> None:
    seen: list[RecordedCall] = []
    emulator = Emulator(keep_calls=0, on_call=seen.append)

    _invoke_echo(emulator, 3)

    assert emulator.calls == []
    assert [(call.flow_id, call.status, call.body) for call in seen] == [
        ("echo", 200, b'{"n":0}'),
        ("echo", 200, b'{"n":1}'),
        ("echo", 200, b'{"n":2}'),
    ]


def test_emulator_refuses_a_negative_bound() -> None:
    with pytest.raises(ValueError, match=r"^keep_calls must be None or at least 0, not -1$"):
        Emulator(keep_calls=-1)


def test_emulator_listen_backlog_takes_a_burst_of_connections() -> None:
    # socketserver's default (5) dropped connections when 50 workers connected at once.
    assert Server.request_queue_size >= 100
