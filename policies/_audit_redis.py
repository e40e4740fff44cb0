"""The shared audit log on Redis: WATCH/MULTI optimistic appends, hashes computed in Python.

Why not one Lua script: the record's hash is SHA-256 over its content and the previous hash, and
Redis Lua has no SHA-256 (only ``redis.sha1hex``). So an append WATCHes the head key, reads the last
seq and hash, seals the record in Python, and commits record + indexes + new head in one MULTI. If
another writer moved the head in between, EXEC fails and the append retries with the new head: two
hub instances can never chain onto the same record. Inside one process appends also queue on a lock,
so retries only come from other processes.

Keys under ``prefix``:

- ``{prefix}:head``        hash ``seq``, ``hash`` of the newest record
- ``{prefix}:records``     hash ``seq -> record JSON``
- ``{prefix}:seqs``        sorted set of every seq (score = seq): order, paging, gaps visible
- ``{prefix}:client:{id}`` sorted set of one client's seqs, so a client's page does not scan the log

The Redis client belongs to the caller; ``aclose`` leaves it open.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import WatchError

from policies._audit_chain import (
    GENESIS_HASH,
    AuditCorrupt,
    AuditEntry,
    AuditHead,
    AuditRecord,
    check_limit,
    matches,
    seal,
)

__all__ = ["AuditWriteConflict", "RedisAuditLog"]

_BATCH = 500
_MAX_ATTEMPTS = 200
_DECODER = msgspec.json.Decoder(AuditRecord)
_ENCODER = msgspec.json.Encoder()


class AuditWriteConflict(Exception):
    """Other writers kept moving the head for ``_MAX_ATTEMPTS`` tries; nothing was written."""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisAuditLog:
    def __init__(self, client: Redis, prefix: str = "billing-hub:audit") -> None:
        self._client = client
        self._head = f"{prefix}:head"
        self._records = f"{prefix}:records"
        self._seqs = f"{prefix}:seqs"
        self._client_prefix = f"{prefix}:client:"
        self._lock = asyncio.Lock()

    async def append(self, entry: AuditEntry) -> AuditRecord:
        (record,) = await self.append_many([entry])
        return record

    async def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """Chain a batch in one optimistic transaction: one head read and one MULTI for all of them."""
        async with self._lock:
            for attempt in range(_MAX_ATTEMPTS):
                try:
                    return await self._try_append_many(entries)
                except WatchError:
                    # Jittered back-off so two instances do not keep colliding in lockstep.
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
        raise AuditWriteConflict(f"audit append lost {_MAX_ATTEMPTS} races for the head")

    async def _try_append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(self._head)
            seq_raw, hash_raw = await pipe.hmget(self._head, ["seq", "hash"])
            seq, prev = int(_text(seq_raw) or 0), _text(hash_raw) or GENESIS_HASH
            records = []
            for entry in entries:
                seq += 1
                record = seal(entry, seq, prev)
                records.append(record)
                prev = record.hash
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(self._records, mapping={str(r.seq): _ENCODER.encode(r) for r in records})
            pipe.zadd(self._seqs, {str(r.seq): r.seq for r in records})
            for record in records:
                pipe.zadd(self._client_prefix + record.client_id, {str(record.seq): record.seq})
            pipe.hset(self._head, mapping={"seq": seq, "hash": prev})
            await pipe.execute()
            return records

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
        index = self._seqs if client_id is None else self._client_prefix + client_id
        found: list[AuditRecord] = []
        async for record in self._scan(index, after_seq):
            if matches(record, client_id, operation, outcome, since, until):
                found.append(record)
                if len(found) == limit:
                    break
        return found

    async def iterate(self) -> AsyncIterator[AuditRecord]:
        async for record in self._scan(self._seqs, 0):
            yield record

    async def head(self) -> AuditHead:
        seq_raw, hash_raw = await self._client.hmget(self._head, ["seq", "hash"])
        if seq_raw is None:
            return AuditHead()
        return AuditHead(seq=int(_text(seq_raw) or 0), hash=_text(hash_raw) or GENESIS_HASH)

    async def aclose(self) -> None:
        """The client is the caller's to close."""

    async def _scan(self, index: str, after_seq: int) -> AsyncIterator[AuditRecord]:
        """Records whose seq is in ``index`` and above ``after_seq``, in seq order, fetched in batches."""
        after = after_seq
        while True:
            found = await self._client.zrangebyscore(index, f"({after}", "+inf", start=0, num=_BATCH)
            seqs = cast("list[bytes | str]", found)
            if not seqs:
                return
            raw = await self._client.hmget(self._records, seqs)
            for seq, data in zip(seqs, raw, strict=True):
                yield self._decode(int(_text(seq) or 0), data)
            after = int(_text(seqs[-1]) or 0)

    @staticmethod
    def _decode(seq: int, data: bytes | str | None) -> AuditRecord:
        if data is None:
            raise AuditCorrupt(seq)
        try:
            return _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise AuditCorrupt(seq) from exc
