"""The embedded store: SQLite in WAL mode in the data directory, no server needed.

Writes go through ``SqliteWriter`` (one thread, group commit, fsync per batch when
``durability=full``); reads run on the event loop on their own connection, since WAL readers never
wait for the writer. ``normal`` durability survives a crash of the process but may lose the last
commits on a power cut.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway.store._base import TransactionSnapshot
from gateway.store._records import (
    AttemptRecord,
    DeadLetterFilter,
    LeaseLost,
    OutboxRecord,
    ResourceRecord,
    ResourceTaken,
    TransactionRecord,
    WriteCondition,
    derive_state,
)
from gateway.store._sqlite_writer import SqliteWriter, connect
from policies.audit import AuditPush, InTransaction
from policies.idempotency import FinalStatement, FinalWrite

__all__ = ["HUB_DATABASE", "SqliteStore"]

HUB_DATABASE = "hub.sqlite3"  # in the data directory: transactions, outbox, resources, audit chain

T = TypeVar("T")

_SCHEMA = """
create table if not exists transactions(
    id text primary key, client_id text not null, kind text not null, resource_type text not null,
    resource_id text not null, state text not null, trace_id text, created_at real not null,
    updated_at real not null, span_id text);
create table if not exists outbox(
    id text primary key, transaction_id text not null references transactions(id), target text not null,
    operation text not null, payload blob not null, external_ref text not null, state text not null,
    attempts integer not null, next_attempt_at real not null, result blob, error_kind text, error text,
    created_at real not null, updated_at real not null, budget_attempts integer not null,
    budget_started_at real, replays integer not null, lease_token integer not null,
    lease_until real, lease_owner text, traceparent text, client_id text, trace_id text, order_key text,
    order_seq integer);
create index if not exists outbox_due on outbox(state, next_attempt_at);
create index if not exists outbox_transaction on outbox(transaction_id);
create table if not exists attempts(
    outbox_id text not null, number integer not null, started_at real not null, duration_ms real not null,
    outcome text not null, status integer, error text, primary key(outbox_id, number));
create table if not exists resources(
    kind text not null, id text not null, client_id text not null, body blob not null,
    transaction_id text, created_at real not null, updated_at real not null, primary key(kind, id));
create table if not exists counters(name text primary key, value integer not null);
insert or ignore into counters (name, value) values ('delivery-order', 0);
"""
# After the added columns exist: the unfinished entries of each order key, oldest queued first.
_ORDER_INDEX = (
    "create index if not exists outbox_order on outbox(order_key, order_seq) where state in ('pending', 'in_flight')"
)
# The entries a claim may take, by when they are due. A pending entry behind an unfinished one of its
# order key is marked ``held`` and is not in it: deciding that at each claim instead walked every
# held entry on every claim, and draining 4,000 queued updates of one account took 9 s.
_READY_INDEX = "create index if not exists outbox_ready on outbox(next_attempt_at) where state = 'pending' and held = 0"
# Named, because without statistics the planner prefers outbox_due and walks the held entries too.
_READY = "select id, next_attempt_at from outbox indexed by outbox_ready where state = 'pending' and held = 0"
# Whether a pending entry waits for an entry queued before it under the same order key.
_HELD = (
    "(order_key is not null and exists (select 1 from outbox p where p.order_key = outbox.order_key "
    "and p.state in ('pending', 'in_flight') and p.order_seq < outbox.order_seq))"
)
# Sets ``held`` where it is wrong: on a database an earlier release wrote (the column's default holds
# every entry until this runs), and after a process of such a release finished an entry without
# releasing the next. Returns one row per entry changed.
_SETTLE_HELD = f"update outbox set held = {_HELD} where state = 'pending' and held != {_HELD} returning held"
# An entry queued under an order key waits if anything of that key is unfinished: accepted, then
# replayed (whose own row is still dead when this is read, and whose new place is last).
_KEY_BUSY = "exists (select 1 from outbox where order_key = ? and state in ('pending', 'in_flight'))"
_REQUEUED_HELD = (
    "exists (select 1 from outbox p where p.order_key = outbox.order_key and p.state in ('pending', 'in_flight'))"
)
# The next place in the order keys' queues: taken when an entry is queued (accepted or replayed).
_NEXT_IN_ORDER = ("update counters set value = value + 1 where name = 'delivery-order'", ())
_ORDER_SEQ = "(select value from counters where name = 'delivery-order')"

_OUTBOX_FIELDS = (
    "id", "transaction_id", "target", "operation", "payload", "external_ref", "state", "attempts",
    "next_attempt_at", "result", "error_kind", "error", "created_at", "updated_at", "budget_attempts",
    "budget_started_at", "replays", "lease_token", "traceparent", "client_id", "trace_id", "order_key",
)  # fmt: skip
# Columns added to the outbox after its first release: (name, type), added where missing.
_ADDED_OUTBOX_COLUMNS = (
    ("client_id", "text"), ("trace_id", "text"), ("order_key", "text"), ("order_seq", "integer"),
    ("held", "integer not null default 1"),  # an earlier release's inserts are held until settled
)  # fmt: skip
_OUTBOX_COLUMNS = ", ".join(_OUTBOX_FIELDS)
_RESULT = msgspec.json.Decoder(dict[str, str])
_Statement = tuple[str, tuple[Any, ...]]


def _outbox(row: sqlite3.Row | tuple[Any, ...]) -> OutboxRecord:
    values = dict(zip(_OUTBOX_FIELDS, row, strict=True))
    values["result"] = _RESULT.decode(values["result"]) if values["result"] else None
    return OutboxRecord(**values)


def _outbox_values(e: OutboxRecord) -> tuple[Any, ...]:
    result = msgspec.json.encode(e.result) if e.result is not None else None
    return tuple(result if name == "result" else getattr(e, name) for name in _OUTBOX_FIELDS)


def _transaction(row: sqlite3.Row | tuple[Any, ...]) -> TransactionRecord:
    return TransactionRecord(
        id=row[0], client_id=row[1], kind=row[2], resource_type=row[3], resource_id=row[4], state=row[5],
        trace_id=row[6], created_at=row[7], updated_at=row[8], span_id=row[9],
    )  # fmt: skip


def _refresh_transaction(db: sqlite3.Connection, transaction_id: str, now: float) -> TransactionRecord:
    states = [r[0] for r in db.execute("select state from outbox where transaction_id = ?", (transaction_id,))]
    row = db.execute(
        "update transactions set state = ?, updated_at = ? where id = ? returning *",
        (derive_state(states, attempted=True), now, transaction_id),
    ).fetchone()
    return _transaction(row)


def _resource_statement(r: ResourceRecord) -> _Statement:
    return (
        "insert into resources (kind, id, client_id, body, transaction_id, created_at, updated_at) "
        "values (?,?,?,?,?,?,?) on conflict(kind, id) do update set "
        "body=excluded.body, transaction_id=excluded.transaction_id, updated_at=excluded.updated_at",
        (r.kind, r.id, r.client_id, r.body, r.transaction_id, r.created_at, r.updated_at),
    )


def _check_owners(
    db: sqlite3.Connection, resources: list[ResourceRecord], only_if: Mapping[tuple[str, str], WriteCondition]
) -> None:
    for r in resources:
        row = db.execute("select client_id from resources where kind = ? and id = ?", (r.kind, r.id)).fetchone()
        if row is None:
            continue
        if row[0] != r.client_id:
            raise ResourceTaken(r.kind, r.id, "belongs to another client")
        condition = only_if.get((r.kind, r.id))
        if condition == "absent":
            raise ResourceTaken(r.kind, r.id, "exists already")
        if condition == "unchanged" and not _stored_as(db, r):
            raise ResourceTaken(r.kind, r.id, "exists with another body")


def _stored_as(db: sqlite3.Connection, r: ResourceRecord) -> bool:
    query = "select 1 from resources where kind = ? and id = ? and body = ?"
    return db.execute(query, (r.kind, r.id, r.body)).fetchone() is not None


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A database made by an earlier release lacks the outbox's newer columns; its rows read as NULL."""
    present = {row[1] for row in db.execute("pragma table_info(outbox)")}
    for name, kind in _ADDED_OUTBOX_COLUMNS:
        if name not in present:
            try:
                db.execute(f"alter table outbox add column {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process opening the file added it first
                if "duplicate column" not in str(exc):
                    raise


def _check_lease(db: sqlite3.Connection, entry: OutboxRecord) -> None:
    row = db.execute("select lease_token, state from outbox where id = ?", (entry.id,)).fetchone()
    if row is None or row[0] != entry.lease_token or row[1] != "in_flight":
        raise LeaseLost(entry.id)


class SqliteStore:
    def __init__(self, path: Path, *, durability: str = "full") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = SqliteWriter(path, durability)
        self._writer.run_sync(lambda db: db.executescript(_SCHEMA))
        self._writer.run_sync(_add_missing_columns)
        self._writer.run_sync(lambda db: db.execute(_ORDER_INDEX))
        self._writer.run_sync(lambda db: db.execute(_READY_INDEX))
        self._writer.run_sync(lambda db: db.execute(_SETTLE_HELD).fetchall())
        self._db = connect(path, durability)

    async def submit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in the next group commit: how other tables in this file (the audit log)
        share the writer thread and its durability."""
        return await self._writer.submit(work)

    async def _write(
        self,
        statements: list[_Statement],
        also: InTransaction | None = None,
        guard: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            if guard is not None:  # raises before anything is written; the writer isolates this write
                guard(db)
            for sql, params in statements:
                db.execute(sql, params)
            if also is not None:
                also.run(db)

        await self._writer.submit(work)

    async def accept(
        self,
        transaction: TransactionRecord,
        resources: list[ResourceRecord],
        outbox: list[OutboxRecord],
        idempotency_record: FinalWrite | FinalStatement | None = None,
        audit_record: AuditPush | InTransaction | None = None,
        only_if: Mapping[tuple[str, str], WriteCondition] | None = None,
    ) -> None:
        if isinstance(idempotency_record, FinalWrite):  # never dropped silently: the caller counts on it
            raise ValueError("the SQLite store cannot write a Redis idempotency record with a transaction")
        if isinstance(audit_record, AuditPush):
            raise ValueError("the SQLite store cannot push onto a Redis audit log with a transaction")
        t = transaction
        statements: list[_Statement] = [
            (
                "insert into transactions (id, client_id, kind, resource_type, resource_id, state, trace_id, "
                "created_at, updated_at, span_id) values (?,?,?,?,?,?,?,?,?,?)",
                (t.id, t.client_id, t.kind, t.resource_type, t.resource_id, t.state, t.trace_id, t.created_at,
                 t.updated_at, t.span_id),
            )
        ]  # fmt: skip
        statements += [_resource_statement(r) for r in resources]
        marks = ",".join("?" * len(_OUTBOX_FIELDS))
        queued = f"insert into outbox ({_OUTBOX_COLUMNS}, order_seq, held) values ({marks}, {_ORDER_SEQ}, {_KEY_BUSY})"
        unordered = f"insert into outbox ({_OUTBOX_COLUMNS}, held) values ({marks}, 0)"
        for e in outbox:
            if e.order_key is None:  # no order to keep: no place in a queue to take
                statements.append((unordered, _outbox_values(e)))
            else:
                statements += [_NEXT_IN_ORDER, (queued, (*_outbox_values(e), e.order_key))]
        if idempotency_record is not None:
            statements.append((idempotency_record.sql, idempotency_record.params))
        await self._write(statements, audit_record, guard=lambda db: _check_owners(db, resources, only_if or {}))

    async def put_resources(self, resources: list[ResourceRecord]) -> None:
        await self._write([_resource_statement(r) for r in resources])

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        row = self._db.execute(
            "select kind, id, client_id, body, transaction_id, created_at, updated_at from resources "
            "where kind = ? and id = ?",
            (kind, resource_id),
        ).fetchone()
        if row is None:
            return None
        return ResourceRecord(
            kind=row[0], id=row[1], client_id=row[2], body=row[3], transaction_id=row[4], created_at=row[5],
            updated_at=row[6],
        )  # fmt: skip

    async def get_transaction(self, transaction_id: str) -> TransactionSnapshot | None:
        row = self._db.execute("select * from transactions where id = ?", (transaction_id,)).fetchone()
        if row is None:
            return None
        entries = [
            _outbox(r)
            for r in self._db.execute(
                f"select {_OUTBOX_COLUMNS} from outbox where transaction_id = ? order by id",
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
        for entry in entries:
            if entry.state == "pending" and entry.order_key is not None:
                entry.held_behind = self._held_behind(entry)
        return _transaction(row), entries, attempts

    def _held_behind(self, entry: OutboxRecord) -> str | None:
        head = self._db.execute(
            "select id, transaction_id from outbox where order_key = ? and state in ('pending', 'in_flight') "
            "order by order_seq limit 1",
            (entry.order_key,),
        ).fetchone()
        return None if head is None or head[0] == entry.id else str(head[1])

    async def get_delivery(self, entry_id: str) -> OutboxRecord | None:
        row = self._db.execute(f"select {_OUTBOX_COLUMNS} from outbox where id = ?", (entry_id,)).fetchone()
        return None if row is None else _outbox(row)

    async def claim_due(self, now: float, limit: int, lease_s: float, owner: str) -> list[OutboxRecord]:
        def work(db: sqlite3.Connection) -> list[OutboxRecord]:
            token = db.execute(
                "insert into counters (name, value) values ('lease', 1) "
                "on conflict(name) do update set value = value + 1 returning value"
            ).fetchone()[0]
            rows = db.execute(
                "update outbox set state = 'in_flight', lease_until = ?, lease_owner = ?, lease_token = ? "
                "where id in (select id from (select * from "
                f"({_READY} and next_attempt_at <= ? order by next_attempt_at limit ?) union all select * from "
                "(select id, next_attempt_at from outbox where state = 'in_flight' and lease_until <= ? "
                f"order by next_attempt_at limit ?)) order by next_attempt_at limit ?) returning {_OUTBOX_COLUMNS}",
                (now + lease_s, owner, token, now, limit, now, limit, limit),
            ).fetchall()
            return [_outbox(r) for r in rows]

        return await self._writer.submit(work)

    async def next_number(self, name: str, ceiling: int, first: int) -> int:
        def work(db: sqlite3.Connection) -> int:
            row = db.execute(
                "insert into counters (name, value) values (?, ?) "
                "on conflict(name) do update set value = value % ? + 1 returning value",
                (f"sequence:{name}", first, ceiling),
            ).fetchone()
            return int(row[0])

        return await self._writer.submit(work)

    async def record_attempt(
        self,
        entry: OutboxRecord,
        attempt: AttemptRecord,
        *,
        next_attempt_at: float | None,
        audit_record: AuditPush | InTransaction | None = None,
    ) -> TransactionRecord:
        if isinstance(audit_record, AuditPush):
            raise ValueError("the SQLite store cannot push onto a Redis audit log with an attempt")

        def work(db: sqlite3.Connection) -> TransactionRecord:
            _check_lease(db, entry)
            a = attempt
            db.execute(
                "insert or replace into attempts (outbox_id, number, started_at, duration_ms, outcome, status, error) "
                "values (?,?,?,?,?,?,?)",
                (a.outbox_id, a.number, a.started_at, a.duration_ms, a.outcome, a.status, a.error),
            )
            db.execute(
                "update outbox set state = ?, attempts = ?, next_attempt_at = coalesce(?, next_attempt_at), "
                "lease_until = null, lease_owner = null, result = ?, error_kind = ?, error = ?, updated_at = ?, "
                "budget_attempts = ?, budget_started_at = ? where id = ?",
                (
                    entry.state, entry.attempts, next_attempt_at,
                    msgspec.json.encode(entry.result) if entry.result is not None else None,
                    entry.error_kind, entry.error, entry.updated_at, entry.budget_attempts,
                    entry.budget_started_at, entry.id,
                ),
            )  # fmt: skip
            if entry.state in ("done", "dead") and entry.order_key is not None:
                db.execute(  # the next entry of its order key, if any, is now first in line
                    "update outbox set held = 0 where id = (select id from outbox where order_key = ? "
                    "and state in ('pending', 'in_flight') order by order_seq limit 1) and state = 'pending'",
                    (entry.order_key,),
                )
            if audit_record is not None:
                audit_record.run(db)
            return _refresh_transaction(db, entry.transaction_id, entry.updated_at)

        return await self._writer.submit(work)

    async def release(self, entry: OutboxRecord, next_attempt_at: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            _check_lease(db, entry)
            db.execute(
                "update outbox set state = 'pending', next_attempt_at = ?, lease_until = null, "
                "lease_owner = null where id = ?",
                (next_attempt_at, entry.id),
            )

        await self._writer.submit(work)

    async def list_dead(self, where: DeadLetterFilter, limit: int, after_id: str | None) -> list[OutboxRecord]:
        clauses: list[str] = ["state = 'dead'", "id > ?"]
        params: list[object] = [after_id or ""]
        for column, op, value in (
            ("target", "=", where.target),
            ("error_kind", "=", where.error_kind),
            ("updated_at", "<", where.dead_before),
            ("updated_at", ">=", where.dead_after),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        rows = self._db.execute(
            f"select {_OUTBOX_COLUMNS} from outbox where {' and '.join(clauses)} order by id limit ?",
            (*params, limit),
        ).fetchall()
        return [_outbox(r) for r in rows]

    async def replay(self, entry_ids: list[str], now: float) -> list[OutboxRecord]:
        def work(db: sqlite3.Connection) -> list[OutboxRecord]:
            replayed = []
            for entry_id in entry_ids:
                db.execute(*_NEXT_IN_ORDER)  # a replayed entry queues behind what waits for its key
                row = db.execute(
                    "update outbox set state = 'pending', next_attempt_at = ?, budget_attempts = 0, "
                    f"budget_started_at = null, replays = replays + 1, updated_at = ?, order_seq = {_ORDER_SEQ}, "
                    f"held = {_REQUEUED_HELD} "
                    f"where id = ? and state = 'dead' returning {_OUTBOX_COLUMNS}",
                    (now, now, entry_id),
                ).fetchone()
                if row is not None:
                    entry = _outbox(row)
                    db.execute(
                        "update transactions set state = 'delivering', updated_at = ? where id = ?",
                        (now, entry.transaction_id),
                    )
                    replayed.append(entry)
            return replayed

        return await self._writer.submit(work)

    async def outbox_stats(self, now: float) -> tuple[int, float | None, int]:
        waiting, oldest = self._db.execute(
            "select count(*), min(created_at) from outbox where state in ('pending', 'in_flight')"
        ).fetchone()
        (dead,) = self._db.execute("select count(*) from outbox where state = 'dead'").fetchone()
        return int(waiting), (now - oldest if oldest is not None else None), int(dead)

    async def next_due_at(self) -> float | None:
        row = self._db.execute(
            f"select min(due) from (select min(next_attempt_at) as due from ({_READY}) union all "
            "select min(lease_until) from outbox where state = 'in_flight')"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def repair_order(self) -> int:
        """Corrects ``held`` where a process of an earlier release left it wrong; returns how many
        entries it released (and holds any it finds first in line wrongly)."""

        def work(db: sqlite3.Connection) -> int:
            return sum(1 for (held,) in db.execute(_SETTLE_HELD).fetchall() if not held)

        return await self._writer.submit(work)

    async def ping(self) -> bool:
        row = self._db.execute("select 1").fetchone()
        return bool(row == (1,))

    async def close(self) -> None:
        self._writer.close()
        self._db.close()
