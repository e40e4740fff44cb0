"""The store contract, run over every backend (the `store` fixture is parametrized)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
import redis.exceptions
from redis.asyncio import Redis

from gateway.ids import new_id
from gateway.redis_client import pipelined_redis
from gateway.store import (
    AttemptRecord,
    DeadLetterFilter,
    LeaseLost,
    OutboxRecord,
    ResourceRecord,
    ResourceTaken,
    SqliteStore,
    Store,
    TransactionRecord,
)
from gateway.store._redis import RedisStore, volatility
from policies.audit import AuditPush, InTransaction
from policies.idempotency import FinalStatement, FinalWrite, Replay, SqliteIdempotencyStore, Started, StoredResponse

Outcome = Literal["success", "retry", "reject", "misconfigured"]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class RedisStores:
    """Redis stores for one test: a fresh key prefix, one client per store; deletes its keys after.

    The Redis backend runs against the real server at ``REDIS_URL``; when it does not answer the
    test *fails* (never skips): CI must exercise the shared backend.
    """

    def __init__(self) -> None:
        self.prefix = f"test:store:{uuid.uuid4().hex}:"
        self.clients: list[Redis] = []

    def client(self, url: str = REDIS_URL) -> Redis:
        client = pipelined_redis(url, timeout_s=5)  # the client kind RedisStore.from_url makes
        self.clients.append(client)
        return client

    def new(self) -> RedisStore:
        return RedisStore(self.client(), prefix=self.prefix)

    async def keys(self) -> set[str]:
        return {k.decode() async for k in self.clients[0].scan_iter(match=f"{self.prefix}*")}

    async def require(self) -> None:
        try:
            await self.client().ping()
        except redis.exceptions.RedisError as exc:
            await self.close()
            pytest.fail(
                f"Redis at {REDIS_URL} did not answer ({type(exc).__name__}). The Redis store tests need a "
                "real Redis server: start redis-server or point REDIS_URL at one. They are never skipped.",
                pytrace=False,
            )

    async def close(self) -> None:
        try:
            if self.clients:
                keys = [k async for k in self.clients[0].scan_iter(match=f"{self.prefix}*")]
                if keys:
                    await self.clients[0].delete(*keys)
        finally:
            for client in self.clients:
                await client.aclose()


@pytest.fixture
async def redis_stores() -> AsyncIterator[RedisStores]:
    stores = RedisStores()
    await stores.require()
    yield stores
    await stores.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        backend: Store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
        yield backend
        await backend.close()
        return
    stores = RedisStores()
    await stores.require()
    backend = stores.new()
    yield backend
    await backend.close()
    await stores.close()


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


def _attempt(entry: OutboxRecord, outcome: Outcome = "success") -> AttemptRecord:
    return AttemptRecord(
        outbox_id=entry.id, number=entry.attempts, started_at=time.time(), duration_ms=1.0, outcome=outcome
    )


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


def _claiming(
    now: float, client_id: str, resource_id: str
) -> tuple[TransactionRecord, ResourceRecord, list[OutboxRecord]]:
    """A transaction of ``client_id`` writing the account ``resource_id``."""
    txn, resource, outbox = _transaction(now, deliveries=1)
    txn = msgspec.structs.replace(txn, client_id=client_id)
    resource = msgspec.structs.replace(resource, kind="account", id=resource_id, client_id=client_id)
    return txn, resource, outbox


async def test_accept_never_takes_over_another_clients_resource(store: Store) -> None:
    now, account = time.time(), new_id("acc")
    first, owned, work = _claiming(now, "alpha", account)
    await store.accept(first, [owned], work)
    txn, resource, outbox = _claiming(now, "beta", account)
    with pytest.raises(ResourceTaken, match="another client"):
        await store.accept(txn, [resource], outbox)
    assert await store.get_transaction(txn.id) is None  # nothing of beta's write was stored
    stored = await store.get_resource("account", account)
    assert stored is not None
    assert stored.client_id == "alpha"
    assert stored.transaction_id != txn.id
    again, rewritten, more = _claiming(now, "alpha", account)  # its owner may write it again
    await store.accept(again, [rewritten], more)
    assert (await store.get_resource("account", account)).transaction_id == again.id  # type: ignore[union-attr]


async def test_of_concurrent_writers_of_one_new_resource_exactly_one_stores(store: Store) -> None:
    now, account = time.time(), new_id("acc")
    writes = [_claiming(now, client, account) for client in ("alpha", "beta", "alpha", "gamma", "beta", "alpha")]
    outcomes = await asyncio.gather(
        *(store.accept(t, [r], o, only_if={("account", account): "absent"}) for t, r, o in writes),
        return_exceptions=True,
    )
    assert sum(outcome is None for outcome in outcomes) == 1, outcomes
    assert all(isinstance(o, ResourceTaken) for o in outcomes if o is not None)
    winner = next(w for w, o in zip(writes, outcomes, strict=True) if o is None)
    stored = await store.get_resource("account", account)
    assert stored is not None
    assert (stored.client_id, stored.transaction_id) == (winner[0].client_id, winner[0].id)
    for (txn, _, _), outcome in zip(writes, outcomes, strict=True):
        assert (await store.get_transaction(txn.id) is None) == (outcome is not None)


async def test_a_resource_that_must_be_unchanged_is_written_again_only_with_its_body(store: Store) -> None:
    now, reference = time.time(), new_id("ref")
    first, owned, work = _claiming(now, "alpha", reference)
    await store.accept(first, [owned], work, only_if={("account", reference): "unchanged"})  # new: fine
    same, rewritten, more = _claiming(now, "alpha", reference)
    await store.accept(same, [rewritten], more, only_if={("account", reference): "unchanged"})
    other, changed, rest = _claiming(now, "alpha", reference)
    changed = msgspec.structs.replace(changed, body=b'{"other": 1}')
    with pytest.raises(ResourceTaken, match="another body"):
        await store.accept(other, [changed], rest, only_if={("account", reference): "unchanged"})
    assert await store.get_transaction(other.id) is None  # nothing of the refused write was stored
    stored = await store.get_resource("account", reference)
    assert stored is not None
    assert (stored.body, stored.transaction_id) == (owned.body, same.id)


async def test_a_refused_resource_is_named_whatever_its_id_holds(store: Store) -> None:
    """Redis reports the refusal as text: an id with spaces in it was read as part of the reason."""
    now, account = time.time(), f"ACME HEALTH PLAN {new_id('x')}"
    first, owned, work = _claiming(now, "alpha", account)
    await store.accept(first, [owned], work)
    txn, resource, outbox = _claiming(now, "beta", account)
    with pytest.raises(ResourceTaken) as taken:
        await store.accept(txn, [resource], outbox)
    assert (taken.value.kind, taken.value.resource_id, taken.value.reason) == (
        "account",
        account,
        "belongs to another client",
    )


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


def _update(now: float, order_key: str | None) -> tuple[TransactionRecord, ResourceRecord, list[OutboxRecord]]:
    """A transaction with one delivery under ``order_key``."""
    txn, resource, outbox = _transaction(now, deliveries=1)
    outbox[0].order_key = order_key
    return txn, resource, outbox


async def _queue(store: Store, now: float, *keys: str | None) -> list[str]:
    ids = []
    for key in keys:
        txn, resource, outbox = _update(now, key)
        await store.accept(txn, [resource], outbox)
        ids.append(outbox[0].id)
    return ids


async def _finish(store: Store, entry: OutboxRecord, state: Literal["done", "dead"], now: float) -> None:
    entry.state, entry.attempts, entry.updated_at = state, entry.attempts + 1, now
    await store.record_attempt(entry, _attempt(entry, "success" if state == "done" else "reject"), next_attempt_at=None)


async def test_entries_with_one_order_key_are_claimed_one_at_a_time_in_order(store: Store) -> None:
    now = time.time()
    older, other, newer, newest, free = await _queue(store, now, "erp:account:A", "erp:account:B",
                                                     "erp:account:A", "erp:account:A", None)  # fmt: skip
    claimed = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert {e.id for e in claimed} == {older, other, free}
    first = next(e for e in claimed if e.id == older)
    for entry in claimed:
        if entry is not first:
            await _finish(store, entry, "done", now)

    # It fails and waits for its retry: what came after it waits too, and is not "due" meanwhile.
    first.state, first.attempts, first.updated_at = "pending", 1, now
    await store.record_attempt(first, _attempt(first, "retry"), next_attempt_at=now + 60)
    assert await store.claim_due(now + 1, 10, lease_s=30, owner="a") == []
    assert await store.next_due_at() == pytest.approx(now + 60)
    assert (await store.outbox_stats(now))[0] == 3  # held entries count as waiting

    (first,) = await store.claim_due(now + 60, 10, lease_s=30, owner="a")
    assert first.id == older
    await _finish(store, first, "done", now + 60)
    (second,) = await store.claim_due(now + 60, 10, lease_s=30, owner="a")
    assert second.id == newer
    await _finish(store, second, "dead", now + 60)  # a dead entry no longer holds the rest back
    (third,) = await store.claim_due(now + 60, 10, lease_s=30, owner="a")
    assert third.id == newest


async def test_a_replayed_entry_queues_behind_what_is_waiting_for_its_key(store: Store) -> None:
    now = time.time()
    (old,) = await _queue(store, now, "erp:account:A")
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    await _finish(store, entry, "dead", now)
    (waiting,) = await _queue(store, now, "erp:account:A")
    (held,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert held.id == waiting
    assert [e.id for e in await store.replay([old], now)] == [old]
    assert await store.claim_due(now, 10, lease_s=30, owner="a") == []  # one at a time
    # A lease that runs out is taken over as before; the key stays with the entry that held it.
    (again,) = await store.claim_due(now + 31, 10, lease_s=30, owner="b")
    assert again.id == waiting
    await _finish(store, again, "done", now + 31)
    (replayed,) = await store.claim_due(now + 31, 10, lease_s=30, owner="b")
    assert replayed.id == old
    assert replayed.order_key == "erp:account:A"


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
    by_id = sorted(ids)  # ids made in the same millisecond sort by their random part
    assert [e.id for e in await store.list_dead(DeadLetterFilter(), 10, None)] == by_id
    assert [e.id for e in await store.list_dead(DeadLetterFilter(error_kind="retriable"), 10, None)] == ids[1:]
    assert await store.list_dead(DeadLetterFilter(target="other"), 10, None) == []
    assert [e.id for e in await store.list_dead(DeadLetterFilter(), 10, by_id[0])] == by_id[1:]
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


async def test_records_round_trip_exactly(store: Store) -> None:
    now = time.time() + 0.1 + 0.2  # a float with all 17 digits in use
    txn, resource, outbox = _transaction(now, deliveries=1)
    txn.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    resource.body = bytes(range(256))
    outbox[0].payload = b"\x00\xff\x80binary\r\n" + bytes(range(256))
    await store.accept(txn, [resource], outbox)
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert (entry.payload, entry.next_attempt_at, entry.created_at) == (outbox[0].payload, now, now)
    assert (entry.result, entry.error_kind, entry.error, entry.budget_started_at) == (None, None, None, None)
    entry.state, entry.attempts, entry.budget_attempts, entry.budget_started_at = "done", 1, 1, now + 1e-7
    entry.result, entry.updated_at = {"reference": "R-ü", "status": ""}, now + 1 / 3
    attempt = AttemptRecord(
        outbox_id=entry.id, number=1, started_at=now, duration_ms=0.125, outcome="success", status=201, error=None
    )
    await store.record_attempt(entry, attempt, next_attempt_at=None)
    snapshot = await store.get_transaction(txn.id)
    assert snapshot is not None
    stored_txn, (stored,), attempts = snapshot
    assert stored_txn.trace_id == txn.trace_id
    assert stored_txn.updated_at == entry.updated_at
    assert attempts == [attempt]
    assert stored.payload == outbox[0].payload
    assert (stored.result, stored.budget_started_at, stored.updated_at) == (entry.result, now + 1e-7, now + 1 / 3)
    assert stored.lease_token == entry.lease_token
    assert await store.get_resource("journal", txn.resource_id) == resource

    # An upsert keeps client_id and created_at, replaces the rest (a null transaction id included).
    changed = ResourceRecord(
        kind="journal", id=resource.id, client_id="other", body=b"new", created_at=now + 5, updated_at=now + 5
    )
    await store.put_resources([changed])
    assert await store.get_resource("journal", resource.id) == ResourceRecord(
        kind="journal", id=resource.id, client_id="c1", body=b"new", created_at=now, updated_at=now + 5
    )


# Sizes around each length class of the packed ACCEPT's strings (MessagePack fixstr, str 8, 16, 32).
@pytest.mark.parametrize("size", [0, 1, 31, 32, 255, 256, 65_535, 65_536, 300_000])
async def test_bytes_of_every_length_round_trip(store: Store, size: int) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    pattern = bytes(range(256))
    resource.body = (pattern * (size // 256 + 1))[:size]
    outbox[0].payload = (pattern[::-1] * (size // 256 + 1))[:size]
    await store.accept(txn, [resource], outbox)
    assert await store.get_resource("journal", txn.resource_id) == resource
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert entry.payload == outbox[0].payload


# Redis only: several hub instances sharing one outbox.


async def _accept_all(store: Store, made: list[tuple[TransactionRecord, ResourceRecord, list[OutboxRecord]]]) -> None:
    for start in range(0, len(made), 50):  # a client's pool holds 100 connections by default
        await asyncio.gather(*(store.accept(t, [r], o) for t, r, o in made[start : start + 50]))


async def _accept_many(store: Store, now: float, count: int) -> list[str]:
    made = [_transaction(now - i * 0.001, deliveries=1) for i in range(count)]
    await _accept_all(store, made)
    return [outbox[0].id for _, _, outbox in made]


@pytest.mark.redis
async def test_two_instances_claim_every_entry_exactly_once(redis_stores: RedisStores) -> None:
    first, second = redis_stores.new(), redis_stores.new()  # two clients, two connection pools
    now = time.time()
    ids = await _accept_many(first, now, 200)
    rng = random.Random(5)
    claims: Counter[str] = Counter()
    owners: dict[str, str] = {}
    for _ in range(200):
        calls = [(s, name) for s, name in ((first, "a"), (second, "b")) for _ in range(3)]
        rounds = await asyncio.gather(
            *(s.claim_due(now, rng.randint(1, 5), lease_s=60, owner=name) for s, name in calls)
        )
        for (_, name), entries in zip(calls, rounds, strict=True):
            for entry in entries:
                claims[entry.id] += 1
                owners[entry.id] = name
        if not any(rounds):
            break
    assert sorted(claims) == sorted(ids)
    assert set(claims.values()) == {1}
    assert set(owners.values()) == {"a", "b"}  # both instances got work
    assert await first.claim_due(now + 59, 500, lease_s=60, owner="a") == []
    waiting, oldest, dead = await first.outbox_stats(now)
    assert (waiting, dead) == (200, 0)
    assert oldest == pytest.approx(0.199)


@pytest.mark.redis
async def test_an_expired_lease_is_taken_over_by_another_instance(redis_stores: RedisStores) -> None:
    first, second = redis_stores.new(), redis_stores.new()
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=2)
    await first.accept(txn, [resource], outbox)
    mine = await first.claim_due(now, 10, lease_s=5, owner="a")
    assert await second.claim_due(now + 4.9, 10, lease_s=5, owner="b") == []
    # Instance a stalls (or died); its leases run out and b takes the work over with a newer token.
    theirs = await second.claim_due(now + 5, 10, lease_s=5, owner="b")
    assert sorted(e.id for e in theirs) == sorted(e.id for e in mine)
    assert min(e.lease_token for e in theirs) > max(e.lease_token for e in mine)
    client = redis_stores.clients[0]
    assert await client.hget(f"{redis_stores.prefix}outbox:{theirs[0].id}", "lease_owner") == b"b"
    for entry in mine:
        entry.state, entry.attempts, entry.updated_at = "done", 1, now
        with pytest.raises(LeaseLost):
            await first.record_attempt(entry, _attempt(entry), next_attempt_at=None)
        with pytest.raises(LeaseLost):
            await first.release(entry, now)
    for entry in theirs:
        entry.state, entry.attempts, entry.updated_at = "done", 1, now + 6
        transaction = await second.record_attempt(entry, _attempt(entry), next_attempt_at=None)
    assert transaction.state == "completed"
    snapshot = await first.get_transaction(txn.id)
    assert snapshot is not None
    assert len(snapshot[2]) == 2  # only b's attempts were recorded
    assert await first.outbox_stats(now + 6) == (0, None, 0)
    assert await first.next_due_at() is None


@pytest.mark.redis
async def test_outbox_stats_and_next_due_follow_pending_and_leased_entries(redis_stores: RedisStores) -> None:
    store = redis_stores.new()
    now = time.time()
    assert await store.outbox_stats(now) == (0, None, 0)
    assert await store.next_due_at() is None
    made = [_transaction(now - age, deliveries=1) for age in (30.0, 20.0, 10.0)]
    for (txn, resource, outbox), due_in in zip(made, (0.0, 100.0, 200.0), strict=True):
        outbox[0].next_attempt_at = now + due_in
        await store.accept(txn, [resource], outbox)
    assert await store.next_due_at() == now
    assert await store.outbox_stats(now) == (3, 30.0, 0)
    (oldest,) = await store.claim_due(now, 10, lease_s=50, owner="a")
    assert await store.next_due_at() == now + 50  # the lease ends before the next entry is due
    assert await store.outbox_stats(now) == (3, 30.0, 0)  # in flight still counts as waiting
    oldest.state, oldest.attempts, oldest.error_kind, oldest.updated_at = "dead", 1, "rejected", now
    await store.record_attempt(oldest, _attempt(oldest, "reject"), next_attempt_at=None)
    assert await store.next_due_at() == now + 100
    assert await store.outbox_stats(now) == (2, 20.0, 1)
    await store.replay([oldest.id], now + 1)
    assert await store.next_due_at() == now + 1
    assert await store.outbox_stats(now) == (3, 30.0, 0)


@pytest.mark.redis
async def test_accept_refuses_an_existing_id_and_writes_nothing(redis_stores: RedisStores) -> None:
    store = redis_stores.new()
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    await store.accept(txn, [resource], outbox)
    before = await redis_stores.keys()
    with pytest.raises(redis.exceptions.ResponseError, match="duplicate transaction"):
        await store.accept(txn, [], [])
    other, other_resource, other_outbox = _transaction(now, deliveries=2)
    other_outbox[1].id = outbox[0].id  # already stored under txn
    with pytest.raises(redis.exceptions.ResponseError, match="duplicate outbox entry"):
        await store.accept(other, [other_resource], other_outbox)
    assert await redis_stores.keys() == before
    assert await store.get_transaction(other.id) is None
    with pytest.raises(ValueError, match="cannot contain"):
        await store.get_resource("a:b", "c")


@pytest.mark.redis
async def test_the_idempotency_record_is_written_with_the_transaction_or_not_at_all(
    redis_stores: RedisStores,
) -> None:
    store, raw = redis_stores.new(), redis_stores.clients[0]
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    record = FinalWrite(key=f"{redis_stores.prefix}idem:k1", value=b"D<fp>\n<answer>", ttl_ms=60_000)
    await store.accept(txn, [resource], outbox, record)
    assert await raw.get(record.key) == record.value
    assert 59_000 < await raw.pttl(record.key) <= 60_000
    again = FinalWrite(key=f"{redis_stores.prefix}idem:k2", value=b"D<fp>\n<other>", ttl_ms=60_000)
    with pytest.raises(redis.exceptions.ResponseError, match="duplicate transaction"):
        await store.accept(txn, [], [], again)  # refused: neither the work nor its record is written
    assert await raw.exists(again.key) == 0


async def test_the_sqlite_store_runs_the_idempotency_statement_in_the_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
    await store.submit(lambda db: db.execute("create table records(key text primary key, value blob)"))
    txn, resource, outbox = _transaction(time.time(), deliveries=1)
    record = FinalStatement(sql="insert into records values (?, ?)", params=("k1", b"answer"))
    await store.accept(txn, [resource], outbox, record)
    assert await store.submit(lambda db: db.execute("select value from records").fetchall()) == [(b"answer",)]
    again = FinalStatement(sql="insert into records values (?, ?)", params=("k2", b"other"))
    with pytest.raises(sqlite3.IntegrityError):
        await store.accept(txn, [], [], again)  # refused: neither the work nor its record is written
    assert await store.submit(lambda db: db.execute("select key from records").fetchall()) == [("k1",)]
    with pytest.raises(ValueError, match="cannot write a Redis idempotency record"):
        await store.accept(_transaction(time.time())[0], [], [], FinalWrite(key="k", value=b"v", ttl_ms=1))
    await store.close()


@pytest.mark.redis
async def test_the_redis_store_refuses_an_sql_idempotency_record_rather_than_drop_it(
    redis_stores: RedisStores,
) -> None:
    store = redis_stores.new()
    txn, resource, outbox = _transaction(time.time(), deliveries=1)
    with pytest.raises(ValueError, match="cannot run an SQL idempotency record"):
        await store.accept(txn, [resource], outbox, FinalStatement(sql="select 1", params=()))
    assert await store.get_transaction(txn.id) is None


@pytest.mark.redis
async def test_the_audit_record_is_pushed_with_the_transaction_or_not_at_all(redis_stores: RedisStores) -> None:
    store, raw = redis_stores.new(), redis_stores.clients[0]
    txn, resource, outbox = _transaction(time.time(), deliveries=1)
    pending = f"{redis_stores.prefix}audit:pending"
    idempotency = FinalWrite(key=f"{redis_stores.prefix}idem:k1", value=b"D<fp>\n<answer>", ttl_ms=60_000)
    await store.accept(txn, [resource], outbox, idempotency, AuditPush(key=pending, value=b"<entry 1>"))
    assert await raw.lrange(pending, 0, -1) == [b"<entry 1>"]
    assert await raw.get(idempotency.key) == idempotency.value  # both companions, each in its place
    with pytest.raises(redis.exceptions.ResponseError, match="duplicate transaction"):
        await store.accept(txn, [], [], None, AuditPush(key=pending, value=b"<entry 2>"))
    assert await raw.lrange(pending, 0, -1) == [b"<entry 1>"]
    with pytest.raises(ValueError, match="cannot run SQLite work"):
        await store.accept(_transaction(time.time())[0], [], [], None, InTransaction(lambda db: None))


async def test_the_sqlite_store_runs_the_audit_work_in_the_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
    await store.submit(lambda db: db.execute("create table seen(txn text primary key)"))
    txn = _transaction(time.time())[0]

    def note(txn_id: str) -> InTransaction:
        return InTransaction(lambda db: db.execute("insert into seen values (?)", (txn_id,)))

    await store.accept(txn, [], [], None, note(txn.id))
    with pytest.raises(sqlite3.IntegrityError):
        await store.accept(_transaction(time.time())[0], [], [], None, note(txn.id))  # its work fails: all undone
    assert await store.submit(lambda db: db.execute("select count(*) from transactions").fetchone()) == (1,)
    with pytest.raises(ValueError, match="cannot push onto a Redis audit log"):
        await store.accept(_transaction(time.time())[0], [], [], None, AuditPush(key="k", value=b"v"))
    await store.close()


@pytest.mark.redis
async def test_dead_letters_page_by_id_past_one_scan(redis_stores: RedisStores) -> None:
    store = redis_stores.new()
    now = time.time()
    made = [_transaction(now, deliveries=1) for _ in range(1200)]
    for i, (_, _, outbox) in enumerate(made):
        outbox[0].state, outbox[0].target, outbox[0].updated_at = "dead", f"t{i % 4}", now + i
        outbox[0].error_kind = "rejected"
    await _accept_all(store, made)
    wanted = sorted(o[0].id for _, _, o in made if o[0].target == "t3" and o[0].updated_at < now + 1000)
    where = DeadLetterFilter(target="t3", error_kind="rejected", dead_before=now + 1000)
    assert [e.id for e in await store.list_dead(where, 1000, None)] == wanted
    assert [e.id for e in await store.list_dead(where, 10, wanted[99])] == wanted[100:110]
    assert await store.list_dead(DeadLetterFilter(dead_after=now + 1200), 10, None) == []
    assert len(await store.list_dead(DeadLetterFilter(dead_after=now + 1199), 10, None)) == 1
    assert (await store.outbox_stats(now))[2] == 1200


@pytest.mark.redis
async def test_keys_stay_under_the_prefix(redis_stores: RedisStores) -> None:
    store = redis_stores.new()
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    await store.accept(txn, [resource], outbox)
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
    entry.state, entry.attempts, entry.updated_at = "done", 1, now
    await store.record_attempt(entry, _attempt(entry), next_attempt_at=None)
    p = redis_stores.prefix
    assert await redis_stores.keys() == {
        f"{p}txn:{txn.id}",
        f"{p}txn-outbox:{txn.id}",
        f"{p}outbox:{entry.id}",
        f"{p}attempts:{entry.id}",
        f"{p}resource:journal:{resource.id}",
        f"{p}lease-token",
    }  # the sorted sets emptied out, so Redis dropped them


@pytest.mark.redis
async def test_close_leaves_a_passed_in_client_open(redis_stores: RedisStores) -> None:
    store = redis_stores.new()
    await store.close()
    assert await store.ping()
    owned = RedisStore.from_url(REDIS_URL, prefix=redis_stores.prefix)
    assert await owned.ping()
    await owned.close()
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStore(Redis.from_url(REDIS_URL, decode_responses=True))


@pytest.mark.redis
async def test_an_unreachable_redis_raises_connection_error(redis_stores: RedisStores) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStore(redis_stores.client(f"redis://127.0.0.1:{port}/0"), prefix=redis_stores.prefix)
    with pytest.raises(redis.exceptions.ConnectionError):
        await store.claim_due(time.time(), 10, lease_s=30, owner="a")
    with pytest.raises(redis.exceptions.ConnectionError):
        await store.ping()


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({b"appendonly": b"yes", b"save": b""}, None),
        ({"appendonly": "yes", "save": "3600 1"}, None),
        ({"appendonly": "no", "save": "3600 1 300 100"}, "periodic snapshots"),
        ({"appendonly": "no", "save": ""}, "keeps nothing on disk"),
    ],
)
def test_a_redis_that_would_lose_accepted_work_is_named(config: dict[Any, Any], says: str | None) -> None:
    why = volatility(config)
    if says is None:
        assert why is None
    else:
        assert why is not None
        assert says in why


@pytest.mark.redis
async def test_the_store_asks_the_real_server_how_it_persists(redis_stores: RedisStores) -> None:
    raw = redis_stores.clients[0]
    config = {**await raw.config_get("appendonly"), **await raw.config_get("save")}
    assert await redis_stores.new().volatility() == volatility(config)


# --- named sequences (X12 interchange control numbers) ---------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on the same storage: two hub processes, or one process before and after a restart."""
    if request.param == "sqlite":
        first = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
        second = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
        yield first, second
        await first.close()
        await second.close()
        return
    stores = RedisStores()
    await stores.require()
    yield stores.new(), stores.new()
    await stores.close()


async def test_a_sequence_starts_where_told_counts_up_and_wraps(two_stores: tuple[Store, Store]) -> None:
    store, _ = two_stores
    assert [await store.next_number("x12:a", 5, 4) for _ in range(4)] == [4, 5, 1, 2]
    assert await store.next_number("x12:b", 5, 3) == 3  # sequences are independent
    assert await store.next_number("x12:a", 5, 4) == 3


async def test_a_sequence_is_shared_and_survives_a_restart(two_stores: tuple[Store, Store]) -> None:
    first, second = two_stores
    drawn = await asyncio.gather(*(s.next_number("x12:shared", 999_999_999, 1000) for s in (first, second) * 50))
    assert sorted(drawn) == list(range(1000, 1100))  # never the same number twice, none skipped
    await first.close()  # a restart: the sequence goes on from the store, not from the clock
    assert await second.next_number("x12:shared", 999_999_999, 1) == 1100


async def test_the_sqlite_store_keeps_working_on_a_database_a_later_release_added_columns_to(tmp_path: Path) -> None:
    """Rolling back to this release after a later one added columns: every write names its columns."""
    path = tmp_path / "hub.sqlite3"
    await SqliteStore(path, durability="normal").close()
    await SqliteIdempotencyStore(path).aclose()  # its table lives in the same file
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            db.execute(f"alter table {table} add column added_later text")
    store = SqliteStore(path, durability="normal")
    try:
        now = time.time()
        txn, resource, outbox = _transaction(now, deliveries=1)
        await store.accept(txn, [resource], outbox)
        await store.put_resources([resource])
        (entry,) = await store.claim_due(now, 10, lease_s=30, owner="a")
        entry.state, entry.attempts, entry.updated_at = "done", 1, now
        assert (await store.record_attempt(entry, _attempt(entry), next_attempt_at=None)).state == "completed"
        assert await store.next_number("seq", 9, 1) == 1
        assert await store.get_resource("journal", txn.resource_id) == resource
        records = SqliteIdempotencyStore(path, submit=store.submit)
        response = StoredResponse(status=202, headers=[], body=b"{}")
        assert await records.begin("k", "fp", 60) == Started()
        await records.complete("k", response, 60)
        final = records.final_write("k2", "fp", response, 60)
        assert final is not None
        await store.submit(lambda db: db.execute(final.sql, final.params))
        assert await records.begin("k2", "fp", 60) == Replay(response)
        await records.aclose()
    finally:
        await store.close()


async def test_entries_held_behind_one_an_earlier_release_finished_are_released(redis_stores: RedisStores) -> None:
    """A rolling upgrade: a worker of the release before order keys finishes the head of a queue
    without releasing what waits behind it; ``repair_order`` lets the next one go."""
    store = redis_stores.new()
    now = time.time()
    first, second = await _queue(store, now, "erp:account:A", "erp:account:A")
    (head,) = await store.claim_due(now, 10, lease_s=30, owner="old")
    client = redis_stores.clients[0]
    # What the earlier release's RECORD script did: state and index sets, but not the order queue.
    await client.hset(f"{redis_stores.prefix}outbox:{head.id}", "state", "done")
    await client.zrem(f"{redis_stores.prefix}inflight", head.id)
    await client.zrem(f"{redis_stores.prefix}waiting", head.id)
    assert await store.claim_due(now, 10, lease_s=30, owner="new") == []  # held for good without repair
    assert await store.repair_order() == 1
    assert [e.id for e in await store.claim_due(now, 10, lease_s=30, owner="new")] == [second]
    assert await store.repair_order() == 0  # nothing else is wrong
    assert first == head.id


async def test_repair_order_changes_nothing_that_is_in_order(store: Store) -> None:
    now = time.time()
    head, _, _ = await _queue(store, now, "erp:account:A", "erp:account:A", "erp:account:B")
    claimed = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert await store.repair_order() == 0
    assert await store.claim_due(now, 10, lease_s=30, owner="a") == []
    # The head of A's queue: claimed with B's, in an order ids decide (ids made in one millisecond
    # order at random), so it is picked by id: finishing B's instead would release nothing.
    await _finish(store, next(e for e in claimed if e.id == head), "done", now)
    assert await store.repair_order() == 0
    assert len(await store.claim_due(now, 10, lease_s=30, owner="a")) == 1


async def test_a_delivery_is_read_back_by_its_id(store: Store) -> None:
    now = time.time()
    txn, resource, outbox = _transaction(now, deliveries=1)
    outbox[0].order_key = "t0:journal:J1"
    await store.accept(txn, [resource], outbox)
    snapshot = await store.get_transaction(txn.id)
    assert snapshot is not None
    assert await store.get_delivery(outbox[0].id) == snapshot[1][0]
    assert (await store.get_delivery(outbox[0].id)).order_key == "t0:journal:J1"  # type: ignore[union-attr]
    assert await store.get_delivery("dlv_missing") is None


async def _finish_all(store: Store, now: float) -> None:
    for entry in await store.claim_due(now, 10, lease_s=30, owner="a"):
        await _finish(store, entry, "done", now)


@pytest.mark.redis
async def test_an_entry_without_an_order_key_leaves_no_queue_in_redis(redis_stores: RedisStores) -> None:
    """A journal's delivery has no order to keep (its resource is written once): no queue, no counter."""
    store, now = redis_stores.new(), time.time()
    await _queue(store, now, None, None)
    assert not {k for k in await redis_stores.keys() if "order" in k.removeprefix(redis_stores.prefix)}
    await _finish_all(store, now)
    await _queue(store, now, "erp:account:A")  # while a keyed one does take its place
    ordered = {k.removeprefix(redis_stores.prefix) for k in await redis_stores.keys() if "order" in k}
    assert ordered == {"order-seq", "order-queues", "order:erp:account:A"}


async def test_an_entry_without_an_order_key_takes_no_place_in_sqlite(tmp_path: Path) -> None:
    store, now = SqliteStore(tmp_path / "hub.sqlite3", durability="normal"), time.time()
    try:
        await _queue(store, now, None, None, "erp:account:A")
        places = store._db.execute("select order_key, order_seq from outbox order by order_seq").fetchall()
        taken = store._db.execute("select value from counters where name = 'delivery-order'").fetchone()[0]
        assert [tuple(p) for p in places] == [(None, None), (None, None), ("erp:account:A", 1)]
        assert taken == 1
    finally:
        await store.close()


async def _held_behind(store: Store, entry_id: str) -> str | None:
    entry = await store.get_delivery(entry_id)
    assert entry is not None
    snapshot = await store.get_transaction(entry.transaction_id)
    assert snapshot is not None
    (read,) = snapshot[1]
    return read.held_behind


async def test_a_transaction_read_names_what_its_held_delivery_waits_for(store: Store) -> None:
    now = time.time()
    first, second, third, other = await _queue(store, now, "erp:account:A", "erp:account:A", "erp:account:A",
                                               "erp:account:B")  # fmt: skip
    first_txn = (await store.get_delivery(first)).transaction_id  # type: ignore[union-attr]
    assert await _held_behind(store, first) is None  # the head goes first
    assert await _held_behind(store, second) == first_txn
    assert await _held_behind(store, third) == first_txn  # the one actually blocking: the oldest
    assert await _held_behind(store, other) is None  # another key
    claimed = await store.claim_due(now, 10, lease_s=30, owner="a")
    assert await _held_behind(store, second) == first_txn  # in flight still holds it
    for entry in claimed:
        await _finish(store, entry, "done", now)
    second_txn = (await store.get_delivery(second)).transaction_id  # type: ignore[union-attr]
    assert await _held_behind(store, second) is None
    assert await _held_behind(store, third) == second_txn
    assert (await store.get_delivery(third)).held_behind is None  # type: ignore[union-attr]  # only reads of a transaction


async def test_sqlite_releases_what_an_earlier_release_left_held_behind_a_finished_entry(tmp_path: Path) -> None:
    """The SQLite form of the rolling upgrade above: a worker of an earlier release finishes the head
    of a queue without releasing the entry behind it; ``repair_order`` lets it go."""
    store, now = SqliteStore(tmp_path / "hub.sqlite3", durability="normal"), time.time()
    try:
        head, second = await _queue(store, now, "erp:account:A", "erp:account:A")
        await store.submit(lambda db: db.execute("update outbox set state = 'done' where id = ?", (head,)))
        assert await store.claim_due(now, 10, lease_s=30, owner="new") == []  # held for good without repair
        assert await store.repair_order() == 1
        assert [e.id for e in await store.claim_due(now, 10, lease_s=30, owner="new")] == [second]
        assert await store.repair_order() == 0
    finally:
        await store.close()


async def test_sqlite_holds_the_queued_entries_of_a_database_made_before_entries_were_marked_held(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.sqlite3"
    store, now = SqliteStore(path, durability="normal"), time.time()
    head, _, _, free = await _queue(store, now, "erp:account:A", "erp:account:A", "erp:account:A", None)
    await store.close()
    with sqlite3.connect(path) as db:  # the earlier release's schema: no column saying what is held
        db.execute("drop index outbox_ready")
        db.execute("alter table outbox drop column held")
    store = SqliteStore(path, durability="normal")
    try:
        assert {e.id for e in await store.claim_due(now, 10, lease_s=30, owner="a")} == {head, free}
        assert await store.next_due_at() == pytest.approx(now + 30)  # the leases: the rest waits for the head
    finally:
        await store.close()


async def test_a_sqlite_claim_does_not_walk_the_entries_held_behind_a_queue_head(tmp_path: Path) -> None:
    """Work per claim, counted in SQLite virtual-machine steps (not time): with 20 or with 2,000
    updates of one account queued, taking the head costs about the same. Deciding at each claim
    which entries wait walked them all: draining 4,000 updates of one account took 9 s."""
    store, now = SqliteStore(tmp_path / "hub.sqlite3", durability="normal"), time.time()
    steps = [0]

    def count(db: sqlite3.Connection) -> None:
        def tick() -> int:
            steps[0] += 1
            return 0

        db.set_progress_handler(tick, 100)

    async def steps_to_claim_the_head() -> int:
        steps[0] = 0
        await store.submit(count)
        (head,) = await store.claim_due(now, 64, lease_s=30, owner="a")
        await store.submit(lambda db: db.set_progress_handler(None, 0))
        await _finish(store, head, "done", now)
        return steps[0]

    try:
        await _queue(store, now, *["erp:account:A"] * 20)
        few = await steps_to_claim_the_head()
        await _queue(store, now, *["erp:account:A"] * 1980)
        many = await steps_to_claim_the_head()
        assert many < few + 50, (few, many)
    finally:
        await store.close()
