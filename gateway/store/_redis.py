"""The shared store: transactions and the outbox in Redis, for several hub instances.

Every instance claims work with leases and fencing tokens: ``claim_due`` is one Lua script that
moves due entries (and entries whose lease ran out) into ``inflight`` under a fresh token from
``INCR``, so two instances never hold a live lease on the same entry, and ``record_attempt`` /
``release`` refuse a holder whose token is no longer the entry's (``LeaseLost``). Each write is one
Lua script (see ``_redis_lua``), so it is atomic and a crash never leaves half of it behind.

Keys under ``prefix`` (default ``billing-hub:``):

- ``txn:{id}``              hash: the transaction's fields
- ``txn-outbox:{id}``       set: ids of the transaction's outbox entries
- ``outbox:{id}``           hash: every ``OutboxRecord`` field, plus ``lease_until``/``lease_owner``
- ``attempts:{outbox id}``  hash: attempt number -> ``AttemptRecord`` JSON
- ``resource:{kind}:{id}``  hash: the resource's fields (a kind cannot contain ``:``)
- ``pending``               sorted set: pending entries by ``next_attempt_at`` (held ones excepted)
- ``inflight``              sorted set: leased entries by ``lease_until``
- ``waiting``               sorted set: pending + in-flight entries by ``created_at`` (for stats)
- ``dead``                  sorted set: dead entries, all score 0 so they page by id (``BYLEX``)
- ``order:{order key}``     sorted set: the unfinished entries of one order key by ``order-seq``; only
                            its first is in ``pending`` or ``inflight``, the rest are held
- ``order-seq``             counter: places in the order queues
- ``order-queues``          set: the order keys that have a queue (``repair_order`` walks them)
- ``lease-token``           counter: the fencing tokens
- ``sequence:{name}``       counter: a named sequence (``next_number``; X12 control numbers)

Floats are stored as ``repr`` strings (exact round trip), ``None`` as an absent field, bytes as-is;
the client must be made with ``decode_responses=False``. A duplicate transaction or outbox id makes
``accept`` raise ``redis.exceptions.ResponseError`` with nothing written. When Redis is unreachable
the client's ``redis.exceptions.ConnectionError`` / ``TimeoutError`` propagate unchanged (the
dispatcher logs them and backs off; ``/ready`` reports the store down). One Redis server (or a
primary with replicas) is assumed: the scripts build per-record keys, which Redis Cluster forbids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gateway.redis_client import pipelined_redis
from gateway.store import _redis_lua as lua
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
)
from policies.audit import AuditPush, InTransaction
from policies.idempotency import FinalStatement, FinalWrite

__all__ = ["RedisStore"]

_OUTBOX_TEXT = (
    "id", "transaction_id", "target", "operation", "external_ref", "state", "error_kind", "error", "traceparent",
    "client_id", "trace_id", "order_key",
)  # fmt: skip
_OUTBOX_INT = ("attempts", "budget_attempts", "replays", "lease_token")
_OUTBOX_FLOAT = ("next_attempt_at", "created_at", "updated_at", "budget_started_at")
_OUTBOX_FIELDS = (*_OUTBOX_TEXT, *_OUTBOX_INT, *_OUTBOX_FLOAT, "payload", "result")
_TXN_TEXT = ("id", "client_id", "kind", "resource_type", "resource_id", "state", "trace_id", "span_id")
_TXN_FLOAT = ("created_at", "updated_at")
_RECORDED_STATES = ("pending", "done", "dead")
_DEAD_SCAN = 500  # dead entries one list_dead script examines at most
STORE_TIMEOUT_S = 5.0  # a reply slower than this fails the call and drops the connection
_RESULT = msgspec.json.Decoder(dict[str, str])
_ATTEMPT = msgspec.json.Decoder(AttemptRecord)
_JSON = msgspec.json.Encoder()
_PACKED = msgspec.msgpack.Encoder()  # ACCEPT's work, one argument (see ``_redis_lua.ACCEPT``)

_Value = str | bytes | int | float | msgspec.Raw


# The text of recent floats: one write stores the same few timestamps nine to eleven times
# (transaction, outbox entry, resources, queue scores), and ``repr`` of a float is its costly part.
_FLOAT_TEXT: dict[float, str] = {}


def _float(value: float) -> str:
    text = _FLOAT_TEXT.get(value)
    if text is None:
        if len(_FLOAT_TEXT) >= 64:
            _FLOAT_TEXT.clear()
        text = _FLOAT_TEXT[value] = repr(float(value))
    return text


def _as_is(value: bytes) -> _Value:
    return value


def _packed_text(value: bytes) -> _Value:
    """Bytes as a MessagePack *str*: Redis's Lua ``cmsgpack`` refuses the bin types msgspec writes
    for bytes, and its strings are bytes anyway (nothing checks them for UTF-8)."""
    size = len(value)
    if size < 32:
        head = bytes((0xA0 | size,))
    elif size < 0x100:
        head = b"\xd9" + bytes((size,))
    elif size < 0x10000:
        head = b"\xda" + size.to_bytes(2, "big")
    else:
        head = b"\xdb" + size.to_bytes(4, "big")
    return msgspec.Raw(head + value)


def _pairs(record: msgspec.Struct, names: tuple[str, ...], binary: Callable[[bytes], _Value] = _as_is) -> list[_Value]:
    """Field/value pairs for HSET, skipping ``None`` (stored as an absent field): a float as
    ``_float`` keeps it, an int as its digits (the packed ACCEPT hands its values to Lua, which
    would format a number itself), a dict as JSON, bytes (and that JSON) through ``binary``."""
    pairs: list[_Value] = []
    for name in names:
        value = getattr(record, name)
        if value is None:
            continue
        cls = value.__class__
        if cls is float:
            value = _float(value)
        elif cls is int:
            value = str(value)
        elif cls is bytes:
            value = binary(value)
        elif cls is dict:
            value = binary(_JSON.encode(value))
        pairs += (name, value)
    return pairs


# Field names as Redis returns them (bytes), paired with the record's attribute: decoding a record
# is on every read's path, and turning every key into a str first was ~3% of a read request.
_B = {n: n.encode() for n in (*_OUTBOX_FIELDS, *_TXN_TEXT, *_TXN_FLOAT)}
_OUTBOX_TEXT_B = tuple((n, _B[n]) for n in _OUTBOX_TEXT)
_OUTBOX_INT_B = tuple((n, _B[n]) for n in _OUTBOX_INT)
_OUTBOX_FLOAT_B = tuple((n, _B[n]) for n in _OUTBOX_FLOAT)
_TXN_TEXT_B = tuple((n, _B[n]) for n in _TXN_TEXT)
_TXN_FLOAT_B = tuple((n, _B[n]) for n in _TXN_FLOAT)


def _fields(flat: list[bytes]) -> dict[bytes, bytes]:
    """HGETALL's flat reply ``[name, value, name, value, ...]`` as a dict, names left as bytes."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _outbox(flat: list[bytes]) -> OutboxRecord:
    return _outbox_of(_fields(flat))


def _outbox_of(f: dict[bytes, bytes]) -> OutboxRecord:
    values: dict[str, Any] = {"payload": f[b"payload"]}
    for name, key in _OUTBOX_TEXT_B:
        if key in f:
            values[name] = f[key].decode()
    for name, key in _OUTBOX_INT_B:
        if key in f:
            values[name] = int(f[key])
    for name, key in _OUTBOX_FLOAT_B:
        if key in f:
            values[name] = float(f[key])
    if b"result" in f:
        values["result"] = _RESULT.decode(f[b"result"])
    if b"held_behind" in f:  # only in SNAPSHOT's reply, never stored
        values["held_behind"] = f[b"held_behind"].decode() or None
    return OutboxRecord(**values)


def _transaction(flat: list[bytes]) -> TransactionRecord:
    f = _fields(flat)
    values: dict[str, Any] = {name: f[key].decode() for name, key in _TXN_TEXT_B if key in f}
    for name, key in _TXN_FLOAT_B:
        values[name] = float(f[key])
    return TransactionRecord(**values)


def volatility(config: Mapping[bytes | str, bytes | str]) -> str | None:
    """From CONFIG GET appendonly and save: ``None`` with AOF on; otherwise what a restart loses."""
    values = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
              for k, v in config.items()}  # fmt: skip
    if values.get("appendonly", "no") == "yes":
        return None
    if values.get("save", "").strip():
        return (
            "Redis writes only periodic snapshots (appendonly no): "
            "work accepted since the last one is lost if it restarts"
        )
    return "Redis keeps nothing on disk (appendonly no, no snapshots): all accepted work is lost if it restarts"


def _resource_key(kind: str, resource_id: str) -> str:
    if ":" in kind:
        raise ValueError(f"a resource kind cannot contain ':' ({kind!r})")
    return f"{kind}:{resource_id}"


_CONDITION_FLAG = {None: "0", "absent": "1", "unchanged": "2"}  # ACCEPT's 10th resource value


def _resource_args(
    r: ResourceRecord, condition: WriteCondition | None = None, binary: Callable[[bytes], _Value] = _as_is
) -> list[_Value]:
    has_txn = r.transaction_id is not None
    return [
        _resource_key(r.kind, r.id), r.kind, r.id, r.client_id, binary(r.body), r.transaction_id or "",
        "1" if has_txn else "0", _float(r.created_at), _float(r.updated_at), _CONDITION_FLAG[condition],
    ]  # fmt: skip


# ACCEPT's refusals: "<reason> <kind> <id>". A kind has no space; an id may (an account number
# cannot, but nothing in the store forbids it), so the message is read from the reason's end.
_REASONS = ("belongs to another client", "exists already", "exists with another body")


def _taken(refusal: str) -> ResourceTaken:
    reason = next((r for r in _REASONS if refusal.startswith(r + " ")), "")
    kind, _, resource_id = refusal.removeprefix(reason).strip().partition(" ")
    return ResourceTaken(kind, resource_id, reason or "refused")


def _filter_args(where: DeadLetterFilter) -> list[_Value]:
    args: list[_Value] = []
    for value in (where.target, where.error_kind, where.dead_before, where.dead_after):
        args += ["0", "0"] if value is None else ["1", value if isinstance(value, str) else _float(value)]
    return args


class RedisStore:
    """``Store`` on Redis. The client is the caller's: ``close`` leaves it open (see ``from_url``)."""

    def __init__(self, client: Redis, *, prefix: str = "billing-hub:") -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisStore needs a client with decode_responses=False (payloads are bytes)")
        self._client = client
        self._owns_client = False
        self._prefix = prefix
        self._pending, self._inflight = f"{prefix}pending", f"{prefix}inflight"
        self._waiting, self._dead, self._token = f"{prefix}waiting", f"{prefix}dead", f"{prefix}lease-token"
        self._accept = client.register_script(lua.ACCEPT)
        self._put_resources = client.register_script(lua.PUT_RESOURCES)
        self._claim = client.register_script(lua.CLAIM)
        self._record = client.register_script(lua.RECORD)
        self._release = client.register_script(lua.RELEASE)
        self._replay = client.register_script(lua.REPLAY)
        self._list_dead = client.register_script(lua.LIST_DEAD)
        self._snapshot = client.register_script(lua.SNAPSHOT)
        self._stats = client.register_script(lua.STATS)
        self._next_due = client.register_script(lua.NEXT_DUE)
        self._next_number = client.register_script(lua.NEXT_NUMBER)
        self._repair_order = client.register_script(lua.REPAIR_ORDER)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "billing-hub:", max_connections: int = 200) -> RedisStore:
        """A store with a client of its own, which ``close`` closes.

        Plain commands are pipelined on one connection (``gateway.redis_client``); the pool, for
        the rest, blocks when all connections are busy instead of failing (redis-py's default pool
        raises), so a burst of deliveries queues for a connection rather than erroring.
        """
        store = cls(pipelined_redis(url, timeout_s=STORE_TIMEOUT_S, max_connections=max_connections), prefix=prefix)
        store._owns_client = True
        return store

    async def accept(
        self,
        transaction: TransactionRecord,
        resources: list[ResourceRecord],
        outbox: list[OutboxRecord],
        idempotency_record: FinalWrite | FinalStatement | None = None,
        audit_record: AuditPush | InTransaction | None = None,
        only_if: Mapping[tuple[str, str], WriteCondition] | None = None,
    ) -> None:
        if isinstance(idempotency_record, FinalStatement):  # never dropped silently
            raise ValueError("the Redis store cannot run an SQL idempotency record with a transaction")
        if isinstance(audit_record, InTransaction):
            raise ValueError("the Redis store cannot run SQLite work with a transaction")
        conditions = only_if or {}
        entries = [
            [e.id, e.transaction_id, e.state, _float(e.next_attempt_at), _float(e.created_at), e.order_key or "",
             _pairs(e, _OUTBOX_FIELDS, _packed_text)]
            for e in outbox
        ]  # fmt: skip
        extras: list[list[_Value]] = []
        keys = [self._pending, self._dead, self._waiting]
        if idempotency_record is not None:
            keys.append(idempotency_record.key)
            extras.append(["set", _packed_text(idempotency_record.value), str(idempotency_record.ttl_ms)])
        if audit_record is not None:
            keys.append(audit_record.key)
            extras.append(["push", _packed_text(audit_record.value), ""])
        work = [
            _pairs(transaction, _TXN_TEXT + _TXN_FLOAT),
            [_resource_args(r, conditions.get((r.kind, r.id)), _packed_text) for r in resources],
            entries,
            extras,
        ]
        args: list[str | bytes] = [self._prefix, transaction.id, _PACKED.encode(work)]
        try:
            await self._accept(keys=keys, args=args)
        except ResponseError as exc:
            message = str(exc)
            if not message.startswith("resource-taken "):
                raise
            raise _taken(message.removeprefix("resource-taken ")) from None

    async def put_resources(self, resources: list[ResourceRecord]) -> None:
        if not resources:
            return
        args: list[_Value] = [self._prefix]
        for r in resources:
            args += _resource_args(r)
        await self._put_resources(args=args)

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        key = f"{self._prefix}resource:{_resource_key(kind, resource_id)}"
        f = cast("dict[bytes, bytes]", await self._client.hgetall(key))
        if not f:
            return None
        txn = f.get(b"transaction_id")
        return ResourceRecord(
            kind=f[b"kind"].decode(), id=f[b"id"].decode(), client_id=f[b"client_id"].decode(), body=f[b"body"],
            transaction_id=txn.decode() if txn is not None else None, created_at=float(f[b"created_at"]),
            updated_at=float(f[b"updated_at"]),
        )  # fmt: skip

    async def get_transaction(self, transaction_id: str) -> TransactionSnapshot | None:
        reply = await self._snapshot(args=[self._prefix, transaction_id])
        if reply is None:
            return None
        txn, entries, attempts = reply
        records = sorted((_outbox(e) for e in entries), key=lambda e: e.id)
        history = sorted((_ATTEMPT.decode(a) for a in attempts), key=lambda a: (a.started_at, a.outbox_id, a.number))
        return _transaction(txn), records, history

    async def get_delivery(self, entry_id: str) -> OutboxRecord | None:
        fields = cast("dict[bytes, bytes]", await self._client.hgetall(f"{self._prefix}outbox:{entry_id}"))
        return _outbox_of(fields) if fields else None

    async def claim_due(self, now: float, limit: int, lease_s: float, owner: str) -> list[OutboxRecord]:
        reply = await self._claim(
            keys=[self._pending, self._inflight, self._token],
            args=[self._prefix, _float(now), str(limit), _float(now + lease_s), owner],
        )
        return [_outbox(e) for e in reply]

    async def record_attempt(
        self,
        entry: OutboxRecord,
        attempt: AttemptRecord,
        *,
        next_attempt_at: float | None,
        audit_record: AuditPush | InTransaction | None = None,
    ) -> TransactionRecord:
        if isinstance(audit_record, InTransaction):
            raise ValueError("the Redis store cannot run SQLite work with an attempt")
        if entry.state not in _RECORDED_STATES:
            raise ValueError(f"an attempt leaves an entry pending, done or dead, not {entry.state!r}")
        names = ("state", "attempts", "result", "error_kind", "error", "updated_at", "budget_attempts",
                 "budget_started_at")  # fmt: skip
        pairs = _pairs(entry, names)
        if next_attempt_at is not None:
            pairs += ["next_attempt_at", _float(next_attempt_at)]
        cleared = [n for n in names if getattr(entry, n) is None]
        keys = [self._pending, self._inflight, self._dead, self._waiting]
        args: list[_Value] = [
            self._prefix, entry.id, str(entry.lease_token), entry.state,
            "" if next_attempt_at is None else _float(next_attempt_at), str(attempt.number),
            _JSON.encode(attempt), _float(entry.updated_at), str(len(pairs) // 2), *pairs, str(len(cleared)),
            *cleared,
        ]  # fmt: skip
        if audit_record is not None:
            keys.append(audit_record.key)
            args.append(audit_record.value)
        reply = await self._record(keys=keys, args=args)
        if reply == 0:
            raise LeaseLost(entry.id)
        return _transaction(reply)

    async def release(self, entry: OutboxRecord, next_attempt_at: float) -> None:
        released = await self._release(
            keys=[self._pending, self._inflight],
            args=[self._prefix, entry.id, str(entry.lease_token), _float(next_attempt_at)],
        )
        if released == 0:
            raise LeaseLost(entry.id)

    async def list_dead(self, where: DeadLetterFilter, limit: int, after_id: str | None) -> list[OutboxRecord]:
        found: list[OutboxRecord] = []
        start: _Value = f"({after_id}" if after_id else "-"
        scan = max(limit, _DEAD_SCAN)
        filters = _filter_args(where)
        while len(found) < limit:
            last, examined, entries = await self._list_dead(
                keys=[self._dead], args=[self._prefix, start, str(limit - len(found)), str(scan), *filters]
            )
            found += [_outbox(e) for e in entries]
            if examined < scan or last is None:
                break
            start = b"(" + last
        return found

    async def replay(self, entry_ids: list[str], now: float) -> list[OutboxRecord]:
        if not entry_ids:
            return []
        reply = await self._replay(
            keys=[self._pending, self._dead, self._waiting], args=[self._prefix, _float(now), *entry_ids]
        )
        return [_outbox(e) for e in reply]

    async def outbox_stats(self, now: float) -> tuple[int, float | None, int]:
        waiting, oldest, dead = await self._stats(keys=[self._waiting, self._dead])
        return int(waiting), (now - float(oldest) if oldest is not None else None), int(dead)

    async def next_due_at(self) -> float | None:
        due = [float(s) for s in await self._next_due(keys=[self._pending, self._inflight]) if s is not None]
        return min(due) if due else None

    async def repair_order(self) -> int:
        cursor: _Value = "0"
        released = 0
        while True:
            cursor, count = await self._repair_order(
                keys=[f"{self._prefix}order-queues", self._pending], args=[self._prefix, cursor, "500"]
            )
            released += int(count)
            if cursor in (b"0", "0"):
                return released

    async def next_number(self, name: str, ceiling: int, first: int) -> int:
        key = f"{self._prefix}sequence:{name}"
        return int(await self._next_number(keys=[key], args=[str(ceiling), str(first)]))

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def volatility(self) -> str | None:
        """Why the server would lose accepted work on a restart, or ``None`` when it persists it
        (or will not say: managed services often refuse CONFIG)."""
        try:
            config = cast("dict[bytes | str, bytes | str]", await self._client.config_get("appendonly"))
            config |= cast("dict[bytes | str, bytes | str]", await self._client.config_get("save"))
        except RedisError:
            return None
        return volatility(config)

    async def close(self) -> None:
        """Closes the client only when ``from_url`` made it; a client passed in stays the caller's."""
        if self._owns_client:
            await self._client.aclose()
