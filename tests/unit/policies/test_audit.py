"""The audit log contract and its hash chain, over SQLite and the real Redis server (same tests).

Tampering is done the way an intruder would: straight in the storage (SQL on the file, commands on
Redis), never through the log's API. Redis is ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``);
when it does not answer the Redis cases fail, they are never skipped.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from policies._audit_chain import seal
from policies.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditHead,
    AuditLog,
    AuditPush,
    AuditRecord,
    RedisAuditLog,
    SqliteAuditLog,
    chain_hash,
    verify_chain,
    verify_log,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def entry(i: int, *, client: str = "c1", operation: str = "postJournal", outcome: str = "ok") -> AuditEntry:
    return AuditEntry(
        client_id=client,
        operation=operation,
        resource_id=f"jnl_{i}",
        outcome=outcome,
        status=202,
        trace_id=f"{i:032x}",
        at=1000.0 + i,
        transaction_id=f"txn_{i}",
    )


# --- backends -------------------------------------------------------------------------------------


@dataclass
class Backend:
    """One audit backend plus the raw storage handles a tamper test needs."""

    kind: str
    log: AuditLog
    another: Callable[[], Awaitable[AuditLog]]
    edit: Callable[[int, dict[str, Any]], Awaitable[None]]
    delete: Callable[[int], Awaitable[None]]
    swap: Callable[[int, int], Awaitable[None]]
    corrupt: Callable[[int], Awaitable[None]]
    drop_head: Callable[[], Awaitable[None]]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def fill(self, n: int, **kwargs: Any) -> list[AuditRecord]:
        return [await self.log.append(entry(i, **kwargs)) for i in range(1, n + 1)]


def _sqlite_backend(path: Path) -> Backend:
    closers: list[Callable[[], Awaitable[None]]] = []

    def sql(statement: str, *params: object) -> None:
        with sqlite3.connect(path) as db:
            db.execute(statement, params)

    async def another() -> AuditLog:
        extra = SqliteAuditLog(path, durability="normal")
        closers.append(extra.aclose)
        return extra

    async def edit(seq: int, changes: dict[str, Any]) -> None:
        for column, value in changes.items():
            sql(f"update audit_log set {column} = ? where seq = ?", value, seq)

    async def delete(seq: int) -> None:
        sql("delete from audit_log where seq = ?", seq)

    async def swap(a: int, b: int) -> None:
        with sqlite3.connect(path) as db:
            db.execute("update audit_log set seq = -1 where seq = ?", (a,))
            db.execute("update audit_log set seq = ? where seq = ?", (a, b))
            db.execute("update audit_log set seq = ? where seq = -1", (b,))

    async def corrupt(seq: int) -> None:
        sql("update audit_log set at = 'yesterday' where seq = ?", seq)

    async def drop_head() -> None:
        sql("delete from audit_head")

    log = SqliteAuditLog(path, durability="normal")
    closers.append(log.aclose)
    return Backend("sqlite", log, another, edit, delete, swap, corrupt, drop_head, closers)


async def _redis_client() -> Redis:
    client = Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} did not answer ({type(exc).__name__}); these tests never skip.")
    return client


async def _redis_backend() -> Backend:
    prefix = f"test-audit:{uuid.uuid4().hex}"
    admin = await _redis_client()
    records, seqs = f"{prefix}:records", f"{prefix}:seqs"
    closers: list[Callable[[], Awaitable[None]]] = []

    async def another() -> AuditLog:
        client = await _redis_client()
        closers.append(client.aclose)
        return RedisAuditLog(client, prefix)

    async def edit(seq: int, changes: dict[str, Any]) -> None:
        raw = await admin.hget(records, str(seq))
        assert raw is not None
        stored = msgspec.json.decode(raw)
        await admin.hset(records, str(seq), msgspec.json.encode(stored | changes))

    async def delete(seq: int) -> None:
        await admin.hdel(records, str(seq))
        await admin.zrem(seqs, str(seq))

    async def swap(a: int, b: int) -> None:
        first, second = await admin.hmget(records, [str(a), str(b)])
        assert first is not None
        assert second is not None
        await admin.hset(records, mapping={str(a): second, str(b): first})

    async def corrupt(seq: int) -> None:
        await admin.hset(records, str(seq), b"{not a record")

    async def drop_head() -> None:
        await admin.delete(f"{prefix}:head")

    async def clean() -> None:
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()

    main = await _redis_client()
    closers.extend([main.aclose, clean])
    return Backend("redis", RedisAuditLog(main, prefix), another, edit, delete, swap, corrupt, drop_head, closers)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = _sqlite_backend(tmp_path / "audit.sqlite3") if request.param == "sqlite" else await _redis_backend()
    try:
        yield made
    finally:
        await made.log.aclose()
        for close in made.closers:
            await close()


# --- appending and reading ------------------------------------------------------------------------


async def test_append_chains_from_genesis(backend: Backend) -> None:
    records = await backend.fill(3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert records[1].resource_id == "jnl_2"
    assert await backend.log.head() == AuditHead(seq=3, hash=records[-1].hash)


async def test_an_empty_log(backend: Backend) -> None:
    assert await backend.log.head() == AuditHead(0, GENESIS_HASH)
    assert await backend.log.page() == []
    assert [r async for r in backend.log.iterate()] == []
    assert (await verify_log(backend.log)).ok


async def test_what_is_read_back_is_what_was_appended(backend: Backend) -> None:
    appended = await backend.log.append(
        AuditEntry(
            client_id="c9",
            operation="erp.post_journal",
            resource_id=None,
            outcome="delivered",
            status=None,
            trace_id=None,
            at=1234.5678,
            target="erp",
        )
    )
    assert await backend.log.page() == [appended]
    assert [r async for r in backend.log.iterate()] == [appended]


async def test_page_filters(backend: Backend) -> None:
    for i in range(1, 13):
        await backend.log.append(
            entry(i, client=f"c{i % 3}", operation="getClaim" if i % 2 else "postJournal", outcome="ok")
        )
    await backend.log.append(entry(13, client="c1", outcome="rejected"))
    log = backend.log
    assert [r.seq for r in await log.page(client_id="c1")] == [1, 4, 7, 10, 13]
    assert [r.seq for r in await log.page(operation="getClaim")] == [1, 3, 5, 7, 9, 11]
    assert [r.seq for r in await log.page(outcome="rejected")] == [13]
    assert [r.seq for r in await log.page(since=1005.0, until=1008.0)] == [5, 6, 7]
    assert [r.seq for r in await log.page(client_id="c1", operation="getClaim")] == [1, 7]
    assert await log.page(client_id="nobody") == []


async def test_paging_with_after_seq_and_limit(backend: Backend) -> None:
    await backend.fill(25)
    seen: list[int] = []
    after = 0
    while page := await backend.log.page(after_seq=after, limit=10):
        seen.extend(r.seq for r in page)
        after = page[-1].seq
    assert seen == list(range(1, 26))
    assert [r.seq for r in await backend.log.page(client_id="c1", after_seq=20, limit=3)] == [21, 22, 23]


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_page_limit_is_bounded(backend: Backend, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await backend.log.page(limit=limit)


async def test_iterate_crosses_batches_in_order(backend: Backend) -> None:
    await backend.fill(520)
    seqs = [r.seq async for r in backend.log.iterate()]
    assert seqs == list(range(1, 521))
    result = await verify_log(backend.log)
    assert (result.ok, result.checked) == (True, 520)


async def test_concurrent_appends_never_fork(backend: Backend) -> None:
    """50 appends at once from two log instances (for Redis: two clients, two connection pools)."""
    other = await backend.another()
    logs = [backend.log, other]
    records = await asyncio.gather(*(logs[i % 2].append(entry(i, client=f"c{i % 2}")) for i in range(50)))
    assert sorted(r.seq for r in records) == list(range(1, 51))
    assert len({r.prev_hash for r in records}) == 50  # no two records chained onto the same one
    result = await verify_log(backend.log)
    assert (result.ok, result.checked) == (True, 50)
    assert [r.seq async for r in other.iterate()] == list(range(1, 51))


async def test_batches_interleaved_with_single_appends_form_one_chain(backend: Backend) -> None:
    """append_many (the hub's batched writer) from two instances, mixed with single appends."""
    other = await backend.another()
    batches = [[entry(10 * b + i, client=f"c{b % 2}") for i in range(10)] for b in range(4)]
    first, second, single, third, fourth = await asyncio.gather(
        backend.log.append_many(batches[0]),
        other.append_many(batches[1]),
        backend.log.append(entry(99)),
        other.append_many(batches[2]),
        backend.log.append_many(batches[3]),
    )
    in_batches = [first, second, third, fourth]
    assert sorted([single.seq] + [r.seq for batch in in_batches for r in batch]) == list(range(1, 42))
    for sent, batch in zip(batches, in_batches, strict=True):
        # a batch is chained contiguously and in the order it was given
        assert [r.seq for r in batch] == list(range(batch[0].seq, batch[0].seq + len(sent)))
        assert [(r.client_id, r.at) for r in batch] == [(e.client_id, e.at) for e in sent]
    result = await verify_log(backend.log)
    assert (result.ok, result.checked) == (True, 41)


# --- the chain catches tampering ------------------------------------------------------------------


async def test_a_clean_log_verifies(backend: Backend) -> None:
    await backend.fill(10)
    assert await verify_log(backend.log) == (await verify_chain([r async for r in backend.log.iterate()]))
    result = await verify_log(backend.log)
    assert (result.ok, result.checked, result.first_bad_seq, result.reason) == (True, 10, None, None)


@pytest.mark.parametrize(
    "changes", [{"outcome": "rejected"}, {"status": 500}, {"client_id": "c2"}, {"at": 999.0}, {"resource_id": None}]
)
async def test_a_changed_record_is_named(backend: Backend, changes: dict[str, Any]) -> None:
    await backend.fill(10)
    await backend.edit(4, changes)
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert result.reason is not None
    assert "changed" in result.reason


async def test_a_rewritten_record_with_a_recomputed_hash_is_named(backend: Backend) -> None:
    records = await backend.fill(10)
    forged = msgspec.structs.replace(records[5], outcome="ok", status=200)
    await backend.edit(6, {"status": 200, "hash": chain_hash(forged, forged.seq, forged.prev_hash)})
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "rewritten" in (result.reason or "")


async def test_a_removed_record_is_named(backend: Backend) -> None:
    await backend.fill(10)
    await backend.delete(5)
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)
    assert "removed" in (result.reason or "")


async def test_removed_first_record(backend: Backend) -> None:
    await backend.fill(3)
    await backend.delete(1)
    assert (await verify_log(backend.log)).first_bad_seq == 1


async def test_records_cut_off_the_end_are_caught_by_the_head(backend: Backend) -> None:
    await backend.fill(10)
    await backend.delete(10)
    await backend.delete(9)
    # The chain alone still looks whole: this is what the head is for.
    assert (await verify_chain(backend.log.iterate())).ok
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq) == (False, 9)
    assert "missing from the end" in (result.reason or "")


async def test_records_cut_off_the_end_with_the_head_removed_are_caught(backend: Backend) -> None:
    """Without a head, records 1..8 chain and would have looked like a whole, shorter log."""
    await backend.fill(10)
    await backend.delete(10)
    await backend.delete(9)
    await backend.drop_head()
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "past the stored head (seq 0)" in (result.reason or "")


async def test_an_append_after_a_cut_still_shows_the_gap(backend: Backend) -> None:
    await backend.fill(5)
    await backend.delete(5)
    await backend.log.append(entry(6))
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq) == (False, 5)


async def test_swapped_records_are_named(backend: Backend) -> None:
    await backend.fill(10)
    await backend.swap(6, 7)
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 6, 5)


async def test_an_unreadable_record_is_named_not_a_crash(backend: Backend) -> None:
    await backend.fill(6)
    await backend.corrupt(3)
    result = await verify_log(backend.log)
    assert (result.ok, result.first_bad_seq) == (False, 3)


# --- records stored with their work ---------------------------------------------------------------


async def _stored_with_work(log: AuditLog, entries: list[AuditEntry]) -> None:
    """What the hub's store does with ``with_work``'s answer, in its own atomic write of the work."""
    for e in entries:
        form = log.with_work(e)
        if isinstance(form, AuditPush):
            client = await _redis_client()
            await client.rpush(form.key, form.value)
            await client.aclose()
        else:
            with sqlite3.connect(cast("SqliteAuditLog", log).path, isolation_level=None) as db:
                db.execute("begin immediate")
                form.run(db)
                db.execute("commit")


async def test_records_stored_with_work_join_the_one_chain(backend: Backend) -> None:
    await backend.fill(2)
    await _stored_with_work(backend.log, [entry(3), entry(4)])
    await backend.log.append_many([entry(5)])
    records = [r async for r in backend.log.iterate()]
    assert [(r.seq, r.resource_id) for r in records] == [(i, f"jnl_{i}") for i in range(1, 6)]
    result = await verify_log(backend.log)
    assert (result.ok, result.checked) == (True, 5)


@pytest.mark.redis
async def test_pending_records_are_chained_once_whoever_appends() -> None:
    """Entries a crashed process's store left pending are chained by the next append of any instance,
    empty or not, before its own entries; two instances racing chain each one exactly once."""
    backend = await _redis_backend()
    try:
        other = await backend.another()
        await _stored_with_work(backend.log, [entry(i) for i in range(1, 31)])
        first, second, _ = await asyncio.gather(
            backend.log.append_many([entry(100)]), other.append_many([entry(200)]), other.append_many([])
        )
        chained = [r async for r in backend.log.iterate()]
        assert [r.seq for r in chained] == list(range(1, 33))
        assert sorted(r.resource_id or "" for r in chained) == sorted(f"jnl_{i}" for i in (*range(1, 31), 100, 200))
        pending_order = [r.resource_id for r in chained if r.resource_id not in ("jnl_100", "jnl_200")]
        assert pending_order == [f"jnl_{i}" for i in range(1, 31)]  # in the order they were stored
        assert first[-1].resource_id == "jnl_100"
        assert second[-1].resource_id == "jnl_200"
        assert await other.append_many([]) == []  # nothing left pending
        result = await verify_log(backend.log)
        assert (result.ok, result.checked) == (True, 32)
    finally:
        for close in backend.closers:
            await close()


@pytest.mark.redis
async def test_an_altered_pending_entry_is_chained_as_such_not_dropped() -> None:
    backend = await _redis_backend()
    try:
        await _stored_with_work(backend.log, [entry(1)])
        form = backend.log.with_work(entry(2))
        assert isinstance(form, AuditPush)
        client = await _redis_client()
        await client.rpush(form.key, b"{not an entry", form.value)
        await client.aclose()
        records = await backend.log.append_many([])
        assert [(r.operation, r.outcome) for r in records] == [
            ("postJournal", "ok"),
            ("audit:pending-unreadable", "error"),
            ("postJournal", "ok"),
        ]
        assert (await verify_log(backend.log)).ok
    finally:
        for close in backend.closers:
            await close()


# --- the chain in isolation -----------------------------------------------------------------------


def _chain(n: int) -> list[AuditRecord]:
    from policies._audit_chain import seal

    records: list[AuditRecord] = []
    for i in range(1, n + 1):
        records.append(seal(entry(i), i, records[-1].hash if records else GENESIS_HASH))
    return records


async def test_verify_accepts_plain_and_async_iterables() -> None:
    records = _chain(5)

    async def gen() -> AsyncIterator[AuditRecord]:
        for r in records:
            yield r

    assert (await verify_chain(records)).ok
    assert (await verify_chain(gen())).checked == 5
    assert (await verify_chain(records, head=AuditHead(5, records[-1].hash))).ok


async def test_verify_names_reordered_and_duplicated_records() -> None:
    r = _chain(6)
    assert (await verify_chain([r[0], r[1], r[3], r[2], r[4]])).first_bad_seq == 3
    assert (await verify_chain([r[0], r[1], r[1], r[2]])).first_bad_seq == 3
    assert (await verify_chain(r[1:])).first_bad_seq == 1


async def test_verify_checks_the_head_hash() -> None:
    r = _chain(4)
    result = await verify_chain(r, head=AuditHead(4, "f" * 64))
    assert (result.ok, result.first_bad_seq) == (False, 4)
    # Records appended after the head was read are fine.
    assert (await verify_chain(r, head=AuditHead(2, r[1].hash))).ok


def test_hash_covers_every_field_in_a_fixed_order() -> None:
    base = _chain(1)[0]
    assert base.hash == chain_hash(base, 1, GENESIS_HASH)
    assert len(base.hash) == 64
    changed = [
        msgspec.structs.replace(base, **{name: value})
        for name, value in {
            "client_id": "c2",
            "operation": "x",
            "resource_id": None,
            "outcome": "error",
            "status": None,
            "trace_id": None,
            "at": 1.0,
            "target": "erp",
            "transaction_id": None,
        }.items()
    ]
    hashes = {chain_hash(c, 1, GENESIS_HASH) for c in changed}
    assert len(hashes) == len(changed)
    assert base.hash not in hashes
    assert chain_hash(base, 2, GENESIS_HASH) != base.hash
    assert chain_hash(base, 1, "1" * 64) != base.hash


def test_an_integer_time_hashes_like_the_float_storage_returns() -> None:
    as_int = msgspec.structs.replace(entry(1), at=1001)
    assert chain_hash(as_int, 1, GENESIS_HASH) == chain_hash(entry(1), 1, GENESIS_HASH)


def test_entries_have_room_for_ids_and_codes_only() -> None:
    """A guard against a 'payload' or 'detail' field creeping in: audit records never carry PHI."""
    assert AuditEntry.__struct_fields__ == (
        "client_id",
        "operation",
        "resource_id",
        "outcome",
        "status",
        "trace_id",
        "at",
        "target",
        "transaction_id",
    )
    assert AuditRecord.__struct_fields__[-3:] == ("seq", "prev_hash", "hash")


def test_sqlite_appends_from_several_threads_never_fork(tmp_path: Path) -> None:
    """Real contention on the file: each thread has its own connection and its own event loop."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "shared.sqlite3"

    def writer(worker: int) -> list[int]:
        async def run() -> list[int]:
            log = SqliteAuditLog(path, durability="normal")
            try:
                return [(await log.append(entry(worker * 100 + i, client=f"w{worker}"))).seq for i in range(25)]
            finally:
                await log.aclose()

        return asyncio.run(run())

    asyncio.run(SqliteAuditLog(path).aclose())  # the schema exists before the threads race
    with ThreadPoolExecutor(4) as pool:
        seqs = [s for batch in pool.map(writer, range(4)) for s in batch]
    assert sorted(seqs) == list(range(1, 101))

    async def check() -> None:
        log = SqliteAuditLog(path)
        try:
            result = await verify_log(log)
            assert (result.ok, result.checked) == (True, 100)
        finally:
            await log.aclose()

    asyncio.run(check())


def test_the_chain_hash_is_pinned_to_its_published_form() -> None:
    """Stored chains must keep verifying across releases: these values were computed by the first
    implementation (JSON array of HASHED_FIELDS in order, then SHA-256) and must never change."""
    call = AuditEntry(
        client_id="alpha", operation="postJournal", resource_id=None, outcome="ok", status=202,
        trace_id="0af7651916cd43dd8448eb211c80319c", at=1764300000, target=None,
        transaction_id="txn_01m8g85a2jkfyzf2vzb0p9mr4t",
    )  # fmt: skip
    delivery = AuditEntry(
        client_id="c", operation="deliver:post_journal", resource_id="dlv_x", outcome="delivered",
        status=None, trace_id=None, at=1764300000.125, target="erp", transaction_id=None,
    )  # fmt: skip
    assert chain_hash(call, 7, "ab" * 32) == "999aac35d5d6dd52e6290df55c5160de73e0cdcd7dace67ffe79bf33faec8506"
    assert seal(call, 7, "ab" * 32).hash == chain_hash(call, 7, "ab" * 32)
    assert chain_hash(delivery, 1, GENESIS_HASH) == "f0c35b8eeda243b310cef8d8f531e840b45bfa9bf998147d6277054c77122ab2"


async def test_an_empty_batch_writes_nothing(backend: Backend) -> None:
    await backend.log.append(entry(1))
    assert await backend.log.append_many([]) == []
    assert (await backend.log.head()).seq == 1
    assert [r.seq async for r in backend.log.iterate()] == [1]
