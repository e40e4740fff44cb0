"""A delivery attempt's audit record is stored in the same atomic step as the attempt, on both stores.

Queued after the attempt, it was lost when the process died a moment later, while the attempt itself
stayed in the transaction's history. The outbox entry now names its transaction's client and trace
id, so the record can be built before the attempt is stored; an entry without them (accepted before
they existed) is audited after its attempt, as before.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.ids import new_id
from gateway.runtime import _attempt_audit, _delivery_entry  # the runtime's own wiring, not a copy
from gateway.store import (
    AttemptRecord,
    LeaseLost,
    OutboxRecord,
    RedisStore,
    ResourceRecord,
    SqliteStore,
    Store,
    TransactionRecord,
)
from policies.audit import AuditEntry, AuditLog, AuditRecord, RedisAuditLog, SqliteAuditLog, verify_log

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TRACE = "ab" * 16


@dataclass
class Backend:
    store: Store
    log: AuditLog

    async def records(self) -> list[AuditRecord]:
        await self.log.append_many([])  # what the next append does with records stored with work
        return [r async for r in self.log.iterate()]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
        log = SqliteAuditLog(store.path, durability="normal", submit=store.submit)
        yield Backend(store, log)
        await log.aclose()
        await store.close()
        return
    client = Redis.from_url(REDIS_URL)
    yield Backend(
        RedisStore(client, prefix=f"{redis_prefix}store:"), RedisAuditLog(client, prefix=f"{redis_prefix}audit")
    )
    await client.aclose()


def _work(now: float, client_id: str | None = "c1") -> tuple[TransactionRecord, ResourceRecord, OutboxRecord]:
    txn = TransactionRecord(
        id=new_id("txn"), client_id="c1", kind="journal.post", resource_type="journal", resource_id=new_id("jnl"),
        trace_id=TRACE, created_at=now, updated_at=now,
    )  # fmt: skip
    resource = ResourceRecord(
        kind="journal", id=txn.resource_id, client_id="c1", body=b"{}", transaction_id=txn.id, created_at=now,
        updated_at=now,
    )  # fmt: skip
    entry = OutboxRecord(
        id=new_id("dlv"), transaction_id=txn.id, target="erp", operation="post_journal", payload=b"{}",
        external_ref=f"{txn.id}:erp", next_attempt_at=now, created_at=now, updated_at=now, client_id=client_id,
        trace_id=TRACE if client_id else None,
    )  # fmt: skip
    return txn, resource, entry


def _done(entry: OutboxRecord, now: float) -> AttemptRecord:
    entry.state, entry.attempts, entry.updated_at = "done", 1, now
    return AttemptRecord(outbox_id=entry.id, number=1, started_at=now, duration_ms=1.0, outcome="success", status=200)


class _Governance:
    """What ``_attempt_audit`` reads of the runtime's governance: its audit log."""

    def __init__(self, log: AuditLog) -> None:
        self.audit_log = log


async def test_an_attempt_is_stored_with_its_audit_record(backend: Backend) -> None:
    now = time.time()
    txn, resource, entry = _work(now)
    await backend.store.accept(txn, [resource], [entry])
    (claimed,) = await backend.store.claim_due(now, 10, lease_s=30, owner="d1")
    assert (claimed.client_id, claimed.trace_id) == ("c1", TRACE)  # the entry names its transaction's
    attempt = _done(claimed, now)
    audit = _attempt_audit(_Governance(backend.log))(claimed, attempt)  # type: ignore[arg-type]
    assert audit is not None
    await backend.store.record_attempt(claimed, attempt, next_attempt_at=None, audit_record=audit)
    (record,) = await backend.records()  # nothing was queued: this is what a restarted process finds
    assert (record.operation, record.outcome, record.status, record.target) == ("deliver:post_journal", "delivered",
                                                                                 200, "erp")  # fmt: skip
    assert (record.client_id, record.trace_id, record.transaction_id, record.resource_id) == ("c1", TRACE, txn.id,
                                                                                             entry.id)  # fmt: skip
    assert (await verify_log(backend.log)).ok


async def test_an_attempt_whose_lease_was_lost_leaves_no_record(backend: Backend) -> None:
    now = time.time()
    txn, resource, entry = _work(now)
    await backend.store.accept(txn, [resource], [entry])
    (stale,) = await backend.store.claim_due(now, 10, lease_s=5, owner="d1")
    await backend.store.claim_due(now + 6, 10, lease_s=5, owner="d2")  # d1's lease ran out
    attempt = _done(stale, now)
    with pytest.raises(LeaseLost):
        await backend.store.record_attempt(
            stale, attempt, next_attempt_at=None, audit_record=backend.log.with_work(_entry_for(stale, attempt))
        )
    assert await backend.records() == []


def test_an_entry_from_before_the_change_is_audited_after_its_attempt(tmp_path: Path) -> None:
    entry = _work(time.time(), client_id=None)[2]
    log = SqliteAuditLog(tmp_path / "audit.sqlite3", durability="normal")
    try:
        assert _attempt_audit(_Governance(log))(entry, _done(entry, time.time())) is None  # type: ignore[arg-type]
    finally:
        asyncio.run(log.aclose())


async def test_an_outbox_from_an_earlier_release_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    with sqlite3.connect(path) as db:  # the outbox as the first release made it
        db.execute(
            "create table outbox(id text primary key, transaction_id text not null, target text not null, "
            "operation text not null, payload blob not null, external_ref text not null, state text not null, "
            "attempts integer not null, next_attempt_at real not null, result blob, error_kind text, error text, "
            "created_at real not null, updated_at real not null, budget_attempts integer not null, "
            "budget_started_at real, replays integer not null, lease_token integer not null, lease_until real, "
            "lease_owner text, traceparent text)"
        )
        db.execute(  # work that was waiting when the hub was upgraded
            "insert into outbox values ('dlv_1', 'txn_1', 'erp', 'post_journal', x'7b7d', 'ref', 'pending', 0, 0, "
            "null, null, null, 0, 0, 0, null, 0, 0, null, null, null)"
        )
    for _ in range(2):  # twice: the second opening finds the columns there
        await SqliteStore(path, durability="normal").close()
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("pragma table_info(outbox)")]
    assert columns[-5:] == ["client_id", "trace_id", "order_key", "order_seq", "held"]
    store = SqliteStore(path, durability="normal")
    try:
        (entry,) = await store.claim_due(time.time(), 10, lease_s=30, owner="a")  # no order key: no ordering
    finally:
        await store.close()
    assert (entry.id, entry.client_id, entry.order_key) == ("dlv_1", None, None)


def _entry_for(entry: OutboxRecord, attempt: AttemptRecord) -> AuditEntry:
    return _delivery_entry(entry, attempt, "c1", TRACE)
