"""The shared audit log on Redis: optimistic appends, hashes computed in Python.

Why not one Lua script doing everything: the record's hash is SHA-256 over its content and the
previous hash, and Redis Lua has no SHA-256 (only ``redis.sha1hex``). So an append reads the head
(last seq and hash), seals the records in Python, and hands them to a short compare-and-append
script that writes records + indexes + new head only if the head is still the one read. If another
writer moved it in between, nothing is written and the append retries with the new head: two hub
instances can never chain onto the same record. Inside one process appends also queue on a lock,
so retries only come from other processes. (This replaced WATCH/MULTI, which needed a connection
of its own and four round trips through redis-py's pool per batch — 15% of a dispatcher's CPU; the
read and the script are two plain commands, pipelined with everything else.)

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

from policies._audit_chain import (
    GENESIS_HASH,
    AuditCorrupt,
    AuditEntry,
    AuditHead,
    AuditRecord,
    check_limit,
    matches,
    seal_all,
)

__all__ = ["AuditWriteConflict", "RedisAuditLog"]

_BATCH = 500
# KEYS: head, records, seqs. ARGV: expected seq, expected hash, new seq, new hash, the client index
# prefix, then per record: seq, JSON, client id.
_APPEND_LUA = """
local head = redis.call('HMGET', KEYS[1], 'seq', 'hash')
local seq, hash = head[1] or '0', head[2] or ARGV[6]
if seq ~= ARGV[1] or (head[1] and hash ~= ARGV[2]) then return 0 end
for i = 7, #ARGV, 3 do
  local s = ARGV[i]
  redis.call('HSET', KEYS[2], s, ARGV[i + 1])
  redis.call('ZADD', KEYS[3], s, s)
  redis.call('ZADD', ARGV[5] .. ARGV[i + 2], s, s)
end
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'hash', ARGV[4])
return 1
"""
_MAX_ATTEMPTS = 200
_DECODER = msgspec.json.Decoder(AuditRecord)
_ENCODER = msgspec.json.Encoder()


class _HeadMoved(Exception):
    """Another writer appended between our head read and our write; nothing of ours was written."""


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
        self._append = client.register_script(_APPEND_LUA)

    async def append(self, entry: AuditEntry) -> AuditRecord:
        (record,) = await self.append_many([entry])
        return record

    async def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """Chain a batch with one head read and one compare-and-append script for all of them."""
        if not entries:
            return []
        async with self._lock:
            for attempt in range(_MAX_ATTEMPTS):
                try:
                    return await self._try_append_many(entries)
                except _HeadMoved:
                    # Jittered back-off so two instances do not keep colliding in lockstep.
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
        raise AuditWriteConflict(f"audit append lost {_MAX_ATTEMPTS} races for the head")

    async def _try_append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        seq_raw, hash_raw = await self._client.hmget(self._head, ["seq", "hash"])
        expected_seq, expected_hash = _text(seq_raw) or "0", _text(hash_raw) or GENESIS_HASH
        records = seal_all(entries, AuditHead(seq=int(expected_seq), hash=expected_hash))
        last = records[-1]
        args: list[str | bytes] = [expected_seq, expected_hash, str(last.seq), last.hash, self._client_prefix]
        args.append(GENESIS_HASH)
        for record in records:
            args += [str(record.seq), _ENCODER.encode(record), record.client_id]
        written = await self._append(keys=[self._head, self._records, self._seqs], args=args)
        if written != 1:
            raise _HeadMoved
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
