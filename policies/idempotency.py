"""Idempotent POSTs per draft-ietf-httpapi-idempotency-key-header: run once, replay the rest.

The caller builds the record key (client + route + ``Idempotency-Key``) and the request
:func:`fingerprint`, then asks a store to :meth:`~IdempotencyStore.begin`. The answer is one of four
tagged results, so the gateway matches on it instead of reading flags: :class:`Started` (run the
request, then ``complete`` with its response, or ``release`` it if it failed with nothing worth
replaying), :class:`Replay` (send the stored response), :class:`InFlight` (409) or
:class:`Mismatch` (422). Two backends: SQLite for one node, Redis for several. On Redis,
:class:`RedisLimitAndClaim` runs a request's rate limit and its claim in one round trip.
"""

from policies._idempotency_core import (
    Begin,
    FinalStatement,
    FinalWrite,
    IdempotencyStore,
    IdempotencyUnavailable,
    InFlight,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
    fingerprint,
)
from policies._idempotency_redis import RedisIdempotencyStore
from policies._idempotency_sqlite import SqliteIdempotencyStore
from policies._limit_and_claim_redis import LimitAndClaimUnavailable, RedisLimitAndClaim

__all__ = [
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
