"""Where enqueued events wait: in memory, or in an SQLite file (WAL) shared by processes.

A store hands out *leases*: rows taken by one deliverer (``owner``) until ``available`` (wall
clock), so that several processes on one file each deliver a disjoint share and the rows of a
holder that died come back when its leases expire. A row leaves the store only once delivered
(``done``) or dead-lettered (``dead``); a failed attempt puts it back (``release``), later.
Every method is thread-safe: the sync emitter enqueues from the caller's thread and delivers
from its own.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import json
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias

import attrs

from ventryx._errors import InvalidInputError, VentryxError

__all__ = [
    "DeadLetter",
    "MemoryStore",
    "OnFull",
    "OutboxFullError",
    "Row",
    "SQLiteStore",
    "Store",
    "StoreCounts",
]

OnFull: TypeAlias = Literal["raise", "block", "drop"]
"""What ``enqueue`` does when the in-memory outbox holds ``max_pending`` events."""

SCHEMA_VERSION = "1"
_OUTSTANDING = "SELECT COUNT(*) FROM outbox WHERE owner IS NULL OR available <= ?"
_LEASED = "SELECT COUNT(*) FROM outbox WHERE owner IS NOT NULL AND available > ?"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    idem TEXT NOT NULL UNIQUE,
    ukey TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    available REAL NOT NULL DEFAULT 0,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_ready ON outbox (available, id);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY,
    idem TEXT NOT NULL,
    ukey TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    failed REAL NOT NULL,
    status INTEGER,
    error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class OutboxFullError(VentryxError):
    """The in-memory outbox holds ``max_pending`` events and ``on_full="raise"``."""


@attrs.frozen
class Row:
    """One stored event: ``ukey`` (the user's key or a generated one) derives ``idem``."""

    id: int
    idem: str
    ukey: str
    body: str  # the JSON of {"type": ..., "data": ...}
    created: float  # wall clock


@attrs.frozen(kw_only=True)
class DeadLetter:
    """An event the API refused (4xx): kept in the dead-letter table, never retried by itself."""

    id: int
    idempotency_key: str
    key: str
    type: str
    data: dict[str, object]
    created: float
    failed: float
    status: int | None
    error: str


@attrs.frozen(kw_only=True)
class StoreCounts:
    """``pending``: waiting (not held by this deliverer); ``dead``: dead letters."""

    pending: int
    dead: int
    oldest_created: float | None


class Store(Protocol):
    owner: str

    def add(self, idem: str, ukey: str, body: str, *, on_full: OnFull, block: bool) -> bool: ...

    def lease(self, limit: int, seconds: float) -> list[Row]: ...

    def done(self, row: Row) -> None: ...

    def dead(self, row: Row, status: int | None, error: str) -> None: ...

    def release(self, row: Row, delay: float) -> None: ...

    def renew(self, rows: Iterable[Row], seconds: float) -> None: ...

    def commit(self) -> None: ...

    def counts(self) -> StoreCounts: ...

    def outstanding(self) -> int: ...

    def next_ready_in(self) -> float | None: ...

    def close(self) -> None: ...


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class MemoryStore:
    """Events in this process's memory, at most ``max_pending`` (held ones included)."""

    def __init__(self, max_pending: int) -> None:
        self.owner = _new_owner()
        self.max_pending = max_pending
        self.dropped = 0
        self._cond = threading.Condition(threading.Lock())
        self._ready: collections.deque[Row] = collections.deque()
        self._delayed: list[tuple[float, int, Row]] = []  # (available, id, row): a heap
        self._held = 0
        self._next_id = 1
        self._dead: list[DeadLetter] = []

    def _size(self) -> int:
        return len(self._ready) + len(self._delayed) + self._held

    def add(self, idem: str, ukey: str, body: str, *, on_full: OnFull, block: bool) -> bool:
        with self._cond:
            while self._size() >= self.max_pending:
                if on_full == "drop":
                    self.dropped += 1
                    return False
                if on_full == "raise" or not block:
                    raise OutboxFullError(
                        f"the in-memory outbox holds max_pending={self.max_pending} events"
                    )
                self._cond.wait()
            self._ready.append(Row(self._next_id, idem, ukey, body, time.time()))
            self._next_id += 1
            return True

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])

    def lease(self, limit: int, seconds: float) -> list[Row]:
        with self._cond:
            if self._delayed:
                self._promote(time.time())
            count = min(limit, len(self._ready))
            rows = [self._ready.popleft() for _ in range(count)]
            self._held += count
            return rows

    def _settle(self) -> None:
        self._held -= 1
        self._cond.notify()

    def done(self, row: Row) -> None:
        with self._cond:
            self._settle()

    def dead(self, row: Row, status: int | None, error: str) -> None:
        with self._cond:
            self._settle()
            if len(self._dead) < self.max_pending:
                self._dead.append(_dead_letter(row, status, error, time.time()))

    def release(self, row: Row, delay: float) -> None:
        with self._cond:
            self._held -= 1
            if delay <= 0:
                self._ready.appendleft(row)
            else:
                heapq.heappush(self._delayed, (time.time() + delay, row.id, row))

    def renew(self, rows: Iterable[Row], seconds: float) -> None:
        return None

    def commit(self) -> None:
        return None

    def counts(self) -> StoreCounts:
        with self._cond:
            # The ready queue is in enqueue order but for rows put back at its front.
            created = [r.created for r in itertools.islice(self._ready, 0, 64)]
            created += [r.created for _, _, r in self._delayed]
            return StoreCounts(
                pending=len(self._ready) + len(self._delayed),
                dead=len(self._dead),
                oldest_created=min(created) if created else None,
            )

    def outstanding(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)

    def next_ready_in(self) -> float | None:
        with self._cond:
            if self._ready:
                return 0.0
            if self._delayed:
                return max(0.0, self._delayed[0][0] - time.time())
            return None

    def dead_letters(self) -> list[DeadLetter]:
        with self._cond:
            return list(self._dead)

    def close(self) -> None:
        return None


def _dead_letter(row: Row, status: int | None, error: str, failed: float) -> DeadLetter:
    body = json.loads(row.body)
    return DeadLetter(
        id=row.id,
        idempotency_key=row.idem,
        key=row.ukey,
        type=body["type"],
        data=body.get("data", {}),
        created=row.created,
        failed=failed,
        status=status,
        error=error,
    )


# Connections a forked child inherited: never closed there (that could disturb the parent's
# locks) and kept referenced, so that they are never collected unclosed either.
_INHERITED: list[sqlite3.Connection] = []


def _close_all(connections: list[sqlite3.Connection]) -> None:
    """Close what a store opened (at ``close()``, or when the store is collected unclosed)."""
    while connections:
        with contextlib.suppress(sqlite3.Error):
            connections.pop().close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


class SQLiteStore:
    """The outbox file: SQLite in WAL mode, created private (0600), safe across ``fork``.

    Each transaction commits before a method returns (``synchronous=NORMAL``: a committed
    event survives the process being killed; only a power loss can take the last ones).
    ``done`` is batched (``commit`` or every ``_DONE_BATCH`` rows): a delivered row that a
    crash leaves behind is sent again with its key, a replay the API answers without a second
    effect.
    """

    _DONE_BATCH = 64
    _WAL_KEEP = 1024 * 1024
    _WAL_LIMIT = 16 * 1024 * 1024

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._done: list[int] = []
        self._checkpointer: tuple[int, sqlite3.Connection] | None = None
        self._checkpoint_lock = threading.Lock()
        self._closed = False
        self._opened: list[sqlite3.Connection] = []  # this process's, closed by _finalizer
        self._finalizer = weakref.finalize(self, _close_all, self._opened)
        self.owner = ""
        with self._lock:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        """The connection of this process (a forked child opens its own; call under the lock)."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # An inherited connection is abandoned, never closed: closing it in the child could
        # disturb the parent's locks.
        if self._pid != -1 and self._pid != os.getpid():
            self._finalizer.detach()
            _INHERITED.extend(self._opened)
            self._opened = []
            self._finalizer = weakref.finalize(self, _close_all, self._opened)
            self._checkpointer = None
        if not self._finalizer.alive:  # opened again after close()
            self._opened = []
            self._finalizer = weakref.finalize(self, _close_all, self._opened)
        self._pid = os.getpid()
        self._done = []
        self.owner = _new_owner()
        if not self.path.exists():
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            except OSError as exc:
                raise InvalidInputError("outbox", f"cannot create {self.path}: {exc}") from exc
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._opened.append(conn)
            # Small pages (for a new file): an enqueue writes three of them to the WAL (the row
            # and its two indexes), so the WAL a burst leaves behind is a quarter of 4 KB pages'.
            conn.execute("PRAGMA page_size=1024")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # No checkpoint inside a commit (an enqueue would pay for copying the WAL back and
            # its fsync): ``checkpoint`` runs them, from a worker thread of the emitter.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            # A WAL grown by a burst is cut back to this once a checkpoint has emptied it.
            conn.execute(f"PRAGMA journal_size_limit={self._WAL_KEEP}")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
        except sqlite3.DatabaseError as exc:
            _close_all(self._opened)
            raise InvalidInputError("outbox", f"{self.path} is not a usable outbox: {exc}") from exc
        self._conn = conn
        self._reclaim(conn)
        return conn

    def _reclaim(self, conn: sqlite3.Connection) -> None:
        """Release at once the leases of dead processes of this host (not waiting for expiry)."""
        host = socket.gethostname() + ":"
        owners = conn.execute(
            "SELECT DISTINCT owner FROM outbox WHERE owner IS NOT NULL AND available > ?",
            (time.time(),),
        ).fetchall()
        for (owner,) in owners:
            if not str(owner).startswith(host):
                continue
            pid = str(owner)[len(host) :].partition(":")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                conn.execute(
                    "UPDATE outbox SET available = 0, owner = NULL WHERE owner = ?", (owner,)
                )

    def add(self, idem: str, ukey: str, body: str, *, on_full: OnFull, block: bool) -> bool:
        with self._lock:
            self._connection().execute(
                "INSERT OR IGNORE INTO outbox (idem, ukey, body, created) VALUES (?, ?, ?, ?)",
                (idem, ukey, body, time.time()),
            )
        return True

    def lease(self, limit: int, seconds: float) -> list[Row]:
        with self._lock:
            conn = self._connection()
            now = time.time()
            # A read first: an idle poll takes no write lock from the processes that enqueue.
            ready = conn.execute(
                "SELECT 1 FROM outbox WHERE available <= ? LIMIT 1", (now,)
            ).fetchone()
            if ready is None:
                return []
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute(
                    "SELECT id, idem, ukey, body, created FROM outbox WHERE available <= ?"
                    " ORDER BY available, id LIMIT ?",
                    (now, limit),
                ).fetchall()
                rows = [Row(*values) for values in found]
                if rows:
                    marks = ",".join("?" * len(rows))  # placeholders only: no injection
                    update = f"UPDATE outbox SET available = ?, owner = ?, attempts = attempts + 1 WHERE id IN ({marks})"  # noqa: E501, S608
                    conn.execute(update, (now + seconds, self.owner, *(row.id for row in rows)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return rows

    def done(self, row: Row) -> None:
        with self._lock:
            self._connection()
            self._done.append(row.id)
            if len(self._done) >= self._DONE_BATCH:
                self._commit_done()

    def _commit_done(self) -> None:
        if not self._done:
            return
        ids, self._done = self._done, []
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        marks = ",".join("?" * len(ids))
        conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)  # noqa: S608
        conn.execute("COMMIT")

    def commit(self) -> None:
        with self._lock:
            self._connection()
            self._commit_done()

    def checkpoint(self) -> None:
        """Copy the WAL back into the file once it has grown, so that it is reused from its start.

        Passive: it neither waits for nor blocks an enqueue (a blocking mode makes enqueues
        wait in SQLite's busy handler, milliseconds at a time), unless the WAL passed
        ``_WAL_LIMIT``. On a connection of its own, kept for the next time, so that it does
        not hold the lock the enqueues take.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        with self._checkpoint_lock, contextlib.suppress(OSError, sqlite3.Error):
            # busy or gone: the next one will do it
            if self._closed:
                return
            size = wal.stat().st_size
            if size <= self._WAL_KEEP:
                return
            if size > self._WAL_LIMIT:
                # Writes that never pause starve a passive checkpoint (the WAL is reused only
                # once all of it is copied back): past the limit, one that holds them off.
                with self._lock:
                    self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            if self._checkpointer is None or self._checkpointer[0] != os.getpid():
                conn = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
                self._opened.append(conn)
                self._checkpointer = (os.getpid(), conn)
            self._checkpointer[1].execute("PRAGMA wal_checkpoint(PASSIVE)")

    def dead(self, row: Row, status: int | None, error: str) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO dead (idem, ukey, body, created, failed, status, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.idem, row.ukey, row.body, row.created, time.time(), status, error),
            )
            conn.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
            conn.execute("COMMIT")

    def release(self, row: Row, delay: float) -> None:
        with self._lock:
            available = time.time() + delay if delay > 0 else 0.0
            self._connection().execute(
                "UPDATE outbox SET available = ?, owner = NULL WHERE id = ? AND owner = ?",
                (available, row.id, self.owner),
            )

    def renew(self, rows: Iterable[Row], seconds: float) -> None:
        ids = [(time.time() + seconds, row.id, self.owner) for row in rows]
        if not ids:
            return
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("UPDATE outbox SET available = ? WHERE id = ? AND owner = ?", ids)
            conn.execute("COMMIT")

    def counts(self) -> StoreCounts:
        with self._lock:
            conn = self._connection()
            pending, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created) FROM outbox WHERE owner IS NOT ?",
                (self.owner,),
            ).fetchone()
            (dead,) = conn.execute("SELECT COUNT(*) FROM dead").fetchone()
        return StoreCounts(pending=int(pending), dead=int(dead), oldest_created=oldest)

    def _scalar(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        """The one value the query ``sql`` selects."""
        with self._lock:
            return self._connection().execute(sql, params).fetchone()[0]

    def outstanding(self) -> int:
        """Rows this deliverer could still take: not leased by another live holder."""
        return int(self._scalar(_OUTSTANDING, (time.time(),)))

    def next_ready_in(self) -> float | None:
        first = self._scalar("SELECT MIN(available) FROM outbox WHERE owner IS NULL")
        return None if first is None else max(0.0, float(first) - time.time())

    # -- for the CLI -----------------------------------------------------------------------

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        with self._lock:
            found = (
                self._connection()
                .execute(
                    "SELECT id, idem, ukey, body, created, failed, status, error FROM dead"
                    " ORDER BY id LIMIT ?",
                    (-1 if limit is None else limit,),
                )
                .fetchall()
            )
        letters: list[DeadLetter] = []
        for id_, idem, ukey, body, created, failed, status, error in found:
            row = Row(id_, idem, ukey, body, created)
            letters.append(_dead_letter(row, status, error, failed))
        return letters

    def retry_dead(self) -> int:
        """Move every dead letter back into the outbox (same keys); returns how many."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            moved = conn.execute(
                "INSERT OR IGNORE INTO outbox (idem, ukey, body, created)"
                " SELECT idem, ukey, body, created FROM dead"
            ).rowcount
            conn.execute("DELETE FROM dead")
            conn.execute("COMMIT")
        return int(moved)

    def leased(self) -> int:
        """Rows leased now by some holder (this process or another)."""
        return int(self._scalar(_LEASED, (time.time(),)))

    def close(self) -> None:
        with self._lock:
            with self._checkpoint_lock:
                self._closed = True
                self._checkpointer = None
            try:
                if self._conn is not None and self._pid == os.getpid():
                    self._commit_done()
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self._conn = None
                if self._pid == os.getpid():
                    self._finalizer()  # closes this process's connections, once
