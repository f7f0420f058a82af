"""The run journal: what is on disk, when it is committed, and what it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from owf_runner.errors import ExitCode
from owf_runner.journal import (
    BATCH,
    BODY_LIMIT,
    FILENAME,
    HEAD_CHARS,
    MAX_PENDING,
    STEP_INVOCATION,
    ItemRecord,
    Journal,
    JournalError,
    RunRecord,
    StepRecord,
    new_run_id,
)
from owf_runner.redaction import MASK, REDACTOR
from tests.conftest import encoded_forms

JOB = "/jobs/nightly.yaml"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def journal(state: Path) -> Iterator[Journal]:
    with Journal.open(state) as opened:
        yield opened


def a_run(run_id: str = "20261129T140000Z-aaaaaa", job_path: str = JOB, **kw: object) -> RunRecord:
    fields: dict[str, object] = {
        "id": run_id,
        "job_path": job_path,
        "job_sha256": "ab" * 32,
        "job_name": "nightly",
        "started_at": "2026-11-29T14:00:00Z",
        "status": "running",
    }
    return RunRecord(**{**fields, **kw})  # type: ignore[arg-type]


def item(index: int, status: str = "succeeded", **kw: object) -> ItemRecord:
    fields: dict[str, object] = {"run_id": "20261129T140000Z-aaaaaa", "step_id": "users"}
    return ItemRecord(**{**fields, "index": index, "status": status, **kw})  # type: ignore[arg-type]


def peek(state: Path, sql: str) -> list[tuple[object, ...]]:
    """What another process (a resume after a crash) reads this very moment."""
    db = sqlite3.connect(state / FILENAME, isolation_level=None)  # a write commits at once
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def hold_write_lock(state: Path) -> sqlite3.Connection:
    """Another process in the middle of a write."""
    holder = sqlite3.connect(state / FILENAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


# -- opening ------------------------------------------------------------------------------------


def test_open_creates_a_private_directory_and_file(state: Path) -> None:
    Journal.open(state).close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / FILENAME).stat().st_mode) == 0o600


def test_open_again_keeps_what_was_written(state: Path) -> None:
    with Journal.open(state) as journal:
        journal.begin_run(a_run())
    with Journal.open(state) as journal:
        run = journal.run("20261129T140000Z-aaaaaa")
    assert run is not None
    assert run.job_name == "nightly"


def test_the_journal_is_in_wal_mode(state: Path, journal: Journal) -> None:
    assert peek(state, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize(("fsync", "level"), [(False, 1), (True, 2)], ids=["normal", "full"])
def test_fsync_asks_sqlite_for_a_full_sync_of_every_commit(
    state: Path, fsync: bool, level: int
) -> None:
    with Journal.open(state, fsync=fsync) as journal:
        # The setting is per connection: read it on the journal's own.
        assert journal._db.execute("PRAGMA synchronous").fetchone() == (level,)


def test_a_newer_schema_is_refused(state: Path) -> None:
    Journal.open(state).close()
    peek(state, "PRAGMA user_version = 99")
    with pytest.raises(JournalError) as caught:
        Journal.open(state)
    assert caught.value.exit_code == ExitCode.INVALID_JOB
    assert str(caught.value) == (
        f"{state / FILENAME}: written by a newer owf-run (journal schema 99, this one knows up"
        " to 2): upgrade owf-run or pass another --state-dir (or OWF_STATE_DIR)"
    )


def test_a_schema_1_journal_is_brought_up_to_date_and_keeps_its_runs(state: Path) -> None:
    with Journal.open(state) as journal:
        journal.begin_run(a_run())
    peek(state, "ALTER TABLE runs DROP COLUMN vars_sha256")  # as schema 1 wrote it
    peek(state, "PRAGMA user_version = 1")

    with Journal.open(state) as journal:
        kept = journal.run(a_run().id)
        journal.begin_run(a_run("20261129T150000Z-bbbbbb", vars_sha256="ab" * 32))
        added = journal.run("20261129T150000Z-bbbbbb")

    assert peek(state, "PRAGMA user_version") == [(2,)]
    assert kept is not None
    assert kept.vars_sha256 is None
    assert added is not None
    assert added.vars_sha256 == "ab" * 32


def a_text_file(path: Path) -> None:
    path.write_bytes(b"this is not a database, it is a text file\n" * 100)


def another_programs_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.close()


@pytest.mark.parametrize("write", [a_text_file, another_programs_database])
def test_a_file_that_is_not_a_journal_is_refused(
    state: Path, write: Callable[[Path], None]
) -> None:
    state.mkdir()
    write(state / FILENAME)
    with pytest.raises(JournalError) as caught:
        Journal.open(state)
    assert caught.value.exit_code == ExitCode.INVALID_JOB
    assert str(caught.value) == (
        f"{state / FILENAME}: not a run journal (another database, or damaged): move it aside"
        " or pass another --state-dir (or OWF_STATE_DIR)"
    )


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(JournalError) as caught:
        Journal.open(tmp_path / "state")
    state = tmp_path / "state"
    assert str(caught.value) == (
        f"{state / FILENAME}: cannot write the run journal ({state} is not a directory): fix the"
        " permissions or pass another --state-dir (or OWF_STATE_DIR)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(JournalError) as caught:
        Journal.open(locked / "state")
    assert caught.value.exit_code == ExitCode.INVALID_JOB
    assert str(caught.value) == (
        f"{locked / 'state' / FILENAME}: cannot write the run journal (Permission denied): fix"
        " the permissions or pass another --state-dir (or OWF_STATE_DIR)"
    )


def test_a_database_locked_by_another_process_is_a_clear_error(state: Path) -> None:
    Journal.open(state).close()
    holder = hold_write_lock(state)
    with pytest.raises(JournalError) as caught:
        Journal.open(state, busy_timeout=0)
    holder.close()
    assert str(caught.value) == (
        f"{state / FILENAME}: the run journal stayed locked by another owf-run: try again later"
    )


# -- writing a run ------------------------------------------------------------------------------


def test_a_run_from_start_to_finish(journal: Journal) -> None:
    run_id = "20261129T140000Z-aaaaaa"
    journal.begin_run(a_run())
    journal.step_started(run_id, "login", 0)
    journal.sending(run_id, "login", STEP_INVOCATION, None, None)
    journal.finished(item(STEP_INVOCATION, step_id="login", http_status=200, attempts=1))
    journal.step_finished(
        StepRecord(
            run_id=run_id,
            step_id="login",
            position=0,
            status="succeeded",
            attempts=1,
            seconds=0.5,
            outputs={"token_id": 7},
            response={"status": 200, "headers": {}, "body": {}},
        )
    )
    journal.step_started(run_id, "users", 1)
    for index in range(4):
        journal.sending(run_id, "users", index, f"user-{index}", f"digest-{index}")
    journal.finished(item(0, label="user-0", outputs={"id": "u0"}, execution_id="ex-0"))
    journal.finished(item(1, "failed", label="user-1", http_status=500, error="HTTP 500"))
    journal.finished(item(3, "unknown", label="user-3", error="timed out"))  # may have run
    journal.step_finished(
        StepRecord(
            run_id=run_id,
            step_id="users",
            position=1,
            status="failed",
            items=3,
            failed_items=1,
            error="1 of 3 items failed",
        )
    )
    journal.finish_run(run_id, "failed", 1, "2026-11-29T14:01:05Z")

    run = journal.run(run_id)
    assert run == a_run(
        status="failed",
        exit_code=1,
        finished_at="2026-11-29T14:01:05Z",
        steps_succeeded=1,
        steps_failed=1,
        items_succeeded=1,  # the foreach's; the plain step's invocation counts as a step
        items_failed=1,
        items_unknown=2,  # one in flight, one that timed out
    )
    assert [(s.step_id, s.status, s.outputs) for s in journal.steps(run_id)] == [
        ("login", "succeeded", {"token_id": 7}),
        ("users", "failed", {}),
    ]
    assert journal.steps(run_id)[0].response == {"status": 200, "headers": {}, "body": {}}
    assert journal.item(run_id, "users", 2) == item(
        2, "sending", label="user-2", digest="digest-2", attempts=1
    )
    assert journal.item(run_id, "users", 0) == item(
        0, label="user-0", outputs={"id": "u0"}, execution_id="ex-0"
    )
    assert journal.item(run_id, "users", 9) is None


def test_a_resume_reopens_the_run_and_overwrites_what_it_resends(journal: Journal) -> None:
    run_id = "20261129T140000Z-aaaaaa"
    journal.begin_run(a_run())
    journal.sending(run_id, "users", 0, "user-0", "d0")
    journal.finished(item(0, "failed", label="user-0", digest="d0", http_status=500, error="x"))
    journal.finish_run(run_id, "failed", 1, "2026-11-29T14:01:00Z")

    journal.reopen_run(run_id)
    reopened = journal.run(run_id)
    assert reopened is not None
    assert (reopened.status, reopened.sessions, reopened.finished_at, reopened.exit_code) == (
        "running",
        2,
        None,
        None,
    )
    journal.sending(run_id, "users", 0, "user-0", "d0")
    assert journal.item(run_id, "users", 0) == item(
        0, "sending", label="user-0", digest="d0", attempts=1
    )
    journal.finished(item(0, label="user-0", digest="d0", attempts=1, http_status=200))
    assert [i.status for i in journal.items(run_id, "users")] == ["succeeded"]


def test_a_step_started_again_keeps_one_row(journal: Journal) -> None:
    run_id = "20261129T140000Z-aaaaaa"
    journal.begin_run(a_run())
    journal.step_finished(StepRecord(run_id=run_id, step_id="users", position=1, status="failed"))
    journal.step_started(run_id, "users", 1)
    assert [(s.step_id, s.status) for s in journal.steps(run_id)] == [("users", "running")]


# -- durability ---------------------------------------------------------------------------------


async def _send(journal: Journal, index: int) -> None:
    journal.sending("20261129T140000Z-aaaaaa", "users", index, f"user-{index}", None)
    await journal.durable()


@pytest.mark.parametrize(
    ("fsync", "shared", "commits"),
    [(True, True, 1), (False, True, 1), (True, False, 1), (False, False, 50)],
    ids=["fsync-shared", "shared", "fsync-alone", "alone"],
)
def test_concurrent_senders_share_a_commit_unless_each_is_alone_and_cheap(
    state: Path, fsync: bool, shared: bool, commits: int
) -> None:
    """The senders of one tick share one commit; a sender alone (a chain of steps) commits
    at once when the commit does not sync, sparing it an event-loop round trip."""
    with Journal.open(state, fsync=fsync) as journal:
        journal.begin_run(a_run())
        before = journal.commits

        async def send(index: int) -> None:
            journal.sending("20261129T140000Z-aaaaaa", "users", index, None, None)
            await journal.durable(shared=shared)

        async def main() -> None:
            await asyncio.gather(*(send(index) for index in range(50)))

        asyncio.run(main())
        assert journal.commits == before + commits


class Turns:
    """Counts event-loop turns: a task that yields once per turn, until stopped."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0)  # one turn
            self.count += 1

    def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()


def commit_turns(journal: Journal, joining: list[int]) -> tuple[list[int], int]:
    """``joining[t]`` senders start at turn t; the turn at which each one went on (the turn
    after its commit: a waiter resumes a turn after it is woken), and how many commits."""
    before = journal.commits
    turns = Turns()
    returned: list[int] = []

    async def send(turn: int, index: int) -> None:
        for _ in range(turn):
            await asyncio.sleep(0)
        journal.sending("20261129T140000Z-aaaaaa", "users", index, None, None)
        await journal.durable()
        returned.append(turns.count)

    async def main() -> None:
        turns.start()
        senders = [(turn, n) for turn, count in enumerate(joining) for n in range(count)]
        await asyncio.gather(*(send(turn, index) for index, (turn, _) in enumerate(senders)))
        turns.stop()

    asyncio.run(main())
    return returned, journal.commits - before


def test_a_sender_alone_in_its_turn_commits_at_the_next_turn(journal: Journal) -> None:
    journal.begin_run(a_run())
    assert commit_turns(journal, [1]) == ([2], 1)


def test_senders_joining_turn_after_turn_share_one_commit(journal: Journal) -> None:
    """Answers arriving faster than they are handled: the commit waits while more join."""
    journal.begin_run(a_run())
    returned, commits = commit_turns(journal, [2, 1, 1, 1, 1])
    assert commits == 1
    assert returned == [7] * 6  # committed a turn after the last joined, nobody new


def test_a_growing_batch_commits_once_it_holds_batch_senders(journal: Journal) -> None:
    journal.begin_run(a_run())
    returned, commits = commit_turns(journal, [2] + [1] * 20)
    assert returned[:BATCH] == [BATCH] * BATCH  # the first did not wait for all 22
    assert commits == 1 + 22 - BATCH  # the rest come one a turn: each alone, each at once


def test_a_full_batch_commits_without_waiting(journal: Journal) -> None:
    journal.begin_run(a_run())
    returned, commits = commit_turns(journal, [BATCH, 1, 1, 1])
    assert returned[:BATCH] == [2] * BATCH
    assert commits == 1 + 3  # the three after come one a turn: each alone, each at once


def test_sending_rows_are_on_disk_when_durable_returns(state: Path, journal: Journal) -> None:
    journal.begin_run(a_run())
    seen: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(_send(journal, index) for index in range(5)))
        seen.append(peek(state, "SELECT count(*) FROM items WHERE status = 'sending'")[0][0])

    asyncio.run(main())
    assert seen == [5]


def test_durable_with_nothing_queued_returns_at_once(journal: Journal) -> None:
    before = journal.commits
    asyncio.run(journal.durable())
    assert journal.commits == before


def test_finished_rows_ride_along_with_the_next_commit(state: Path, journal: Journal) -> None:
    journal.begin_run(a_run())
    journal.finished(item(0))
    assert peek(state, "SELECT count(*) FROM items") == [(0,)]
    asyncio.run(_send(journal, 1))
    assert peek(state, "SELECT count(*) FROM items") == [(2,)]


def test_rows_nobody_awaits_are_committed_before_they_pile_up(
    state: Path, journal: Journal
) -> None:
    journal.begin_run(a_run())
    for index in range(MAX_PENDING):
        journal.finished(item(index))
    assert peek(state, "SELECT count(*) FROM items") == [(MAX_PENDING,)]


def test_a_commit_error_reaches_every_waiter(state: Path) -> None:
    journal = Journal.open(state, busy_timeout=0)
    journal.begin_run(a_run())
    holder = hold_write_lock(state)

    async def main() -> list[BaseException | None]:
        tasks = (_send(journal, index) for index in range(3))
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    message = (
        f"{state / FILENAME}: the run journal stayed locked by another owf-run: try again later"
    )
    assert [str(outcome) for outcome in outcomes] == [message] * 3
    assert all(isinstance(outcome, JournalError) for outcome in outcomes)
    assert peek(state, "SELECT count(*) FROM items") == [(0,)]

    holder.close()  # the lock is free again: what failed is written with the next commit
    asyncio.run(_send(journal, 3))
    assert peek(state, "SELECT idx FROM items ORDER BY idx") == [(0,), (1,), (2,), (3,)]
    journal.close()


def test_a_cancelled_waiter_does_not_cancel_the_others(state: Path, journal: Journal) -> None:
    journal.begin_run(a_run())

    async def main() -> None:
        first = asyncio.ensure_future(_send(journal, 0))
        second = asyncio.ensure_future(_send(journal, 1))
        await asyncio.sleep(0)  # both are waiting for the one commit
        first.cancel()
        await second

    asyncio.run(main())
    assert peek(state, "SELECT count(*) FROM items") == [(2,)]


# -- reading ------------------------------------------------------------------------------------


def test_items_are_streamed_in_index_order_and_filtered(journal: Journal) -> None:
    journal.begin_run(a_run())
    statuses = {7: "failed", 8: "sending", 1007: "sending", 2007: "failed"}
    for index in reversed(range(2_500)):
        journal.finished(item(index, statuses.get(index, "succeeded")))
    streamed = journal.items("20261129T140000Z-aaaaaa", "users")
    assert [i.index for i in streamed] == list(range(2_500))
    problems = journal.items("20261129T140000Z-aaaaaa", "users", ["failed", "sending"])
    assert [(i.index, i.status) for i in problems] == list(statuses.items())
    failed = journal.items("20261129T140000Z-aaaaaa", "users", {"failed"})
    assert [i.index for i in failed] == [7, 2007]
    assert list(journal.items("20261129T140000Z-aaaaaa", "other")) == []


def test_latest_runs_of_a_job(journal: Journal) -> None:
    journal.begin_run(a_run("r1", started_at="2026-11-27T10:00:00Z", status="failed"))
    journal.begin_run(a_run("r2", started_at="2026-11-28T10:00:00Z", status="succeeded"))
    journal.begin_run(a_run("r3", "/jobs/other.yaml", started_at="2026-11-29T10:00:00Z"))
    latest = journal.latest_run(JOB)
    unfinished = journal.latest_unfinished(JOB)
    assert (latest and latest.id, unfinished and unfinished.id) == ("r2", "r1")
    assert [run.id for run in journal.runs(JOB, limit=10)] == ["r2", "r1"]
    assert [run.id for run in journal.runs(None, limit=2)] == ["r3", "r2"]
    assert journal.latest_run("/jobs/none.yaml") is None


def test_prune_keeps_the_newest_runs_of_that_job_only(state: Path, journal: Journal) -> None:
    for day in range(1, 6):
        run_id = f"r{day}"
        journal.begin_run(a_run(run_id, started_at=f"2026-11-0{day}T10:00:00Z"))
        journal.step_started(run_id, "users", 0)
        journal.finished(item(0, run_id=run_id))
    journal.begin_run(a_run("other", "/jobs/other.yaml", started_at="2026-10-01T10:00:00Z"))

    assert journal.prune(JOB, keep=2) == 3
    assert [run.id for run in journal.runs(None, limit=10)] == ["r5", "r4", "other"]
    assert peek(state, "SELECT DISTINCT run_id FROM items ORDER BY run_id") == [("r4",), ("r5",)]
    assert peek(state, "SELECT count(*) FROM steps") == [(2,)]
    assert journal.prune(JOB, keep=0) == 1  # the newest run is always kept
    assert journal.prune(JOB, keep=2) == 0


def test_abandoned_running_runs_become_interrupted(journal: Journal) -> None:
    journal.begin_run(a_run("r1"))
    journal.begin_run(a_run("r2", "/jobs/other.yaml"))
    assert journal.abandon_running(JOB) == 1
    assert [(run.id, run.status) for run in journal.runs(None, limit=5)] == [
        ("r2", "running"), ("r1", "interrupted"),
    ]  # fmt: skip


def test_json_that_does_not_parse_reads_as_none(state: Path, journal: Journal) -> None:
    journal.begin_run(a_run())
    journal.finished(item(0, outputs={"a": 1}, body={"b": 2}))
    journal.flush()
    peek(state, "UPDATE items SET outputs = '{broken', body = '[1,'")
    assert journal.item("20261129T140000Z-aaaaaa", "users", 0) == item(0)


def test_values_that_are_not_json_are_stored_as_text(journal: Journal) -> None:
    journal.begin_run(a_run())
    journal.finished(item(0, outputs={"raw": b"\x00bytes"}, body={"set": {1}}))
    circular: list[object] = []
    circular.append(circular)
    journal.finished(item(1, body=circular, label="lone \udc80 surrogate"))
    stored = journal.item("20261129T140000Z-aaaaaa", "users", 0)
    assert stored is not None
    assert (stored.outputs, stored.body) == ({"raw": "b'\\x00bytes'"}, {"set": "{1}"})
    assert journal.item("20261129T140000Z-aaaaaa", "users", 1) == item(
        1, label="lone \\udc80 surrogate"
    )


def test_a_body_over_the_limit_is_stored_as_a_marker(journal: Journal) -> None:
    journal.begin_run(a_run())
    big = {"data": "x" * BODY_LIMIT}
    journal.finished(item(0, body=big))
    journal.finished(item(1, body={"data": "x" * (BODY_LIMIT - 20)}))
    stored = journal.item("20261129T140000Z-aaaaaa", "users", 0)
    assert stored is not None
    text = json.dumps(big)
    assert stored.body == {"truncated": True, "bytes": len(text), "head": text[:HEAD_CHARS]}
    kept = journal.item("20261129T140000Z-aaaaaa", "users", 1)
    assert kept is not None
    assert kept.body == {"data": "x" * (BODY_LIMIT - 20)}


def test_a_run_id_sorts_by_time() -> None:
    run_id = new_run_id(1_795_960_800.0)
    assert re.fullmatch(r"20261129T140000Z-[0-9a-f]{6}", run_id)


# -- secrets ------------------------------------------------------------------------------------

CANARY = "canary-secret-value-123"


def test_no_secret_reaches_the_file(state: Path) -> None:
    REDACTOR.add(CANARY)
    journal = Journal.open(state)
    run_id = "20261129T140000Z-aaaaaa"
    journal.begin_run(a_run())
    journal.sending(run_id, "users", 0, f"user {CANARY}", None)
    journal.finished(
        item(
            0,
            label=f"user {CANARY}",
            outputs={"token": CANARY},
            body={"echo": [CANARY]},
            error=f"HTTP 500: {CANARY}",
            execution_id=CANARY,
        )
    )
    journal.step_finished(
        StepRecord(
            run_id=run_id,
            step_id="users",
            position=0,
            status="failed",
            outputs={"t": CANARY},
            response={"status": 500, "headers": {"x": CANARY}, "body": CANARY},
            error=CANARY,
        )
    )
    stored = journal.item(run_id, "users", 0)
    assert stored is not None
    assert (stored.label, stored.outputs, stored.error) == (
        f"user {MASK}",
        {"token": MASK},
        f"HTTP 500: {MASK}",
    )
    files = [state / FILENAME, state / f"{FILENAME}-wal"]
    assert_absent(files)
    journal.close()
    assert_absent([state / FILENAME])


def assert_absent(files: list[Path]) -> None:
    raw = b"".join(path.read_bytes() for path in files)
    assert raw  # the check reads something
    for name, form in encoded_forms(CANARY).items():
        assert form.encode() not in raw, name


def test_items_are_read_a_page_at_a_time_while_the_caller_writes(journal: Journal) -> None:
    journal.begin_run(a_run())
    for index in range(250):
        journal.finished(item(index))
    streamed = journal.items("20261129T140000Z-aaaaaa", "users")
    first = next(streamed)
    journal.finished(item(250))  # written after the reading began: a later page holds it
    assert [first.index, *(i.index for i in streamed)] == list(range(251))


_CRASHING_RUN = """
import asyncio, sys
from pathlib import Path
from owf_runner.journal import ItemRecord, Journal, RunRecord

journal = Journal.open(Path(sys.argv[1]))
journal.begin_run(RunRecord(id="r", job_path="/j.yaml", job_sha256="0", job_name="j",
                            started_at="2026-11-29T14:00:00Z", status="running"))

async def main():
    journal.sending("r", "users", 0, "user-0", None)
    await journal.durable()
    journal.finished(ItemRecord(run_id="r", step_id="users", index=0, status="succeeded"))
    journal.sending("r", "users", 1, "user-1", None)  # queued: its request has not gone out
    print("in flight", flush=True)
    sys.stdin.read()  # until killed

asyncio.run(main())
"""


def test_a_killed_process_leaves_its_in_flight_item_sending(state: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_RUN, str(state)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    with child.stdin, child.stdout:
        assert child.stdout.readline() == "in flight\n"
        child.kill()  # SIGKILL: nothing runs after this
        child.wait()
    with Journal.open(state) as journal:
        run = journal.run("r")
        assert run is not None
        assert (run.status, run.items_unknown, run.items_succeeded) == ("running", 1, 0)
        assert journal.item("r", "users", 1) is None
