"""Idempotency records over both backends (``stores`` is parametrized: SQLite and real Redis).

The stores made by the fixtures have an in-flight lease of ``SHORT_LEASE_S`` so that "a crashed
request does not block its key for long" can be waited out in a test.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import policies.idempotency
from gateway.store import SqliteStore
from policies._idempotency_core import encode_response
from policies.idempotency import (
    FinalStatement,
    FinalWrite,
    IdempotencyStore,
    IdempotencyUnavailable,
    InFlight,
    Mismatch,
    RedisIdempotencyStore,
    Replay,
    SqliteIdempotencyStore,
    Started,
    StoredResponse,
    fingerprint,
)
from tests.unit.policies.conftest import SHORT_LEASE_S, RedisClients, StoreBackend, closed_port_url, require_redis

DAY_S = 86_400.0
ORIGINAL = fingerprint("POST", "/v1/journals", b'{"amount":"10.00"}')
DIFFERENT = fingerprint("POST", "/v1/journals", b'{"amount":"99.00"}')
RESPONSE = StoredResponse(
    status=202,
    headers=[("content-type", "application/json"), ("location", "/v1/transactions/txn_1")],
    body=b'{"id":"txn_1"}',
)


async def test_first_begin_starts(store: IdempotencyStore, unique_key: str) -> None:
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Started()


async def test_same_request_while_in_flight_is_in_flight(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == InFlight()


async def test_different_request_while_in_flight_is_a_mismatch(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    assert await store.begin(unique_key, DIFFERENT, DAY_S) == Mismatch()


async def test_same_request_after_completion_replays(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.complete(unique_key, RESPONSE, DAY_S)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)  # as often as asked


async def test_different_request_after_completion_is_a_mismatch(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.complete(unique_key, RESPONSE, DAY_S)
    assert await store.begin(unique_key, DIFFERENT, DAY_S) == Mismatch()


async def test_keys_are_independent(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    assert await store.begin(unique_key + "-other", DIFFERENT, DAY_S) == Started()


async def test_completed_record_expires_after_its_ttl(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, 0.3)
    await store.complete(unique_key, RESPONSE, 0.3)
    assert isinstance(await store.begin(unique_key, ORIGINAL, 0.3), Replay)
    await asyncio.sleep(0.4)
    assert await store.begin(unique_key, DIFFERENT, DAY_S) == Started()


async def test_in_flight_record_lapses_after_the_lease_not_the_ttl(store: IdempotencyStore, unique_key: str) -> None:
    """A request that crashed without complete or release blocks its key for the lease only."""
    await store.begin(unique_key, ORIGINAL, DAY_S)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == InFlight()
    await asyncio.sleep(SHORT_LEASE_S + 0.1)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Started()


async def test_completion_outlives_the_lease(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.complete(unique_key, RESPONSE, DAY_S)
    await asyncio.sleep(SHORT_LEASE_S + 0.1)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)


async def test_release_lets_a_retry_start(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.release(unique_key)
    assert await store.begin(unique_key, DIFFERENT, DAY_S) == Started()


async def test_release_never_forgets_a_completed_record(store: IdempotencyStore, unique_key: str) -> None:
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.complete(unique_key, RESPONSE, DAY_S)
    await store.release(unique_key)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)


async def test_release_and_complete_of_an_unknown_key_store_nothing(store: IdempotencyStore, unique_key: str) -> None:
    """Without the record begin wrote there is no fingerprint to attach a response to."""
    await store.release(unique_key)
    await store.complete(unique_key, RESPONSE, DAY_S)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Started()


async def test_twenty_concurrent_begins_start_exactly_once(stores: StoreBackend, unique_key: str) -> None:
    """Two instances (two SQLite connections, or two Redis clients) race for one key."""
    pair = (stores.new(), stores.new())
    results = await asyncio.gather(*(pair[i % 2].begin(unique_key, ORIGINAL, DAY_S) for i in range(20)))
    assert results.count(Started()) == 1
    assert results.count(InFlight()) == 19


async def test_a_second_instance_replays_what_the_first_completed(stores: StoreBackend, unique_key: str) -> None:
    first, second = stores.new(), stores.new()
    await first.begin(unique_key, ORIGINAL, DAY_S)
    assert await second.begin(unique_key, ORIGINAL, DAY_S) == InFlight()
    await first.complete(unique_key, RESPONSE, DAY_S)
    assert await second.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)


async def test_large_bodies_round_trip_byte_exact(store: IdempotencyStore, unique_key: str) -> None:
    body = os.urandom(1_048_576) + b"\n\x00\r\n\xff"  # binary, with the separators a codec might trip on
    response = StoredResponse(status=200, headers=[("x-odd", 'va"l\nue'), ("x-odd", "twice")], body=body)
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.complete(unique_key, response, DAY_S)
    replay = await store.begin(unique_key, ORIGINAL, DAY_S)
    assert isinstance(replay, Replay)
    assert replay.response.body == body
    assert replay.response == response


def test_sqlite_begin_is_atomic_across_threads(tmp_path: Path) -> None:
    """Twenty threads, each with its own connection, claim one key at the same instant."""
    path, barrier, results = tmp_path / "shared.sqlite3", threading.Barrier(20), []
    SqliteIdempotencyStore(path)._db.close()  # create the schema before the race

    def claim() -> None:
        store = SqliteIdempotencyStore(path)
        barrier.wait()
        results.append(asyncio.run(store.begin("k", ORIGINAL, DAY_S)))
        asyncio.run(store.aclose())

    threads = [threading.Thread(target=claim) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(Started()) == 1
    assert results.count(InFlight()) == 19


async def test_sqlite_shares_a_file_with_other_tables(tmp_path: Path, unique_key: str) -> None:
    path = tmp_path / "hub.sqlite3"
    other = SqliteIdempotencyStore(path)
    other._db.execute("create table transactions(id text primary key)")
    store = SqliteIdempotencyStore(path)
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Started()
    assert other._db.execute("pragma journal_mode").fetchone() == ("wal",)
    await store.aclose()
    await other.aclose()


async def test_sqlite_unwritable_file_is_unavailable(tmp_path: Path, unique_key: str) -> None:
    path = tmp_path / "ro.sqlite3"
    SqliteIdempotencyStore(path)._db.close()
    store = SqliteIdempotencyStore(path)
    store._db.execute("pragma query_only = on")  # stands in for a read-only or full disk
    with pytest.raises(IdempotencyUnavailable):
        await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.aclose()


@pytest.mark.redis
async def test_redis_down_is_unavailable(redis_clients: RedisClients, unique_key: str) -> None:
    store = RedisIdempotencyStore(redis_clients.new(closed_port_url()))
    started = time.perf_counter()
    with pytest.raises(IdempotencyUnavailable):
        await store.begin(unique_key, ORIGINAL, DAY_S)
    with pytest.raises(IdempotencyUnavailable):
        await store.complete(unique_key, RESPONSE, DAY_S)
    with pytest.raises(IdempotencyUnavailable):
        await store.release(unique_key)
    assert time.perf_counter() - started < 2.0


@pytest.mark.redis
async def test_redis_in_flight_record_has_the_lease_ttl(redis_clients: RedisClients, unique_key: str) -> None:
    store = RedisIdempotencyStore(redis_clients.new(), prefix=redis_clients.prefix, lease_s=60)
    await store.begin(unique_key, ORIGINAL, DAY_S)
    client = redis_clients.made[0]
    assert 59_000 < await client.pttl(redis_clients.prefix + unique_key) <= 60_000
    await store.complete(unique_key, RESPONSE, DAY_S)
    assert 86_399_000 < await client.pttl(redis_clients.prefix + unique_key) <= 86_400_000


@pytest.mark.redis
async def test_redis_final_write_is_the_record_complete_leaves(redis_clients: RedisClients, unique_key: str) -> None:
    store = RedisIdempotencyStore(redis_clients.new(), prefix=redis_clients.prefix, lease_s=60)
    client = redis_clients.made[0]
    await store.begin(unique_key, ORIGINAL, DAY_S)
    await store.complete(unique_key, RESPONSE, DAY_S)
    write = store.final_write(unique_key, ORIGINAL, RESPONSE, DAY_S)
    assert (write.key, write.ttl_ms) == (redis_clients.prefix + unique_key, 86_400_000)
    assert write.value == await client.get(write.key)
    await client.delete(write.key)
    await client.set(write.key, write.value, px=write.ttl_ms)  # as the hub's store writes it
    assert await store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)
    assert await store.begin(unique_key, DIFFERENT, DAY_S) == Mismatch()


async def test_sqlite_on_a_file_of_its_own_has_no_final_write(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "idempotency.sqlite3")
    assert store.final_write("k", ORIGINAL, RESPONSE, DAY_S) is None
    await store.aclose()


async def test_sqlite_final_write_commits_with_the_hub_transaction(tmp_path: Path, unique_key: str) -> None:
    hub_store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
    store = SqliteIdempotencyStore(hub_store.path, submit=hub_store.submit)
    try:
        assert await store.begin(unique_key, ORIGINAL, DAY_S) == Started()
        statement = store.final_write(unique_key, ORIGINAL, RESPONSE, DAY_S)
        assert statement is not None
        await hub_store.submit(lambda db: db.execute(statement.sql, statement.params))
        assert await store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)
        assert await store.begin(unique_key, DIFFERENT, DAY_S) == Mismatch()
    finally:
        await store.aclose()
        await hub_store.close()


# -- provisional records: a request that stored its work and waits for it ------------------------


@dataclass
class WritingBackend:
    """A backend whose ``final_write`` the hub's store writes (shared SQLite writer, or Redis)."""

    store: IdempotencyStore
    write: Callable[[FinalWrite | FinalStatement], Awaitable[object]]


@pytest.fixture(params=["sqlite-writer", pytest.param("redis", marks=pytest.mark.redis)])
async def writing(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WritingBackend]:
    if request.param == "redis":
        clients = RedisClients(require_redis())
        client = clients.new()

        async def set_key(write: FinalWrite | FinalStatement) -> object:
            assert isinstance(write, FinalWrite)
            return await client.set(write.key, write.value, px=write.ttl_ms)

        store = RedisIdempotencyStore(clients.new(), prefix=clients.prefix, lease_s=SHORT_LEASE_S)
        yield WritingBackend(store, set_key)
        await clients.close()
        return
    hub_store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
    sqlite_store = SqliteIdempotencyStore(hub_store.path, lease_s=SHORT_LEASE_S, submit=hub_store.submit)
    yield WritingBackend(sqlite_store, _runner(hub_store))
    await sqlite_store.aclose()
    await hub_store.close()


def _runner(hub_store: SqliteStore) -> Callable[[FinalWrite | FinalStatement], Awaitable[object]]:
    """Runs a final statement as the hub's SQLite store does: in its writer's transaction."""

    async def run(write: FinalWrite | FinalStatement) -> object:
        assert isinstance(write, FinalStatement)
        return await hub_store.submit(lambda db: db.execute(write.sql, write.params))

    return run


async def _provisional(backend: WritingBackend, key: str) -> None:
    """What a waiting request does: claim the key, then store its work with a provisional record."""
    assert await backend.store.begin(key, ORIGINAL, DAY_S) == Started()
    write = backend.store.final_write(key, ORIGINAL, RESPONSE, DAY_S, provisional=True)
    assert write is not None
    await backend.write(write)


async def test_a_provisional_record_is_in_flight_then_replays_once_its_owner_is_gone(
    writing: WritingBackend, unique_key: str
) -> None:
    await _provisional(writing, unique_key)
    assert await writing.store.begin(unique_key, ORIGINAL, DAY_S) == InFlight()  # its owner still waits
    assert await writing.store.begin(unique_key, DIFFERENT, DAY_S) == Mismatch()
    await asyncio.sleep(SHORT_LEASE_S + 0.1)  # the owner died mid-wait: its lease ran out
    assert await writing.store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)  # not Started
    assert await writing.store.begin(unique_key, DIFFERENT, DAY_S) == Mismatch()


async def test_a_provisional_record_released_replays_at_once(writing: WritingBackend, unique_key: str) -> None:
    await _provisional(writing, unique_key)
    await writing.store.release(unique_key)  # the waiting request failed after storing its work
    assert await writing.store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)
    await asyncio.sleep(SHORT_LEASE_S + 0.1)
    assert await writing.store.begin(unique_key, ORIGINAL, DAY_S) == Replay(RESPONSE)  # and for its whole TTL


async def test_a_provisional_record_completed_replays_the_final_answer(
    writing: WritingBackend, unique_key: str
) -> None:
    await _provisional(writing, unique_key)
    final = StoredResponse(status=200, headers=[("preference-applied", "wait=5")], body=b'{"state":"completed"}')
    await writing.store.complete(unique_key, final, DAY_S)
    assert await writing.store.begin(unique_key, ORIGINAL, DAY_S) == Replay(final)
    await asyncio.sleep(SHORT_LEASE_S + 0.1)
    assert await writing.store.begin(unique_key, ORIGINAL, DAY_S) == Replay(final)


async def test_a_restarted_single_node_replays_what_a_waiting_request_stored(tmp_path: Path) -> None:
    hub_store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal")
    crashed = SqliteIdempotencyStore(hub_store.path, lease_s=60, submit=hub_store.submit)
    await _provisional(WritingBackend(crashed, _runner(hub_store)), "k")
    await crashed.aclose()
    restarted = SqliteIdempotencyStore(hub_store.path, lease_s=60, submit=hub_store.submit)
    try:
        assert await restarted.begin("k", ORIGINAL, DAY_S) == InFlight()  # the lease has not run out
        assert restarted.forget_in_flight() == 1  # the serving process starts: its owner is gone
        assert await restarted.begin("k", ORIGINAL, DAY_S) == Replay(RESPONSE)
    finally:
        await restarted.aclose()
        await hub_store.close()


async def test_a_table_from_before_provisional_records_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    with sqlite3.connect(path) as db:  # as earlier releases made it, with a finished record
        db.execute(
            "create table idempotency_records(key text primary key, fingerprint text not null, response blob, "
            "expires_at real not null)"
        )
        db.execute(
            "insert into idempotency_records values (?, ?, ?, ?)",
            ("k", ORIGINAL, encode_response(RESPONSE), time.time() + DAY_S),
        )
    store = SqliteIdempotencyStore(path)
    try:
        assert await store.begin("k", ORIGINAL, DAY_S) == Replay(RESPONSE)
        assert await store.begin("new", ORIGINAL, DAY_S) == Started()
    finally:
        await store.aclose()


# -- the fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_sha256_hex_and_stable() -> None:
    value = fingerprint("POST", "/v1/journals", b"{}")
    assert len(value) == 64
    assert int(value, 16) >= 0
    assert value == fingerprint("post", "/v1/journals", b"{}")


@pytest.mark.parametrize(
    "other",
    [
        ("PUT", "/v1/journals", b"{}"),
        ("POST", "/v1/accounts", b"{}"),
        ("POST", "/v1/journals", b"{ }"),
        ("POST", "/v1/journal", b"s{}"),  # moving bytes between path and body changes the request
    ],
)
def test_fingerprint_tells_requests_apart(other: tuple[str, str, bytes]) -> None:
    assert fingerprint("POST", "/v1/journals", b"{}") != fingerprint(*other)


def test_public_surface() -> None:
    assert sorted(policies.idempotency.__all__) == [
        "Begin",
        "FinalStatement",
        "FinalWrite",
        "IdempotencyStore",
        "IdempotencyUnavailable",
        "InFlight",
        "LimitAndClaimUnavailable",
        "Mismatch",
        "RedisIdempotencyStore",
        "RedisLimitAndClaim",
        "Replay",
        "SqliteIdempotencyStore",
        "Started",
        "StoredResponse",
        "fingerprint",
    ]


async def test_a_restarted_single_node_forgets_keys_left_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "idem.sqlite3"
    crashed = SqliteIdempotencyStore(path)
    assert isinstance(await crashed.begin("c:op:k1", "f1", 3600), Started)
    assert isinstance(await crashed.begin("c:op:k2", "f2", 3600), Started)
    await crashed.complete("c:op:k2", StoredResponse(status=202, headers=[], body=b"{}"), 3600)
    await crashed.aclose()  # the process died with k1 in flight
    restarted = SqliteIdempotencyStore(path)
    try:
        assert restarted.forget_in_flight() == 1
        assert isinstance(await restarted.begin("c:op:k1", "f1", 3600), Started)  # the retry runs now
        assert isinstance(await restarted.begin("c:op:k2", "f2", 3600), Replay)  # finished work still replays
    finally:
        await restarted.aclose()
