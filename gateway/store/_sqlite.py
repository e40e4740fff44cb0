"""The embedded store: SQLite in WAL mode in the data directory, no server needed.

Calls run on the event loop thread: each is one short indexed statement batch (tens of
microseconds), cheaper than a hop to a worker thread, and one connection on one thread needs no
locking. ``durability=full`` fsyncs every commit (survives a power cut); ``normal`` survives a crash
of the process but may lose the last commits on power loss.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from gateway.store._base import TransactionSnapshot
from gateway.store._records import (
    AttemptRecord,
    OutboxRecord,
    ResourceRecord,
    TransactionRecord,
    derive_state,
)
from gateway.store._sqlite_writer import SqliteWriter, connect

__all__ = ["SqliteStore"]

_SCHEMA = """
create table if not exists transactions(
    id text primary key, client_id text not null, kind text not null, resource_type text not null,
    resource_id text not null, state text not null, trace_id text, created_at real not null,
    updated_at real not null);
create table if not exists outbox(
    id text primary key, transaction_id text not null references transactions(id), target text not null,
    operation text not null, payload blob not null, external_ref text not null, state text not null,
    attempts integer not null default 0, next_attempt_at real not null, lease_until real,
    lease_owner text, result blob, error_kind text, error text, updated_at real not null);
create index if not exists outbox_due on outbox(state, next_attempt_at);
create index if not exists outbox_transaction on outbox(transaction_id);
create table if not exists attempts(
    outbox_id text not null, number integer not null, started_at real not null, duration_ms real not null,
    outcome text not null, status integer, error text, primary key(outbox_id, number));
create table if not exists resources(
    kind text not null, id text not null, client_id text not null, body blob not null,
    transaction_id text, created_at real not null, updated_at real not null, primary key(kind, id));
"""

_OUTBOX_COLUMNS = (
    "id, transaction_id, target, operation, payload, external_ref, state, attempts, next_attempt_at, "
    "result, error_kind, error, updated_at"
)
_RESULT = msgspec.json.Decoder(dict[str, str])


def _outbox(row: sqlite3.Row) -> OutboxRecord:
    return OutboxRecord(
        id=row[0],
        transaction_id=row[1],
        target=row[2],
        operation=row[3],
        payload=row[4],
        external_ref=row[5],
        state=row[6],
        attempts=row[7],
        next_attempt_at=row[8],
        result=_RESULT.decode(row[9]) if row[9] else None,
        error_kind=row[10],
        error=row[11],
        updated_at=row[12],
    )


def _transaction(row: sqlite3.Row) -> TransactionRecord:
    return TransactionRecord(
        id=row[0],
        client_id=row[1],
        kind=row[2],
        resource_type=row[3],
        resource_id=row[4],
        state=row[5],
        trace_id=row[6],
        created_at=row[7],
        updated_at=row[8],
    )


def _refresh_transaction(db: sqlite3.Connection, transaction_id: str, now: float) -> TransactionRecord:
    states = [
        r[0] for r in db.execute("select state from outbox where transaction_id = ?", (transaction_id,))
    ]
    row = db.execute(
        "update transactions set state = ?, updated_at = ? where id = ? returning *",
        (derive_state(states, attempted=True), now, transaction_id),
    ).fetchone()
    return _transaction(row)


class SqliteStore:
    def __init__(self, path: Path, *, durability: str = "full") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = SqliteWriter(path, durability)
        self._writer.run_sync(lambda db: db.executescript(_SCHEMA))
        # Reads run on the event loop on their own connection: WAL readers never wait for the writer.
        self._db = connect(path, durability)

    async def _write(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            for sql, params in statements:
                db.execute(sql, params)

        await self._writer.submit(work)

    async def accept(
        self, transaction: TransactionRecord, resources: list[ResourceRecord], outbox: list[OutboxRecord]
    ) -> None:
        t = transaction
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "insert into transactions values (?,?,?,?,?,?,?,?,?)",
                (
                    t.id,
                    t.client_id,
                    t.kind,
                    t.resource_type,
                    t.resource_id,
                    t.state,
                    t.trace_id,
                    t.created_at,
                    t.updated_at,
                ),
            )
        ]
        statements += [self._resource_statement(r) for r in resources]
        statements += [
            (
                "insert into outbox (id, transaction_id, target, operation, payload, external_ref, state, "
                "attempts, next_attempt_at, updated_at) values (?,?,?,?,?,?,?,?,?,?)",
                (
                    e.id,
                    e.transaction_id,
                    e.target,
                    e.operation,
                    e.payload,
                    e.external_ref,
                    e.state,
                    e.attempts,
                    e.next_attempt_at,
                    e.updated_at,
                ),
            )
            for e in outbox
        ]
        await self._write(statements)

    @staticmethod
    def _resource_statement(r: ResourceRecord) -> tuple[str, tuple[object, ...]]:
        return (
            "insert into resources values (?,?,?,?,?,?,?) on conflict(kind, id) do update set "
            "body=excluded.body, transaction_id=excluded.transaction_id, updated_at=excluded.updated_at",
            (r.kind, r.id, r.client_id, r.body, r.transaction_id, r.created_at, r.updated_at),
        )

    async def put_resources(self, resources: list[ResourceRecord]) -> None:
        await self._write([self._resource_statement(r) for r in resources])

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        row = self._db.execute(
            "select kind, id, client_id, body, transaction_id, created_at, updated_at from resources "
            "where kind = ? and id = ?",
            (kind, resource_id),
        ).fetchone()
        if row is None:
            return None
        return ResourceRecord(
            kind=row[0],
            id=row[1],
            client_id=row[2],
            body=row[3],
            transaction_id=row[4],
            created_at=row[5],
            updated_at=row[6],
        )

    async def get_transaction(self, transaction_id: str) -> TransactionSnapshot | None:
        row = self._db.execute("select * from transactions where id = ?", (transaction_id,)).fetchone()
        if row is None:
            return None
        entries = [
            _outbox(r)
            for r in self._db.execute(
                f"select {_OUTBOX_COLUMNS} from outbox where transaction_id = ? order by id",  # noqa: S608 - constant columns
                (transaction_id,),
            )
        ]
        attempts = [
            AttemptRecord(
                outbox_id=r[0],
                number=r[1],
                started_at=r[2],
                duration_ms=r[3],
                outcome=r[4],
                status=r[5],
                error=r[6],
            )
            for r in self._db.execute(
                "select a.* from attempts a join outbox o on o.id = a.outbox_id where o.transaction_id = ? "
                "order by a.started_at",
                (transaction_id,),
            )
        ]
        return _transaction(row), entries, attempts

    async def claim_due(self, now: float, limit: int, lease_s: float, owner: str) -> list[OutboxRecord]:
        def work(db: sqlite3.Connection) -> list[OutboxRecord]:
            rows = db.execute(
                "update outbox set state = 'in_flight', lease_until = ?, lease_owner = ? where id in ("  # noqa: S608
                "  select id from outbox where (state = 'pending' and next_attempt_at <= ?)"
                "  or (state = 'in_flight' and lease_until <= ?) order by next_attempt_at limit ?"
                f") returning {_OUTBOX_COLUMNS}",
                (now + lease_s, owner, now, now, limit),
            ).fetchall()
            return [_outbox(r) for r in rows]

        return await self._writer.submit(work)

    async def record_attempt(
        self, entry: OutboxRecord, attempt: AttemptRecord, *, next_attempt_at: float | None
    ) -> TransactionRecord:
        def work(db: sqlite3.Connection) -> TransactionRecord:
            db.execute(
                "insert or replace into attempts values (?,?,?,?,?,?,?)",
                (
                    attempt.outbox_id,
                    attempt.number,
                    attempt.started_at,
                    attempt.duration_ms,
                    attempt.outcome,
                    attempt.status,
                    attempt.error,
                ),
            )
            db.execute(
                "update outbox set state = ?, attempts = ?, next_attempt_at = coalesce(?, next_attempt_at), "
                "lease_until = null, lease_owner = null, result = ?, error_kind = ?, error = ?, "
                "updated_at = ? where id = ?",
                (
                    entry.state,
                    entry.attempts,
                    next_attempt_at,
                    msgspec.json.encode(entry.result) if entry.result is not None else None,
                    entry.error_kind,
                    entry.error,
                    entry.updated_at,
                    entry.id,
                ),
            )
            return _refresh_transaction(db, entry.transaction_id, entry.updated_at)

        return await self._writer.submit(work)

    async def next_due_at(self) -> float | None:
        row = self._db.execute(
            "select min(case when state = 'pending' then next_attempt_at else lease_until end) from outbox "
            "where state in ('pending', 'in_flight')"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def ping(self) -> bool:
        row = self._db.execute("select 1").fetchone()
        return bool(row == (1,))

    async def close(self) -> None:
        self._writer.close()
        self._db.close()
