"""The store contract, run over every backend (the `store` fixture is parametrized)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.ids import new_id
from gateway.store import (
    AttemptRecord,
    DeadLetterFilter,
    LeaseLost,
    OutboxRecord,
    ResourceRecord,
    SqliteStore,
    Store,
    TransactionRecord,
)


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
    yield backend
    await backend.close()


def _transaction(now: float, deliveries: int = 2) -> tuple[TransactionRecord, ResourceRecord, list[OutboxRecord]]:
    txn = TransactionRecord(
        id=new_id("txn"),
        client_id="c1",
        kind="journal.post",
        resource_type="journal",
        resource_id=new_id("jnl"),
        created_at=now,
        updated_at=now,
    )
    resource = ResourceRecord(
        kind="journal",
        id=txn.resource_id,
        client_id="c1",
        body=b"{}",
        transaction_id=txn.id,
        created_at=now,
        updated_at=now,
    )
    outbox = [
        OutboxRecord(
            id=new_id("dlv"),
            transaction_id=txn.id,
            target=f"t{i}",
            operation="op",
            payload=b"{}",
            external_ref=f"{txn.id}:t{i}",
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for i in range(deliveries)
    ]
    return txn, resource, outbox


def _attempt(entry: OutboxRecord, outcome: str = "success") -> AttemptRecord:
    return AttemptRecord(
        outbox_id=entry.id, number=entry.attempts, started_at=time.time(), duration_ms=1.0, outcome=outcome
    )  # type: ignore[arg-type]


async def test_accept_is_readable_back(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now)
    await store.accept(txn, [resource], outbox)
    snapshot = await store.get_transaction(txn.id)
    assert snapshot is not None
    stored, entries, attempts = snapshot
    assert stored.state == "accepted"
    assert sorted(e.id for e in entries) == sorted(e.id for e in outbox)
    assert attempts == []
    assert (await store.get_resource("journal", txn.resource_id)) == resource
    assert await store.get_resource("journal", "missing") is None


async def test_due_entries_are_leased_once_until_the_lease_expires(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now)
    await store.accept(txn, [resource], outbox)
    first = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert len(first) == 2
    assert await store.claim_due(now, 10, lease_s=30, owner="b") == []
    # A crashed owner's lease runs out: the work is claimed again.
    again = await store.claim_due(now + 31, 10, lease_s=30, owner="b")
    assert sorted(e.id for e in again) == sorted(e.id for e in outbox)


async def test_transaction_state_follows_its_deliveries(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now)
    await store.accept(txn, [resource], outbox)
    first, second = await store.claim_due(now, 10, lease_s=30, owner="a")

    first.state, first.attempts, first.result, first.updated_at = "done", 1, {"reference": "R1"}, now
    assert (await store.record_attempt(first, _attempt(first), next_attempt_at=None)).state == "delivering"

    second.state, second.attempts, second.error_kind, second.updated_at = "pending", 1, "retriable", now
    retry_at = now + 60
    state = await store.record_attempt(second, _attempt(second, "retry"), next_attempt_at=retry_at)
    assert state.state == "delivering"
    assert await store.claim_due(now + 1, 10, lease_s=30, owner="a") == []
    assert await store.next_due_at() == pytest.approx(retry_at)

    (second,) = await store.claim_due(retry_at, 10, lease_s=30, owner="a")
    second.state, second.attempts, second.error_kind, second.updated_at = "dead", 2, "rejected", now
    final = await store.record_attempt(second, _attempt(second, "reject"), next_attempt_at=None)
    assert final.state == "failed"
    snapshot = await store.get_transaction(txn.id)
    assert snapshot is not None
    _, entries, attempts = snapshot
    assert {e.id: e.state for e in entries} == {first.id: "done", second.id: "dead"}
    assert len(attempts) == 3
    assert next(e for e in entries if e.id == first.id).result == {"reference": "R1"}


async def test_all_done_completes(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    await store.accept(txn, [resource], outbox)
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    entry.state, entry.attempts, entry.updated_at = "done", 1, now
    assert (await store.record_attempt(entry, _attempt(entry), next_attempt_at=None)).state == "completed"
    assert await store.next_due_at() is None


async def test_accept_is_atomic(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now)
    outbox.append(outbox[0])  # duplicate id: the write must fail as a whole
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        await store.accept(txn, [resource], outbox)
    assert await store.get_transaction(txn.id) is None
    assert await store.get_resource("journal", txn.resource_id) is None


async def test_a_stale_lease_holder_is_fenced_off(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    await store.accept(txn, [resource], outbox)
    (stale,) = await store.claim_due(now, 10, lease_s=5, owner="a")
    (fresh,) = await store.claim_due(now + 6, 10, lease_s=5, owner="b")  # a's lease ran out
    assert fresh.lease_token != stale.lease_token
    stale.state, stale.attempts, stale.updated_at = "done", 1, now
    with pytest.raises(LeaseLost):
        await store.record_attempt(stale, _attempt(stale), next_attempt_at=None)
    with pytest.raises(LeaseLost):
        await store.release(stale, now)
    fresh.state, fresh.attempts, fresh.updated_at = "done", 1, now
    assert (await store.record_attempt(fresh, _attempt(fresh), next_attempt_at=None)).state == "completed"


async def test_release_gives_work_back_without_an_attempt(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    await store.accept(txn, [resource], outbox)
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    await store.release(entry, now + 10)
    assert await store.claim_due(now + 5, 10, lease_s=30, owner="a") == []
    (again,) = await store.claim_due(now + 10, 10, lease_s=30, owner="a")
    assert again.attempts == 0


async def test_dead_letters_are_listed_by_filter_and_replayed_with_a_fresh_budget(store: Store) -> None:
    now = time.time()
    ids = []
    for target, kind in (("t0", "rejected"), ("t0", "retriable")):
        txn, resource, outbox = _transaction(now, deliveries=1)
        outbox[0].target = target
        await store.accept(txn, [resource], outbox)
        (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
        entry.state, entry.attempts, entry.error_kind, entry.updated_at = "dead", 3, kind, now
        entry.budget_attempts = 3
        await store.record_attempt(entry, _attempt(entry, "reject"), next_attempt_at=None)
        ids.append(entry.id)
    assert [e.id for e in await store.list_dead(DeadLetterFilter(), 10, None)] == ids
    assert [e.id for e in await store.list_dead(DeadLetterFilter(error_kind="retriable"), 10, None)] == ids[1:]
    assert await store.list_dead(DeadLetterFilter(target="other"), 10, None) == []
    assert [e.id for e in await store.list_dead(DeadLetterFilter(), 10, ids[0])] == ids[1:]
    assert await store.outbox_stats(now) == (0, None, 2)

    (replayed,) = await store.replay([ids[0], "dlv_missing"], now + 1)
    assert (replayed.state, replayed.replays, replayed.budget_attempts, replayed.attempts) == ("pending", 1, 0, 3)
    snapshot = await store.get_transaction(replayed.transaction_id)
    assert snapshot is not None
    assert snapshot[0].state == "delivering"
    waiting, oldest, dead = await store.outbox_stats(now + 2)
    assert (waiting, dead) == (1, 1)
    assert oldest == pytest.approx(2)
    assert await store.replay([ids[0]], now + 1) == []  # no longer dead
