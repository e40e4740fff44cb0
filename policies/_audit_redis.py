"""The shared audit log on Redis: optimistic appends, hashes computed in Python.

Why not one Lua script doing everything: the record's hash is SHA-256 over its content and the
previous hash, and Redis Lua has no SHA-256 (only ``redis.sha1hex``). So an append reads the head
(last seq and hash), seals the records in Python, and hands them to a short compare-and-append
script that writes records + indexes + new head only if the head is still the one read. If another
writer moved it in between, nothing is written and the append retries with the new head: two hub
instances can never chain onto the same record. Inside one process appends also queue on a lock,
so retries only come from other processes. (This replaced WATCH/MULTI, which needed a connection
of its own and four round trips through redis-py's pool per batch — 15% of a dispatcher's CPU; the
read and the append are two scripts, pipelined with everything else.)

The record of a call that stored work is not queued in the process that answered it (a crash would
lose it): the hub's store pushes it onto ``pending`` in the same script that stores the work
(``with_work``), and every append chains what is pending first, in the same compare-and-append
(which also trims exactly what it chained, so two instances can never chain one entry twice).

Keys under ``prefix``:

- ``{prefix}:pending``     list of entries (JSON) stored with their work and not chained yet
- ``{prefix}:head``        hash ``seq``, ``hash`` of the newest record
- ``{prefix}:records``     hash ``seq -> record JSON``
- ``{prefix}:seqs``        sorted set of every seq (score = seq): order, paging, gaps visible
- ``{prefix}:client:{id}`` sorted set of one client's seqs, so a client's page does not scan the log

The Redis client belongs to the caller; ``aclose`` leaves it open.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import cast

import msgspec
from redis.asyncio import Redis

from policies._audit_chain import (
    GENESIS_HASH,
    AuditCorrupt,
    AuditEntry,
    AuditHead,
    AuditPush,
    AuditRecord,
    check_limit,
    matches,
    seal_all,
)

__all__ = ["AuditWriteConflict", "RedisAuditLog"]

_BATCH = 500
# KEYS: head, pending. The head and the oldest pending entries, read at one instant.
_READ_LUA = """
local head = redis.call('HMGET', KEYS[1], 'seq', 'hash')
return {head[1] or false, head[2] or false, redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)}
"""
# KEYS: head, records, seqs, pending. ARGV: expected seq, expected hash, new seq, new hash, the client
# index prefix, the genesis hash, how many pending entries this chains, then per record: seq, JSON,
# client id. Pending entries are only ever removed here, with a head move, so if the head is still
# the one read, the first n pending entries are still the ones read.
_APPEND_LUA = """
local head = redis.call('HMGET', KEYS[1], 'seq', 'hash')
local seq, hash = head[1] or '0', head[2] or ARGV[6]
if seq ~= ARGV[1] or (head[1] and hash ~= ARGV[2]) then return 0 end
for i = 8, #ARGV, 3 do
  local s = ARGV[i]
  redis.call('HSET', KEYS[2], s, ARGV[i + 1])
  redis.call('ZADD', KEYS[3], s, s)
  redis.call('ZADD', ARGV[5] .. ARGV[i + 2], s, s)
end
if ARGV[7] ~= '0' then redis.call('LTRIM', KEYS[4], tonumber(ARGV[7]), -1) end
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'hash', ARGV[4])
return 1
"""
_MAX_ATTEMPTS = 200
_DECODER = msgspec.json.Decoder(AuditRecord)
_ENTRY_DECODER = msgspec.json.Decoder(AuditEntry)
_ENCODER = msgspec.json.Encoder()


class _HeadMoved(Exception):
    """Another writer appended between our head read and our write; nothing of ours was written."""


class AuditWriteConflict(Exception):
    """Other writers kept moving the head for ``_MAX_ATTEMPTS`` tries; nothing was written."""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisAuditLog:
    chains_pending = True

    def __init__(self, client: Redis, prefix: str = "billing-hub:audit") -> None:
        self._client = client
        self._head = f"{prefix}:head"
        self._records = f"{prefix}:records"
        self._seqs = f"{prefix}:seqs"
        self._client_prefix = f"{prefix}:client:"
        self._pending = f"{prefix}:pending"
        self._lock = asyncio.Lock()
        self._read = client.register_script(_READ_LUA)
        self._append = client.register_script(_APPEND_LUA)

    def with_work(self, entry: AuditEntry) -> AuditPush:
        return AuditPush(key=self._pending, value=_ENCODER.encode(entry))

    async def append(self, entry: AuditEntry) -> AuditRecord:
        return (await self.append_many([entry]))[-1]  # after whatever was pending

    async def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """Chain what is pending, then ``entries``, with one read and one compare-and-append script."""
        async with self._lock:
            for attempt in range(_MAX_ATTEMPTS):
                try:
                    return await self._try_append_many(entries)
                except _HeadMoved:
                    # Jittered back-off so two instances do not keep colliding in lockstep.
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
        raise AuditWriteConflict(f"audit append lost {_MAX_ATTEMPTS} races for the head")

    async def _try_append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        seq_raw, hash_raw, pending = await self._read(keys=[self._head, self._pending], args=[_BATCH])
        if not entries and not pending:
            return []
        expected_seq, expected_hash = _text(seq_raw) or "0", _text(hash_raw) or GENESIS_HASH
        chained = [self._decode_pending(raw) for raw in pending] + entries
        records = seal_all(chained, AuditHead(seq=int(expected_seq), hash=expected_hash))
        last = records[-1]
        args: list[str | bytes] = [expected_seq, expected_hash, str(last.seq), last.hash, self._client_prefix]
        args += [GENESIS_HASH, str(len(pending))]
        for record in records:
            args += [str(record.seq), _ENCODER.encode(record), record.client_id]
        keys = [self._head, self._records, self._seqs, self._pending]
        if await self._append(keys=keys, args=args) != 1:
            raise _HeadMoved
        return records

    @staticmethod
    def _decode_pending(raw: bytes | str) -> AuditEntry:
        """Only ``with_work`` writes pending entries, so one that cannot be read was altered in Redis.
        It is chained as a record saying so: dropped, it would vanish without a trace; refused, it
        would stop every append after it."""
        try:
            return _ENTRY_DECODER.decode(raw)
        except msgspec.DecodeError:
            return AuditEntry(
                client_id="hub", operation="audit:pending-unreadable", resource_id=None, outcome="error",
                status=None, trace_id=None, at=time.time(),
            )  # fmt: skip

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
