"""The audit trail: an append-only, hash-chained record of every call and every delivery.

Why a hash chain: an audit trail is only worth having if a changed, removed or reordered record
is *detectable*. Each record carries the hash of the one before, so ``verify_chain`` (behind
``billing-hub audit verify``) walks the log and names the first record that does not fit.

Audit records never carry PHI. ``AuditEntry`` has room only for ids and codes (client id,
operationId, the hub's resource/transaction/trace ids, outcome, HTTP status, time); callers pass
ids, never payload values such as names or member ids. Where a person must be correlated, pass
``policies.redaction.phi_hash(value)`` as an id instead.

Two backends behind one ``AuditLog`` protocol, run by the same tests:

- ``SqliteAuditLog(path)``: embedded, one ``BEGIN IMMEDIATE`` transaction per append.
- ``RedisAuditLog(client, prefix)``: shared by several hub instances; optimistic compare-and-append
  with the hash computed in Python (Redis Lua has no SHA-256).

Most records are queued and chained in batches after the call is answered (``gateway.audit_writer``).
The record of a call that stored work is not: ``with_work`` gives it in the form the hub's store
writes in the same atomic write as the work (SQLite: chained in that transaction; Redis: pushed onto
a pending list that the next append chains first), so a crash after the write cannot lose it.

The record layout, hashing and verification live in ``_audit_chain``; each backend in its own module.
"""

from __future__ import annotations

from policies._audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    MAX_PAGE,
    AuditCorrupt,
    AuditEntry,
    AuditHead,
    AuditLog,
    AuditPush,
    AuditRecord,
    InTransaction,
    VerifyResult,
    chain_hash,
    verify_chain,
    verify_log,
)
from policies._audit_redis import AuditWriteConflict, RedisAuditLog
from policies._audit_sqlite import SqliteAuditLog

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "MAX_PAGE",
    "AuditCorrupt",
    "AuditEntry",
    "AuditHead",
    "AuditLog",
    "AuditPush",
    "AuditRecord",
    "AuditWriteConflict",
    "InTransaction",
    "RedisAuditLog",
    "SqliteAuditLog",
    "VerifyResult",
    "chain_hash",
    "verify_chain",
    "verify_log",
]
