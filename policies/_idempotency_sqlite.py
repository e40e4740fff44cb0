"""Idempotency records in SQLite (WAL): the embedded, single-node backend.

``begin`` reads and claims the key inside one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's
write lock first, so two processes (or two connections) sharing the file cannot both start the same
key. Expiry is wall-clock time (the file outlives the process); an expired row is treated as absent
at once and deleted later by an occasional sweep.

Two ways to write. On its own (``submit=None``) the store runs each call as a short transaction of
its own connection, on the calling thread. Given the hub store's group-commit ``submit`` (the table
then lives in the hub's database), every call runs in the writer's next batch instead: nothing
blocks the event loop on SQLite's lock, and ``final_write`` can hand the store the finished record as
one more statement of the transaction it answers for, so both are committed together or not at all.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from policies._audit_sqlite import Submit  # the same group-commit hook the audit log takes
from policies._idempotency_core import (
    DEFAULT_LEASE_S,
    STARTED,
    Begin,
    FinalStatement,
    IdempotencyUnavailable,
    StoredResponse,
    classify,
    encode_response,
    lease_s,
)

__all__ = ["SqliteIdempotencyStore"]

# in_flight_until: set on a provisional record (a response, but its request still running).
_SCHEMA = """
create table if not exists idempotency_records(
    key text primary key, fingerprint text not null, response blob, expires_at real not null,
    in_flight_until real);
create index if not exists idempotency_records_expiry on idempotency_records(expires_at);
"""
_SWEEP_EVERY = 256
_COLUMNS = "key, fingerprint, response, expires_at, in_flight_until"
_UPSERT = f"insert or replace into idempotency_records ({_COLUMNS}) values (?, ?, ?, ?, ?)"
T = TypeVar("T")


class SqliteIdempotencyStore:
    """Records in their own table; ``path`` may be a file of its own or one shared with other tables.
    With ``submit``, ``path`` must be the file that writer commits to."""

    def __init__(self, path: Path, *, lease_s: float = DEFAULT_LEASE_S, submit: Submit | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lease_s = lease_s
        self._submit = submit
        self._begins = 0
        # isolation_level=None: transactions are explicit, so "begin immediate" means what it says.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.execute("pragma busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        _add_in_flight_until(self._db)

    async def begin(self, key: str, fingerprint: str, ttl_s: float) -> Begin:
        now = time.time()
        in_flight_until = now + lease_s(ttl_s, self._lease_s)

        def claim(db: sqlite3.Connection) -> Begin:
            self._maybe_sweep(db, now)
            row = db.execute(
                "select fingerprint, response, in_flight_until from idempotency_records "
                "where key = ? and expires_at > ?",
                (key, now),
            ).fetchone()
            if row is not None:
                running = row[2] is not None and row[2] > now  # a provisional record's owner
                return classify(row[0], fingerprint, None if running else row[1])
            db.execute(_UPSERT, (key, fingerprint, None, in_flight_until, None))
            return STARTED

        return await self._run(claim)

    async def complete(self, key: str, response: StoredResponse, ttl_s: float) -> None:
        # Keeps the fingerprint of the record begin wrote; if that record is gone, there is nothing to
        # attach the response to, and a retry simply runs again.
        params = (encode_response(response), time.time() + ttl_s, key)
        await self._run(
            lambda db: db.execute(
                "update idempotency_records set response = ?, expires_at = ?, in_flight_until = null where key = ?",
                params,
            )
        )

    async def release(self, key: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("delete from idempotency_records where key = ? and response is null", (key,))
            db.execute("update idempotency_records set in_flight_until = null where key = ?", (key,))

        await self._run(work)

    def final_write(
        self, key: str, fingerprint: str, response: StoredResponse, ttl_s: float, *, provisional: bool = False
    ) -> FinalStatement | None:
        """The finished (or provisional) record as one statement for the hub store's writer, when this
        store shares it (``submit``); on a file of its own nothing else can write it in the same
        transaction."""
        if self._submit is None:
            return None
        now = time.time()
        in_flight_until = now + lease_s(ttl_s, self._lease_s) if provisional else None
        params = (key, fingerprint, encode_response(response), now + ttl_s, in_flight_until)
        return FinalStatement(sql=_UPSERT, params=params)

    def adopt(self, old: Path) -> int:
        """Take over the finished, unexpired records of ``old``, a file of records this store replaces
        (they used to live in a file of their own), then rename it so it is read only once: a retry
        after an upgrade is still answered from its record. Returns how many records moved."""
        if not old.exists():
            return 0
        db = self._db
        db.execute("attach database ? as old", (str(old),))  # not allowed inside a transaction
        try:
            with self._transaction():
                moved = db.execute(
                    "insert or ignore into idempotency_records (key, fingerprint, response, expires_at) "
                    "select key, fingerprint, response, expires_at "
                    "from old.idempotency_records where response is not null and expires_at > ?",
                    (time.time(),),
                ).rowcount
        finally:
            db.execute("detach database old")
        with contextlib.suppress(FileNotFoundError):  # another process adopted it first
            old.rename(old.with_name(old.name + ".adopted"))
        return moved

    def forget_in_flight(self) -> int:
        """At start-up of a single-node hub every in-flight record belongs to a process that died:
        release them so that clients' retries run now (or, for a provisional record, replay the answer
        its stored work earned) instead of meeting 409 until the lease ends."""
        with self._transaction() as db:
            forgotten = db.execute("delete from idempotency_records where response is null").rowcount
            return (
                forgotten
                + db.execute(
                    "update idempotency_records set in_flight_until = null where in_flight_until is not null"
                ).rowcount
            )

    async def aclose(self) -> None:
        self._db.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._submit is None:
            with self._transaction() as db:
                return work(db)
        try:
            result: T = await self._submit(work)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, read-only, disk full
            raise IdempotencyUnavailable("idempotency records unavailable") from exc
        return result

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


def _add_in_flight_until(db: sqlite3.Connection) -> None:
    """A table made before provisional records lacks the column; its rows read as final (NULL)."""
    if "in_flight_until" not in {row[1] for row in db.execute("pragma table_info(idempotency_records)")}:
        try:
            db.execute("alter table idempotency_records add column in_flight_until real")
        except sqlite3.OperationalError as exc:  # another process opening the file added it first
            if "duplicate column" not in str(exc):
                raise
