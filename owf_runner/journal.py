"""The run journal: runs, steps and each invocation of a step, in SQLite (DESIGN §6).

``runs.sqlite3`` in the state directory, shared by every job (two cron jobs may write at once:
WAL mode, a busy timeout). The durability rule: an invocation is recorded ``sending`` —
committed: it survives a killed process and a reboot — before its request goes out. With
``fsync=True`` (synchronous=FULL) it survives a power cut too, at about a millisecond per commit
on a common disk. ``sending()`` and ``finished()`` only queue their row; ``await durable()``
commits the queue, and the callers that await it together share one commit (see
``_commit_when_settled``: a commit costs ten system calls, the rows in it little). A
``finished`` row rides along with the next commit: losing it in a crash leaves the item
``sending`` (outcome unknown), the safe direction.

What is stored passes the one redactor first: labels, errors, execution ids, and the JSON text
of outputs, bodies and responses (ASCII: non-ASCII characters and lone surrogates escaped;
``default=str`` for what JSON has no type for, bytes or sets). Outputs are stored whole: they are
what a resume restores. A body or response whose JSON text is longer than ``BODY_LIMIT`` bytes
is stored as the marker ``{"truncated": true, "bytes": N, "head": "<its first HEAD_CHARS
characters>"}``, N the length of its redacted JSON text (the head is cut after redaction, so it
cannot hold part of a secret). A value JSON cannot hold at all (a circular one) is stored as
NULL.

Reading tolerates what was written: a JSON column that does not parse reads as None (outputs as
``{}``). Reads commit the queue first, so they see every write made before them.

A Journal belongs to one thread (its event loop's); the commit runs in that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from owf_runner.errors import ExitCode, OwfError
from owf_runner.redaction import REDACTOR, escape_controls, shown

FILENAME: Final = "runs.sqlite3"
SCHEMA_VERSION: Final = 2
BODY_LIMIT: Final = 64 * 1024  # bytes of JSON text: larger bodies are stored as a marker
HEAD_CHARS: Final = 1024
STEP_INVOCATION: Final = -1  # the index of a step's one invocation when it has no foreach
CHECKPOINT_PAGES: Final = 10_000  # WAL pages between checkpoints (about 40 MB)
BUSY_TIMEOUT: Final = 10.0  # seconds another process may hold the write lock
MAX_PENDING: Final = 10_000  # queued rows past which a write commits at once (memory stays flat)
BATCH: Final = 8  # senders that share a commit without waiting for more (so at most 6 turns)
PAGE: Final = 100  # rows read per query when streaming items (bodies: at most 6.4 MB a page)

# Statuses as stored (the journal counts by them).
OKTA: Final = "okta"  # where a run sent its requests
EMULATOR: Final = "emulator"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
INTERRUPTED: Final = "interrupted"
SKIPPED: Final = "skipped"
NOT_RUN: Final = "not run"
SENDING: Final = "sending"  # recorded before the request went out; no outcome since
UNKNOWN: Final = "unknown"  # an outcome that may or may not have run the flow (a timeout)
PROBLEMS: Final = frozenset({FAILED, SENDING, UNKNOWN})  # the items `owf-run show` lists


class JournalError(OwfError):
    """The journal cannot be opened, read or written; the message names the file."""

    exit_code = ExitCode.INVALID_JOB


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    id: str
    job_path: str
    job_sha256: str
    job_name: str
    started_at: str  # ISO 8601, UTC
    status: str
    finished_at: str | None = None
    exit_code: int | None = None
    sessions: int = 1  # 1 + the number of resumes
    target: str = "okta"  # OKTA, or EMULATOR: a rehearsal is never resumed as the real thing
    vars_sha256: str | None = None  # the variables it ran with; None: not recorded (schema 1)
    # Counted when read (ignored by begin_run).
    steps_succeeded: int = 0
    steps_failed: int = 0  # `failed` or `unknown`
    items_succeeded: int = 0
    items_failed: int = 0
    items_unknown: int = 0  # still `sending`, or `unknown`


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    run_id: str
    step_id: str
    position: int
    status: str
    attempts: int = 0
    seconds: float = 0.0
    items: int = 0
    failed_items: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)  # secret outputs already dropped
    response: dict[str, Any] | None = None  # {status, headers, body}
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ItemRecord:
    run_id: str
    step_id: str
    index: int  # STEP_INVOCATION for a step without foreach
    status: str
    label: str | None = None
    digest: str | None = None
    attempts: int = 0
    http_status: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    error: str | None = None
    execution_id: str | None = None


def new_run_id(now: float | None = None) -> str:
    """``20261129T140000Z-ab12cd``: sorts by start time, unique enough to type."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


_SCHEMA: Final = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY, job_path TEXT NOT NULL, job_sha256 TEXT NOT NULL,
        job_name TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
        status TEXT NOT NULL, exit_code INTEGER, sessions INTEGER NOT NULL,
        target TEXT NOT NULL DEFAULT 'okta', vars_sha256 TEXT)""",
    "CREATE INDEX runs_by_job ON runs (job_path, started_at, id)",
    "CREATE INDEX runs_by_start ON runs (started_at, id)",
    """CREATE TABLE steps (
        run_id TEXT NOT NULL, step_id TEXT NOT NULL, position INTEGER NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL, seconds REAL NOT NULL,
        items INTEGER NOT NULL, failed_items INTEGER NOT NULL,
        outputs TEXT, response TEXT, error TEXT,
        PRIMARY KEY (run_id, step_id))""",
    """CREATE TABLE items (
        run_id TEXT NOT NULL, step_id TEXT NOT NULL, idx INTEGER NOT NULL,
        label TEXT, digest TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        http_status INTEGER, outputs TEXT, body TEXT, error TEXT, execution_id TEXT,
        PRIMARY KEY (run_id, step_id, idx)) WITHOUT ROWID""",
    # No index by status: every item's status changes at least once (sending, then its
    # outcome), and a second B-tree to keep in step cost each invocation's commit more than
    # a scan of one run's items costs `history` and `show` (about 30 ms per 100,000).
)

# Each schema version's changes from the one before; a journal is brought up to date on open.
_MIGRATIONS: Final = {
    2: ("ALTER TABLE runs ADD COLUMN vars_sha256 TEXT",),  # NULL: run by a version that kept none
}

_SELECT_RUN: Final = (
    "SELECT id, job_path, job_sha256, job_name, started_at, finished_at, status, exit_code,"
    " sessions, target, vars_sha256 FROM runs"
)
_SELECT_STEP: Final = (
    "SELECT run_id, step_id, position, status, attempts, seconds, items, failed_items, outputs,"
    " response, error FROM steps"
)
_SELECT_ITEM: Final = (
    "SELECT run_id, step_id, idx, label, digest, status, attempts, http_status, outputs, body,"
    " error, execution_id FROM items"
)
_INSERT_RUN: Final = (
    "INSERT INTO runs (id, job_path, job_sha256, job_name, started_at, finished_at, status,"
    " exit_code, sessions, target, vars_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_STEP: Final = (
    "INSERT INTO steps (run_id, step_id, position, status, attempts, seconds, items,"
    " failed_items, outputs, response, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, step_id) DO UPDATE SET position = excluded.position,"
    " status = excluded.status, attempts = excluded.attempts, seconds = excluded.seconds,"
    " items = excluded.items, failed_items = excluded.failed_items,"
    " outputs = excluded.outputs, response = excluded.response, error = excluded.error"
)
# `sending` and `finished` are one statement, so that a batch of both is one executemany.
_UPSERT_ITEM: Final = (
    "INSERT INTO items (run_id, step_id, idx, label, digest, status, attempts, http_status,"
    " outputs, body, error, execution_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, step_id, idx) DO UPDATE SET label = excluded.label,"
    " digest = excluded.digest, status = excluded.status, attempts = excluded.attempts,"
    " http_status = excluded.http_status, outputs = excluded.outputs, body = excluded.body,"
    " error = excluded.error, execution_id = excluded.execution_id"
)
_STEP_STARTED: Final = (
    "INSERT INTO steps (run_id, step_id, position, status, attempts, seconds, items, failed_items)"
    " VALUES (?, ?, ?, 'running', 0, 0, 0, 0)"
    " ON CONFLICT (run_id, step_id) DO UPDATE SET position = excluded.position, status = 'running'"
)
_REOPEN_RUN: Final = (
    "UPDATE runs SET sessions = sessions + 1, status = 'running', finished_at = NULL,"
    " exit_code = NULL WHERE id = ?"
)
_FINISH_RUN: Final = "UPDATE runs SET status = ?, exit_code = ?, finished_at = ? WHERE id = ?"
_ABANDON_RUNS: Final = (
    "UPDATE runs SET status = 'interrupted' WHERE job_path = ? AND status = 'running'"
)
_ITEMS_PAGE: Final = (
    _SELECT_ITEM + f" WHERE run_id = ? AND step_id = ? AND idx > ? ORDER BY idx LIMIT {PAGE}"
)
_ITEMS_PAGE_OF_STATUS: Final = (
    _SELECT_ITEM + " WHERE run_id = ? AND step_id = ? AND idx > ? AND status IN ({statuses})"
    f" ORDER BY idx LIMIT {PAGE}"
)
# Ties within a second go by insertion (rowid), not by the random part of the id.
_NEWEST_FIRST: Final = " ORDER BY started_at DESC, rowid DESC"
_OLDER_RUNS: Final = (
    "SELECT id FROM runs WHERE job_path = ? ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ?"
)
_PRUNE: Final = (
    "DELETE FROM items WHERE run_id = ?",
    "DELETE FROM steps WHERE run_id = ?",
    "DELETE FROM runs WHERE id = ?",
)

_Write = tuple[str, tuple[Any, ...]]


class Journal:
    """The journal in one state directory; see the module docstring for the rules."""

    def __init__(self, db: sqlite3.Connection, path: Path, fsync: bool = False) -> None:
        self._db = db
        self.path = path
        self.fsync = fsync
        self._pending: list[_Write] = []
        self._waiters: list[asyncio.Future[None]] = []  # sharing the commit to come
        self.commits = 0  # transactions committed by this Journal (tests count batching)

    @classmethod
    def open(
        cls, state_dir: Path, busy_timeout: float = BUSY_TIMEOUT, fsync: bool = False
    ) -> Journal:
        """``fsync``: every commit reaches the disk before it returns (WAL, synchronous=FULL),
        so a power cut loses nothing; otherwise (synchronous=NORMAL) a commit survives a killed
        process and a reboot, and costs a hundredth as much."""
        path = state_dir / FILENAME
        _create_private(state_dir, path)
        with _errors(path):
            db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        journal = cls(db, path, fsync)
        try:
            with _errors(path):
                journal._prepare("FULL" if fsync else "NORMAL")
        except BaseException:
            db.close()
            raise
        return journal

    def _prepare(self, synchronous: str) -> None:
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(f"PRAGMA synchronous = {synchronous}")
        # A checkpoint (which syncs) every 10,000 pages, not 1,000: it copies only each page's
        # last version, so most of a foreach's rewrites of the same pages never reach it, and
        # the event loop stalls on it a tenth as often. close() truncates the WAL.
        self._db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(_newer_schema(self.path, version))
            if version == 0:
                self._create()
            else:
                self._migrate(version)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _create(self) -> None:
        if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise JournalError(_not_a_journal(self.path))  # another program's database
        for statement in _SCHEMA:
            self._db.execute(statement)

    def _migrate(self, version: int) -> None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                self._db.execute(statement)

    def close(self) -> None:
        try:
            self.flush()
            with contextlib.suppress(sqlite3.Error):  # another reader may hold the WAL: later
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def begin_run(self, run: RunRecord) -> None:
        row = (run.id, _storable(run.job_path), run.job_sha256, run.job_name, run.started_at,
               run.finished_at, run.status, run.exit_code, run.sessions, run.target,
               run.vars_sha256)  # fmt: skip
        self._write_now(_INSERT_RUN, row)

    def reopen_run(self, run_id: str) -> None:
        """A resume continues the run: one more session, `running` again."""
        self._write_now(_REOPEN_RUN, (run_id,))

    def finish_run(self, run_id: str, status: str, exit_code: int, finished_at: str) -> None:
        self._write_now(_FINISH_RUN, (status, exit_code, finished_at, run_id))

    def abandon_running(self, job_path: str) -> int:
        """Runs of this job still `running` become `interrupted`: call it holding the job's
        lock, so none of them is alive (their process died). How many there were."""
        self.flush()
        with _errors(self.path), self._transaction():
            cursor = self._db.execute(_ABANDON_RUNS, (_storable(job_path),))
        self.commits += 1
        return cursor.rowcount

    def step_started(self, run_id: str, step_id: str, position: int) -> None:
        """Queued, like ``finished``: it rides with the step's first ``sending`` commit."""
        self._queue(_STEP_STARTED, (run_id, step_id, position))

    def step_finished(self, record: StepRecord) -> None:
        row = (record.run_id, record.step_id, record.position, record.status, record.attempts,
               record.seconds, record.items, record.failed_items, _json(record.outputs),
               _capped(_json(record.response)), _text(record.error))  # fmt: skip
        # Queued: a chain of steps commits once per step, at its `sending`. Lost in a crash,
        # the step reads `running`, and a resume goes by its invocation's own record.
        self._queue(_UPSERT_STEP, row)

    def sending(
        self, run_id: str, step_id: str, index: int, label: str | None, digest: str | None
    ) -> None:
        """Queue the `sending` row (a resume re-sending an item overwrites its old outcome);
        ``await durable()`` before the request goes out."""
        # The row built directly, not through an ItemRecord: this runs once per item.
        # One try at least is leaving: a row left `sending` counts it.
        row = (run_id, step_id, index, _text(label), digest, SENDING, 1)
        self._queue(_UPSERT_ITEM, (*row, None, None, None, None, None))

    def finished(self, record: ItemRecord) -> None:
        """Queue the outcome; it is committed with the next batch (or ``flush()``)."""
        row = (record.run_id, record.step_id, record.index, _text(record.label), record.digest,
               record.status, record.attempts, record.http_status, _json(record.outputs),
               _capped(_json(record.body)), _text(record.error),
               _text(record.execution_id))  # fmt: skip
        self._queue(_UPSERT_ITEM, row)

    async def durable(self, shared: bool = True) -> None:
        """Returns once every queued write is committed.

        Concurrent callers (``shared``: a foreach's items) share one commit, made within a few
        event-loop turns (``_commit_when_settled``). A caller alone (a chain of steps), when
        commits do not sync, commits at once: that spares it a loop round trip and costs
        microseconds. JournalError (to every caller sharing it) when the commit fails."""
        if not shared and not self.fsync:
            self.flush()
            return
        if not self._pending and not self._waiters:
            return
        loop = asyncio.get_running_loop()
        if self._waiters and self._waiters[0].get_loop() is not loop:  # a closed loop's: gone
            self._waiters = []
        waiter: asyncio.Future[None] = loop.create_future()  # its own: a cancel stays its own
        if not self._waiters:
            loop.call_soon(self._commit_when_settled, 0)
        self._waiters.append(waiter)
        await waiter

    def flush(self) -> None:
        """Commit the queue now (step end, run end, shutdown)."""
        writes, self._pending = self._pending, []
        if not writes:
            return
        try:
            with _errors(self.path), self._transaction():
                for sql, group in itertools.groupby(writes, key=lambda write: write[0]):
                    self._db.executemany(sql, [params for _, params in group])
        except BaseException:
            # Kept for the next commit: a later durable() must not return with them unwritten,
            # and outcomes kept may still be saved (at close) once the lock is free again.
            self._pending[:0] = writes
            raise
        self.commits += 1

    def _commit_when_settled(self, seen: int) -> None:
        """Commit now, or a turn later if more senders may join.

        A sender alone in its turn commits at once: its request is what the loop waits for
        (a foreach of slow flows, where items leave one by one). Several senders in one turn
        are the sign of a busy loop (answers arriving faster than they are handled): while
        each turn brings more, the commit waits for them, up to BATCH. A busy loop's turns are
        short and full of work, so the wait costs little, and a commit shared by eight costs
        each an eighth (bench (d): 2 senders a commit became 8). BATCH stays small because a
        burst of answers (a foreach of slow flows whose items left together) holds its first
        senders back while the others are handled: bench (b) pays for every turn of it."""
        waiting = len(self._waiters)
        if 1 < waiting < BATCH and seen < waiting:
            asyncio.get_running_loop().call_soon(self._commit_when_settled, waiting)
            return
        self._commit_batch()

    def _commit_batch(self) -> None:
        waiters, self._waiters = self._waiters, []
        try:
            self.flush()
        except Exception as error:  # to every waiter; a bug too: raised here, it would hang them
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _queue(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))
        if len(self._pending) >= MAX_PENDING:  # nobody awaits durable(): keep memory flat
            self.flush()

    def _write_now(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))
        self.flush()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE: take the write lock up front, waiting (busy timeout) for another process.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reading ------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord | None:
        return self._one_run(_SELECT_RUN + " WHERE id = ?", (run_id,))

    def latest_run(self, job_path: str, target: str | None = None) -> RunRecord | None:
        """The newest run of the job (by start time); only against ``target`` if given."""
        if target is None:
            sql = _SELECT_RUN + " WHERE job_path = ?" + _NEWEST_FIRST + " LIMIT 1"
            return self._one_run(sql, (_storable(job_path),))
        sql = _SELECT_RUN + " WHERE job_path = ? AND target = ?" + _NEWEST_FIRST + " LIMIT 1"
        return self._one_run(sql, (_storable(job_path), target))

    def latest_unfinished(self, job_path: str) -> RunRecord | None:
        """The newest run of the job that did not succeed (what ``--resume`` continues)."""
        sql = _SELECT_RUN + " WHERE job_path = ? AND status != 'succeeded'"
        return self._one_run(sql + _NEWEST_FIRST + " LIMIT 1", (_storable(job_path),))

    def runs(self, job_path: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The newest runs first, of one job or of all."""
        if job_path is None:
            rows = self._fetch(_SELECT_RUN + _NEWEST_FIRST + " LIMIT ?", (limit,))
        else:
            sql = _SELECT_RUN + " WHERE job_path = ?" + _NEWEST_FIRST + " LIMIT ?"
            rows = self._fetch(sql, (_storable(job_path), limit))
        return [self._counted(row) for row in rows]

    def steps(self, run_id: str) -> list[StepRecord]:
        sql = _SELECT_STEP + " WHERE run_id = ? ORDER BY position, step_id"
        return [_step(row) for row in self._fetch(sql, (run_id,))]

    def item(self, run_id: str, step_id: str, index: int) -> ItemRecord | None:
        sql = _SELECT_ITEM + " WHERE run_id = ? AND step_id = ? AND idx = ?"
        rows = self._fetch(sql, (run_id, step_id, index))
        return _item(rows[0]) if rows else None

    def items(
        self, run_id: str, step_id: str, statuses: Collection[str] | None = None
    ) -> Iterator[ItemRecord]:
        """The step's invocations in index order, only those in ``statuses`` when given.

        Streamed a page at a time, and no statement stays open between pages (the caller may
        write while it reads). Filtered by status in one walk of the step's items."""
        if statuses is None:
            return self._pages(_ITEMS_PAGE, (run_id, step_id), ())
        chosen = tuple(sorted(set(statuses)))
        marks = ", ".join("?" * len(chosen))
        sql = _ITEMS_PAGE_OF_STATUS.format(statuses=marks)
        return self._pages(sql, (run_id, step_id), chosen)

    def _pages(
        self, sql: str, key: tuple[str, ...], statuses: tuple[str, ...]
    ) -> Iterator[ItemRecord]:
        after = STEP_INVOCATION - 1
        while page := self._fetch(sql, (*key, after, *statuses)):
            yield from map(_item, page)
            after = page[-1][2]

    def prune(self, job_path: str, keep: int) -> int:
        """Delete the job's runs older than its newest ``keep`` (at least 1: the current run is
        the newest), with their steps and items; how many runs went."""
        old = [(row[0],) for row in self._fetch(_OLDER_RUNS, (_storable(job_path), max(keep, 1)))]
        if old:
            with _errors(self.path), self._transaction():
                for delete in _PRUNE:
                    self._db.executemany(delete, old)
            self.commits += 1
        return len(old)

    def _one_run(self, sql: str, params: tuple[Any, ...]) -> RunRecord | None:
        rows = self._fetch(sql, params)
        return self._counted(rows[0]) if rows else None

    def _counted(self, row: tuple[Any, ...]) -> RunRecord:
        run_id = row[0]
        steps = self._counts("SELECT status, count(*) FROM steps WHERE run_id = ?", run_id)
        # Items are a foreach's: a plain step's one invocation is counted with the steps.
        sql = "SELECT status, count(*) FROM items WHERE run_id = ? AND idx >= 0"
        items = self._counts(sql, run_id)
        return RunRecord(
            id=run_id, job_path=row[1], job_sha256=row[2], job_name=row[3], started_at=row[4],
            finished_at=row[5], status=row[6], exit_code=row[7], sessions=row[8], target=row[9],
            vars_sha256=row[10],
            steps_succeeded=steps.get(SUCCEEDED, 0),
            steps_failed=steps.get(FAILED, 0) + steps.get(UNKNOWN, 0),
            items_succeeded=items.get(SUCCEEDED, 0), items_failed=items.get(FAILED, 0),
            items_unknown=items.get(SENDING, 0) + items.get(UNKNOWN, 0),
        )  # fmt: skip

    def _counts(self, sql: str, run_id: str) -> dict[str, int]:
        return dict(self._fetch(sql + " GROUP BY status", (run_id,)))

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        self.flush()
        with _errors(self.path):
            return self._db.execute(sql, params).fetchall()


def _step(row: tuple[Any, ...]) -> StepRecord:
    return StepRecord(
        run_id=row[0], step_id=row[1], position=row[2], status=row[3], attempts=row[4],
        seconds=row[5], items=row[6], failed_items=row[7], outputs=_outputs(row[8]),
        response=_dict_or_none(_parsed(row[9])), error=row[10],
    )  # fmt: skip


def _item(row: tuple[Any, ...]) -> ItemRecord:
    return ItemRecord(
        run_id=row[0], step_id=row[1], index=row[2], label=row[3], digest=row[4], status=row[5],
        attempts=row[6], http_status=row[7], outputs=_outputs(row[8]), body=_parsed(row[9]),
        error=row[10], execution_id=row[11],
    )  # fmt: skip


# -- values in and out ------------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    return None if value is None else _storable(REDACTOR.redact(value))


def _storable(text: str) -> str:
    """Text SQLite can hold: a lone surrogate (a file name's undecodable byte, a server's
    ``"\\ud800"``) is not UTF-8, and would fail the whole batch; it is kept as its escape."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# One encoder for every row (json.dumps with an argument builds a new one per call).
_ENCODE: Final = json.JSONEncoder(default=str).encode


def _json(value: Any) -> str | None:
    """The value's JSON text, redacted; None for None, or for a value JSON cannot hold."""
    if value is None:
        return None
    if value == {}:  # most items have no outputs: nothing to encode or redact
        return "{}"
    try:
        text = _ENCODE(value)  # ASCII: no lone surrogate reaches SQLite
    except (ValueError, RecursionError):  # circular, or nested past Python's stack
        return None
    return REDACTOR.redact(text)


def _capped(text: str | None) -> str | None:
    if text is None or len(text) <= BODY_LIMIT:  # the JSON is ASCII: a byte a character
        return text
    return json.dumps({"truncated": True, "bytes": len(text), "head": text[:HEAD_CHARS]})


def _parsed(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _outputs(text: Any) -> dict[str, Any]:
    return _dict_or_none(_parsed(text)) or {}


# -- errors -----------------------------------------------------------------------------------

_STATE_DIR_HINT: Final = "pass another --state-dir (or OWF_STATE_DIR)"


def _create_private(state_dir: Path, path: Path) -> None:
    """The directory 0700 and the file 0600 when they are new: bodies live there."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            _sync_directory(state_dir)  # the new file's name outlives a power cut too
    except FileExistsError:  # mkdir found a file where the directory should be
        raise JournalError(_cannot_write(path, f"{_named(state_dir)} is not a directory")) from None
    except OSError as error:
        raise JournalError(_cannot_write(path, error.strerror or str(error))) from None


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _errors(path: Path) -> Iterator[None]:
    """SQLite's errors about the file, as a message that names it and what to do; a misuse of
    the API (ProgrammingError, IntegrityError) is a bug and passes through."""
    try:
        yield
    except (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError):
        raise
    except sqlite3.Error as error:
        raise JournalError(_message(path, error)) from None


def _message(path: Path, error: sqlite3.Error) -> str:
    name = getattr(error, "sqlite_errorname", "")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return _not_a_journal(path)
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return _cannot_write(path, shown(str(error), 200))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return f"{_named(path)}: the run journal stayed locked by another owf-run: try again later"
    if name.startswith("SQLITE_FULL"):
        return f"{_named(path)}: the disk is full: free some space, then resume the run"
    return f"{_named(path)}: the run journal failed: {shown(str(error), 200)}"


def _not_a_journal(path: Path) -> str:
    return (
        f"{_named(path)}: not a run journal (another database, or damaged):"
        f" move it aside or {_STATE_DIR_HINT}"
    )


def _cannot_write(path: Path, reason: str) -> str:
    return (
        f"{_named(path)}: cannot write the run journal ({reason}):"
        f" fix the permissions or {_STATE_DIR_HINT}"
    )


def _newer_schema(path: Path, version: int) -> str:
    return (
        f"{_named(path)}: written by a newer owf-run (journal schema {version}, this one knows"
        f" up to {SCHEMA_VERSION}): upgrade owf-run or {_STATE_DIR_HINT}"
    )


def _named(path: Path) -> str:
    return escape_controls(str(path))


def instant(text: str | None) -> datetime.datetime | None:
    """A time the journal holds (ISO 8601; UTC when it names no zone), or None."""
    if text is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)
