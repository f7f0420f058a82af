"""What the run journal costs a foreach: µs per item, synchronous=FULL against NORMAL.

Writes ITEMS invocations the way the runner does at concurrency 50 — 50 tasks each queue their
`sending` row and await ``durable()`` (one shared commit), then queue their `finished` row — on
a temporary state directory, and prints µs per item and the process's peak RSS. Not part of the
test suite:

    .venv/bin/python bench/journal_cost.py [--items N] [--concurrency N]

The budget: the runner does ~1,900 items/s at concurrency 50, so ≤10 % of that is ~50 µs/item.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from owf_runner.journal import ItemRecord, Journal, RunRecord

RUN_ID = "20261129T140000Z-bench0"
BODY = {"result": "ok", "user": {"id": "00u1abcdEFGH", "login": "someone@example.com"}}


async def _invoke(journal: Journal | None, index: int) -> None:
    if journal is None:  # the baseline: the same tasks, no journal
        await asyncio.sleep(0)
        return
    journal.sending(RUN_ID, "users", index, f"user-{index}@example.com", f"{index:064x}")
    await journal.durable()
    # (the request would go out here)
    journal.finished(
        ItemRecord(
            run_id=RUN_ID,
            step_id="users",
            index=index,
            status="succeeded",
            attempts=1,
            label=f"user-{index}@example.com",
            http_status=200,
            outputs={"id": index},
            body=BODY,
            execution_id=f"ex-{index}",
        )
    )


async def _write(journal: Journal | None, items: int, concurrency: int) -> None:
    for start in range(0, items, concurrency):
        stop = min(start + concurrency, items)
        await asyncio.gather(*(_invoke(journal, index) for index in range(start, stop)))
    if journal is not None:
        journal.flush()


def baseline(items: int, concurrency: int) -> float:
    """µs per item of the tasks alone, to subtract."""
    started = time.perf_counter()
    asyncio.run(_write(None, items, concurrency))
    return (time.perf_counter() - started) / items * 1e6


@dataclass(frozen=True)
class Cost:
    wall: float  # µs per item
    cpu: float  # µs per item (wall less CPU is mostly waiting for fsync)
    commit: float  # ms per commit, on average
    commits: int


def measure(synchronous: str, items: int, concurrency: int) -> Cost:
    with tempfile.TemporaryDirectory() as folder, Journal.open(Path(folder)) as journal:
        journal._db.execute(f"PRAGMA synchronous = {synchronous}")  # the one knob compared
        journal.begin_run(
            RunRecord(
                id=RUN_ID,
                job_path="/bench.yaml",
                job_sha256="0" * 64,
                job_name="bench",
                started_at="2026-11-29T14:00:00Z",
                status="running",
            )
        )
        committing = _timed(journal)
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(_write(journal, items, concurrency))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        commits = journal.commits - 1
        return Cost(wall / items * 1e6, cpu / items * 1e6, sum(committing) / commits * 1e3, commits)


def _timed(journal: Journal) -> list[float]:
    """Seconds spent in each commit, as the journal makes them."""
    spent: list[float] = []
    flush = journal.flush

    def timed_flush() -> None:
        started = time.perf_counter()
        flush()
        spent.append(time.perf_counter() - started)

    journal.flush = timed_flush  # type: ignore[method-assign]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="the best of N rounds is shown")
    args = parser.parse_args()
    tasks = min(baseline(args.items, args.concurrency) for _ in range(args.rounds))
    print(f"{'no journal':<18}  {tasks:6.1f} µs/item (the tasks alone)")
    for synchronous in ("FULL", "NORMAL"):
        rounds = [measure(synchronous, args.items, args.concurrency) for _ in range(args.rounds)]
        best = min(rounds, key=lambda cost: cost.wall)
        print(
            f"synchronous={synchronous:<6}  {best.wall:6.1f} µs/item"
            f" ({best.wall - tasks:5.1f} the journal's, {best.cpu:5.1f} CPU);"
            f" {best.commits:,} commits of {best.commit:.2f} ms on average"
        )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {peak_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
