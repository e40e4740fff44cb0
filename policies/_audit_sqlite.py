"""The embedded audit log: its own tables in a SQLite file (WAL), one write transaction per append.

``BEGIN IMMEDIATE`` takes SQLite's write lock before the head is read, so two writers (tasks,
connections or processes) can never both chain onto the same previous hash: the chain cannot fork.
The head row is updated in the same transaction as the record it points to.

Reads run on the event-loop thread. Appends either do too, or (in the hub) go to the store's
group-commit writer thread through ``submit``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from policies._audit_chain import AuditEntry, AuditHead, AuditRecord, InTransaction, check_limit, seal_all

__all__ = ["SqliteAuditLog"]

_SCHEMA = """
create table if not exists audit_log(
    seq integer primary key, client_id text not null, operation text not null, resource_id text,
    outcome text not null, status integer, trace_id text, at real not null, target text,
    transaction_id text, prev_hash text not null, hash text not null);
create index if not exists audit_log_client on audit_log(client_id, seq);
create table if not exists audit_head(
    id integer primary key check (id = 1), seq integer not null, hash text not null);
"""
_FIELDS = (
    "seq",
    "client_id",
    "operation",
    "resource_id",
    "outcome",
    "status",
    "trace_id",
    "at",
    "target",
    "transaction_id",
    "prev_hash",
    "hash",
)
_COLUMNS = ", ".join(_FIELDS)
_INSERT = f"insert into audit_log({_COLUMNS}) values ({', '.join('?' * len(_FIELDS))})"
_BATCH = 500


def _record(row: tuple[Any, ...]) -> AuditRecord:
    # Built without type validation on purpose: a tampered value must reach the verifier, not crash.
    values: dict[str, Any] = dict(zip(_FIELDS, row, strict=True))
    return AuditRecord(**values)


Submit = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


def _append_in(db: sqlite3.Connection, entries: list[AuditEntry]) -> list[AuditRecord]:
    """Inside a write transaction: chain the batch onto the head and move the head, together.
    The head is read and moved once per batch, not per record (it was a third of the appends' cost)."""
    records = seal_all(entries, _head_of(db))
    db.executemany(_INSERT, [tuple(getattr(r, f) for f in _FIELDS) for r in records])
    db.execute(
        "insert into audit_head(id, seq, hash) values (1, ?, ?) "
        "on conflict(id) do update set seq = excluded.seq, hash = excluded.hash",
        (records[-1].seq, records[-1].hash),
    )
    return records


def _head_of(db: sqlite3.Connection) -> AuditHead:
    row = db.execute("select seq, hash from audit_head where id = 1").fetchone()
    return AuditHead() if row is None else AuditHead(seq=row[0], hash=row[1])


class SqliteAuditLog:
    """``submit`` hands appends to a writer that owns the file's write connection (the hub's store
    uses its group-commit writer thread, so an audited call never waits for an fsync on the event
    loop); without it, appends run here in their own ``BEGIN IMMEDIATE`` transaction."""

    chains_pending = False

    def __init__(self, path: Path, *, durability: str = "full", submit: Submit | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._submit = submit
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(f"pragma synchronous={'full' if durability == 'full' else 'normal'}")
        self._db.execute("pragma busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def with_work(self, entry: AuditEntry) -> InTransaction:
        """Chained in the hub store's transaction that stores the work: that store writes this same
        file, and ``BEGIN IMMEDIATE`` there serialises it with every other append."""
        return InTransaction(lambda db: _append_in(db, [entry]))

    async def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """A batch in one write transaction (one fsync), in order."""
        if not entries:
            return []
        if self._submit is not None:
            records: list[AuditRecord] = await self._submit(lambda db: _append_in(db, entries))
            return records
        return [await self.append(entry) for entry in entries]

    async def append(self, entry: AuditEntry) -> AuditRecord:
        if self._submit is not None:
            (record,) = await self._submit(lambda db: _append_in(db, [entry]))
            return cast("AuditRecord", record)
        db = self._db
        db.execute("begin immediate")
        try:
            (record,) = _append_in(db, [entry])
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")
        return record

    async def page(
        self,
        *,
        client_id: str | None = None,
        operation: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[AuditRecord]:
        check_limit(limit)
        clauses: list[str] = ["seq > ?"]
        params: list[object] = [after_seq]
        for clause, value in (
            ("client_id = ?", client_id),
            ("operation = ?", operation),
            ("outcome = ?", outcome),
            ("at >= ?", since),
            ("at < ?", until),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        sql = f"select {_COLUMNS} from audit_log where {' and '.join(clauses)} order by seq limit ?"
        return [_record(row) for row in self._db.execute(sql, (*params, limit))]

    async def iterate(self) -> AsyncIterator[AuditRecord]:
        after = 0
        while True:
            rows = self._db.execute(
                f"select {_COLUMNS} from audit_log where seq > ? order by seq limit ?",
                (after, _BATCH),
            ).fetchall()
            for row in rows:
                yield _record(row)
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]

    async def head(self) -> AuditHead:
        return self._read_head()

    async def aclose(self) -> None:
        self._db.close()

    def _read_head(self) -> AuditHead:
        return _head_of(self._db)
