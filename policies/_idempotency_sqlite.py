"""Idempotency records in SQLite (WAL): the embedded, single-node backend.

``begin`` reads and claims the key inside one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's
write lock first, so two processes (or two connections) sharing the file cannot both start the same
key. Like the hub's own store, calls run on the event loop thread: each is one short indexed
statement batch. Expiry is wall-clock time (the file outlives the process); an expired row is
treated as absent at once and deleted later by an occasional sweep.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from policies._idempotency_core import (
    DEFAULT_LEASE_S,
    STARTED,
    Begin,
    IdempotencyUnavailable,
    StoredResponse,
    classify,
    encode_response,
    lease_s,
)

__all__ = ["SqliteIdempotencyStore"]

_SCHEMA = """
create table if not exists idempotency_records(
    key text primary key, fingerprint text not null, response blob, expires_at real not null);
create index if not exists idempotency_records_expiry on idempotency_records(expires_at);
"""
_SWEEP_EVERY = 256


class SqliteIdempotencyStore:
    """Records in their own table; ``path`` may be a file of its own or one shared with other tables."""

    def __init__(self, path: Path, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lease_s = lease_s
        self._begins = 0
        # isolation_level=None: transactions are explicit, so "begin immediate" means what it says.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.execute("pragma busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    async def begin(self, key: str, fingerprint: str, ttl_s: float) -> Begin:
        now = time.time()
        with self._transaction() as db:
            self._maybe_sweep(db, now)
            row = db.execute(
                "select fingerprint, response from idempotency_records where key = ? and expires_at > ?",
                (key, now),
            ).fetchone()
            if row is not None:
                return classify(row[0], fingerprint, row[1])
            db.execute(
                "insert or replace into idempotency_records values (?, ?, null, ?)",
                (key, fingerprint, now + lease_s(ttl_s, self._lease_s)),
            )
        return STARTED

    async def complete(self, key: str, response: StoredResponse, ttl_s: float) -> None:
        # Keeps the fingerprint of the record begin wrote; if that record is gone, there is nothing to
        # attach the response to, and a retry simply runs again.
        with self._transaction() as db:
            db.execute(
                "update idempotency_records set response = ?, expires_at = ? where key = ?",
                (encode_response(response), time.time() + ttl_s, key),
            )

    async def release(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("delete from idempotency_records where key = ? and response is null", (key,))

    def final_write(self, key: str, fingerprint: str, response: StoredResponse, ttl_s: float) -> None:
        """The records live in a file of their own: nothing else writes them in its transaction."""

    def forget_in_flight(self) -> int:
        """At start-up of a single-node hub every in-flight record belongs to a process that died:
        release them so that clients' retries run now instead of meeting 409 until the lease ends."""
        with self._transaction() as db:
            return db.execute("delete from idempotency_records where response is null").rowcount

    async def aclose(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        try:
            db.execute("begin immediate")
            try:
                yield db
                db.execute("commit")
            except BaseException:
                if db.in_transaction:
                    db.execute("rollback")
                raise
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, read-only, disk full
            raise IdempotencyUnavailable("idempotency records unavailable") from exc

    def _maybe_sweep(self, db: sqlite3.Connection, now: float) -> None:
        self._begins += 1
        if self._begins % _SWEEP_EVERY == 0:
            db.execute("delete from idempotency_records where expires_at <= ?", (now,))
