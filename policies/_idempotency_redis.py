"""Idempotency records in Redis: one record per key shared by every hub instance.

A record is one string, ``<state><fingerprint>\\n<response>``: state ``F`` (first attempt in flight,
no response yet) or ``D`` (done, msgpack response follows); a provisional record is
``P<fingerprint>\\n<in flight until, epoch ms>\\n<response>``. ``begin`` is a single
``SET key F<fp>\\n NX PX <lease> GET`` (Redis >= 7.0): it claims an absent key and returns what is
there otherwise, atomically, in one round trip. The in-flight record lives for the lease only, so a
hub that crashes mid-request blocks the key for a minute, not for the whole TTL. ``complete`` and
``release`` are short Lua scripts because each reads the record before changing it.

``final_write`` gives the completed record as a plain SET for the hub's Redis store, which writes it
in the same script as the transaction it answers for: a crash between the two writes could
otherwise let a retry run the request a second time once the in-flight lease ran out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from policies._idempotency_core import (
    DEFAULT_LEASE_S,
    STARTED,
    Begin,
    FinalWrite,
    IdempotencyUnavailable,
    StoredResponse,
    classify,
    encode_response,
    lease_s,
)

__all__ = ["DEFAULT_PREFIX", "RedisIdempotencyStore"]

DEFAULT_PREFIX = "billing-hub:idem:"

# Keeps the fingerprint begin wrote; with no record left there is nothing to attach the response to.
_COMPLETE_LUA = """
local record = redis.call('GET', KEYS[1])
if not record then return 0 end
local fingerprint = string.match(record, '^[FDP]([^\\n]*)\\n')
redis.call('SET', KEYS[1], 'D' .. fingerprint .. '\\n' .. ARGV[1], 'PX', ARGV[2])
return 1
"""

# Forgets only an in-flight record: a completed one stays replayable, a provisional one becomes final.
_RELEASE_LUA = """
local state = redis.call('GETRANGE', KEYS[1], 0, 0)
if state == 'F' then return redis.call('DEL', KEYS[1]) end
if state == 'P' then
  local record = redis.call('GET', KEYS[1])
  local head_end = string.find(record, '\\n', 1, true)
  local until_end = string.find(record, '\\n', head_end + 1, true)
  redis.call('SET', KEYS[1], 'D' .. string.sub(record, 2, head_end) .. string.sub(record, until_end + 1), 'KEEPTTL')
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _parse(record: bytes, fingerprint: str) -> Begin:
    head, _, response = record.partition(b"\n")
    state, stored_fingerprint = head[:1], head[1:].decode()
    if state == b"P":
        in_flight_until, _, response = response.partition(b"\n")
        if int(in_flight_until) > time.time() * 1000:  # its owner is still running
            return classify(stored_fingerprint, fingerprint, None)
        return classify(stored_fingerprint, fingerprint, response)
    return classify(stored_fingerprint, fingerprint, response if state == b"D" else None)


class RedisIdempotencyStore:
    """The client is the caller's (shared, closed by its owner); keys are ``prefix + key``."""

    def __init__(self, client: Redis, prefix: str = DEFAULT_PREFIX, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        self._client = client
        self._prefix = prefix
        self._lease_s = lease_s
        self._complete = client.register_script(_COMPLETE_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    async def begin(self, key: str, fingerprint: str, ttl_s: float) -> Begin:
        redis_key, claim, px = self.claim_arguments(key, fingerprint, ttl_s)
        try:
            # The command as ``set(..., nx=True, px=px, get=True)`` sends it, without that method's
            # checks of its fourteen options on every write (3 % of an accepted write's CPU, py-spy).
            # (redis-py leaves execute_command unannotated; ``get=True`` makes its reply the old value.)
            record = await self._client.execute_command(  # type: ignore[no-untyped-call]
                "SET", redis_key, claim, "NX", "GET", "PX", px, get=True
            )
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable("idempotency records unavailable") from exc
        return self.claimed(record, fingerprint)

    def claim_arguments(self, key: str, fingerprint: str, ttl_s: float) -> tuple[str, bytes, int]:
        """What ``begin`` sends as ``SET <key> <claim> NX GET PX <ms>``: the key, the in-flight record,
        its lease in ms (for a script that claims inside another, ``policies._limit_and_claim_redis``)."""
        if "\n" in fingerprint:
            raise ValueError("a fingerprint cannot contain a newline")
        return self._prefix + key, b"F" + fingerprint.encode() + b"\n", _ms(lease_s(ttl_s, self._lease_s))

    @staticmethod
    def claimed(record: object, fingerprint: str) -> Begin:
        """What the claim's reply (the record that was there, or none) means for this request."""
        if record is None:
            return STARTED
        if not isinstance(record, bytes):
            raise TypeError("RedisIdempotencyStore needs a client with decode_responses=False")
        return _parse(record, fingerprint)

    async def complete(self, key: str, response: StoredResponse, ttl_s: float) -> None:
        await self._run(self._complete(keys=[self._prefix + key], args=[encode_response(response), _ms(ttl_s)]))

    async def release(self, key: str) -> None:
        await self._run(self._release(keys=[self._prefix + key]))

    def final_write(
        self, key: str, fingerprint: str, response: StoredResponse, ttl_s: float, *, provisional: bool = False
    ) -> FinalWrite:
        """The record ``complete`` leaves (same key, same form) for a store on this Redis server, or a
        provisional one, in flight for the lease (instances compare it with their own clocks)."""
        head = b"D" + fingerprint.encode() + b"\n"
        if provisional:
            until = _ms(time.time() + lease_s(ttl_s, self._lease_s))
            head = b"P" + fingerprint.encode() + b"\n" + str(until).encode() + b"\n"
        return FinalWrite(key=self._prefix + key, value=head + encode_response(response), ttl_ms=_ms(ttl_s))

    async def aclose(self) -> None:
        """Nothing of its own to release: the client belongs to the caller."""

    @staticmethod
    async def _run(call: Awaitable[object]) -> None:
        try:
            await call
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable("idempotency records unavailable") from exc
