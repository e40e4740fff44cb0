"""The idempotency contract both stores implement, and the decision table they share.

A record is a fingerprint plus, once the first attempt has finished, its response. ``begin`` either
claims the key (:class:`Started`) or reports what is there; the table in :func:`classify` is the
whole of the semantics, so the two backends cannot drift apart: a different fingerprint is a
:class:`Mismatch` whether the first attempt is running or done; the same fingerprint is
:class:`InFlight` while running and a :class:`Replay` once done.

A *provisional* record (``final_write(..., provisional=True)``) belongs to a request that has stored
its work but is still running (it waits for the work to finish before it answers). It holds the
answer that work already earned (202 and its ``Location``): while its owner runs, a retry meets
``InFlight`` as before; once the owner is gone without finishing (its in-flight lease ran out, it
released the key, or a single node restarted) the retry replays that answer instead of storing the
work a second time.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, TypeAlias

import msgspec

__all__ = [
    "DEFAULT_LEASE_S",
    "Begin",
    "FinalStatement",
    "FinalWrite",
    "IdempotencyStore",
    "IdempotencyUnavailable",
    "InFlight",
    "Mismatch",
    "Replay",
    "Started",
    "StoredResponse",
    "classify",
    "decode_response",
    "encode_response",
    "fingerprint",
    "lease_s",
]

# An in-flight record outlives a crashed request by this much at most, not by the full TTL.
DEFAULT_LEASE_S = 60.0


class IdempotencyUnavailable(Exception):
    """The record store did not answer (Redis down or timed out, SQLite locked or unwritable)."""


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class FinalWrite(msgspec.Struct, frozen=True, kw_only=True):
    """A finished record as one string key to set, for a store on the same Redis server to write in
    the same atomic write as the work the record answers for (see ``IdempotencyStore.final_write``)."""

    key: str
    value: bytes
    ttl_ms: int


class FinalStatement(msgspec.Struct, frozen=True, kw_only=True):
    """A finished record as one SQL statement, for the hub's SQLite store to run in the transaction
    that stores the work the record answers for (the table lives in the same database)."""

    sql: str
    params: tuple[str | bytes | float | None, ...]


class Started(msgspec.Struct, frozen=True):
    """This caller owns the key: run the request, then ``complete`` or ``release``."""


class Replay(msgspec.Struct, frozen=True):
    """The first attempt finished; answer with its response."""

    response: StoredResponse


class InFlight(msgspec.Struct, frozen=True):
    """The first attempt with the same request is still running (answer 409)."""


class Mismatch(msgspec.Struct, frozen=True):
    """The key was used for a different request (answer 422)."""


Begin: TypeAlias = Started | Replay | InFlight | Mismatch

STARTED, IN_FLIGHT, MISMATCH = Started(), InFlight(), Mismatch()


class IdempotencyStore(Protocol):
    async def begin(self, key: str, fingerprint: str, ttl_s: float) -> Begin: ...

    async def complete(self, key: str, response: StoredResponse, ttl_s: float) -> None: ...

    async def release(self, key: str) -> None:
        """The request ended without a response worth keeping: forget an in-flight record (a retry
        runs again); a provisional one becomes final (its work is stored: a retry replays it)."""

    def final_write(
        self, key: str, fingerprint: str, response: StoredResponse, ttl_s: float, *, provisional: bool = False
    ) -> FinalWrite | FinalStatement | None:
        """What ``complete`` would write, as a write the hub's store can make atomically with its own
        (a Redis SET, or an SQL statement); ``None`` when this backend's records cannot be written so.
        ``provisional``: the request is still running; the record answers ``InFlight`` until the
        in-flight lease runs out or the key is released, and replays ``response`` after that."""

    async def aclose(self) -> None: ...


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(StoredResponse)


def encode_response(response: StoredResponse) -> bytes:
    return _ENCODER.encode(response)


def decode_response(data: bytes) -> StoredResponse:
    return _DECODER.decode(data)


def classify(stored_fingerprint: str, fingerprint: str, response: bytes | None) -> Begin:
    """What a ``begin`` meets when a live record already holds the key."""
    if stored_fingerprint != fingerprint:
        return MISMATCH
    return IN_FLIGHT if response is None else Replay(decode_response(response))


def lease_s(ttl_s: float, lease: float) -> float:
    """How long an in-flight record lives: the lease, unless the whole TTL is shorter."""
    return min(ttl_s, lease)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 hex of the request as sent: method, path (with query, if the caller includes it), body.

    Method and path are length-prefixed so no two different requests share a canonical form. The body
    is hashed byte for byte rather than re-serialised: a retry is the same bytes, and a replayed
    response must answer exactly what was sent.
    """
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8", "surrogatepass")):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(body)
    return digest.hexdigest()
