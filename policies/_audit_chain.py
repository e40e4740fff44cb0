"""The audit record, its hash chain and the verifier: what both storage backends share.

Each record's hash is SHA-256 over a canonical encoding of every other field *including the previous
record's hash*, so changing, removing or reordering any record breaks the chain from that point on.
The encoding is a msgspec JSON array in the fixed order of ``HASHED_FIELDS``: positional, so field
renames cannot change old hashes, and a future field can only be appended (old records then hash
with its default, which must therefore be ``None``).

The chain alone cannot see the *last* records being cut off (what remains is still a valid chain),
so each backend also keeps a head (seq and hash of the newest record), written in the same atomic
step as the record; ``verify_chain(..., head=...)`` checks it. Someone able to rewrite the store
*and* the head consistently defeats any local check: export the head somewhere else to anchor it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import msgspec

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
    "InTransaction",
    "VerifyResult",
    "chain_hash",
    "check_limit",
    "matches",
    "seal",
    "seal_all",
    "verify_chain",
    "verify_log",
]

GENESIS_HASH = "0" * 64
MAX_PAGE = 1000


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller records about one call or one delivery: ids and codes only, never PHI.

    ``resource_id``, ``transaction_id`` and ``trace_id`` are the hub's own ids (a claim id or an
    account number is an id, a member id or a patient name is not). ``at`` is epoch seconds.
    """

    client_id: str
    operation: str  # the operationId, or a delivery operation such as "erp.post_journal"
    resource_id: str | None
    outcome: str  # "ok" | "rejected" | "error" | "delivered" | "failed" | ...
    status: int | None
    trace_id: str | None
    at: float
    target: str | None = None
    transaction_id: str | None = None


class AuditRecord(AuditEntry, frozen=True, kw_only=True):
    seq: int
    prev_hash: str
    hash: str


class AuditHead(msgspec.Struct, frozen=True):
    """The newest record's seq and hash (``0`` and the genesis hash for an empty log)."""

    seq: int = 0
    hash: str = GENESIS_HASH


HASHED_FIELDS = (
    "seq",
    "prev_hash",
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
_ENCODER = msgspec.json.Encoder()


def chain_hash(entry: AuditEntry, seq: int, prev_hash: str) -> str:
    """SHA-256 of the JSON array of HASHED_FIELDS' values, in that order. Spelled out rather than
    built from the names: it runs for every call the hub answers (the golden-value test pins it)."""
    # float(): an int passed as ``at`` must hash as the float that storage gives back.
    values = [
        seq, prev_hash, entry.client_id, entry.operation, entry.resource_id, entry.outcome,
        entry.status, entry.trace_id, float(entry.at), entry.target, entry.transaction_id,
    ]  # fmt: skip
    return hashlib.sha256(_ENCODER.encode(values)).hexdigest()


def seal(entry: AuditEntry, seq: int, prev_hash: str) -> AuditRecord:
    return AuditRecord(
        client_id=entry.client_id,
        operation=entry.operation,
        resource_id=entry.resource_id,
        outcome=entry.outcome,
        status=entry.status,
        trace_id=entry.trace_id,
        at=float(entry.at),
        target=entry.target,
        transaction_id=entry.transaction_id,
        seq=seq,
        prev_hash=prev_hash,
        hash=chain_hash(entry, seq, prev_hash),
    )


def seal_all(entries: list[AuditEntry], head: AuditHead) -> list[AuditRecord]:
    """Chain ``entries``, in order, onto ``head``: each record's prev_hash is the one before it."""
    records = []
    seq, prev = head.seq, head.hash
    for entry in entries:
        seq += 1
        record = seal(entry, seq, prev)
        records.append(record)
        prev = record.hash
    return records


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")


def matches(
    record: AuditRecord,
    client_id: str | None,
    operation: str | None,
    outcome: str | None,
    since: float | None,
    until: float | None,
) -> bool:
    """The page filter, for backends that filter in Python: ``since`` inclusive, ``until`` exclusive."""
    return (
        (client_id is None or record.client_id == client_id)
        and (operation is None or record.operation == operation)
        and (outcome is None or record.outcome == outcome)
        and (since is None or record.at >= since)
        and (until is None or record.at < until)
    )


class AuditPush(msgspec.Struct, frozen=True, kw_only=True):
    """An entry to push onto the Redis log's pending list, in the hub store's atomic write of the
    work it records; the next append chains it (see ``AuditLog.with_work``)."""

    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class InTransaction:
    """Work for the hub's SQLite store to run inside the transaction that stores a piece of work:
    here, chaining that work's audit record onto the log in the same database."""

    run: Callable[[sqlite3.Connection], object]


class AuditLog(Protocol):
    """Append-only, hash-chained; ``append`` is serialised so the chain never forks."""

    # Whether records stored with work wait for an append to chain them (Redis), or are chained in
    # the work's own transaction (SQLite).
    chains_pending: bool

    def with_work(self, entry: AuditEntry) -> AuditPush | InTransaction:
        """``entry`` in the form the hub's store of this backend writes atomically with the work the
        entry records, so the record of an accepted write cannot be lost once the write is stored."""
        ...

    async def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """Chain several entries in order, in one write where the backend can; entries written with
        their work but not chained yet (Redis) are chained first, also when ``entries`` is empty."""
        ...

    async def append(self, entry: AuditEntry) -> AuditRecord: ...

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
    ) -> list[AuditRecord]: ...

    def iterate(self) -> AsyncIterator[AuditRecord]:
        """Every record in seq order."""
        ...

    async def head(self) -> AuditHead: ...

    async def aclose(self) -> None: ...


class AuditCorrupt(Exception):
    """A stored record can no longer be read as a record; raised by ``iterate``."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"audit record {seq} cannot be read")
        self.seq = seq


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """``first_bad_seq``: every record before it verified; from it on, the log cannot be trusted."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


async def _each(records: AsyncIterable[AuditRecord] | Iterable[AuditRecord]) -> AsyncIterator[AuditRecord]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record


def _problem(record: AuditRecord, expected_seq: int, prev_hash: str) -> tuple[int, str] | None:
    """(first bad seq, reason) for one record in its place in the chain, or None when it fits."""
    if record.seq != expected_seq:
        return expected_seq, f"expected record {expected_seq}, found {record.seq}: removed or reordered"
    try:
        recomputed: str | None = chain_hash(record, record.seq, record.prev_hash)
    except (TypeError, ValueError):  # a stored value no longer has its type (e.g. ``at`` made text)
        recomputed = None
    if recomputed != record.hash:
        return record.seq, f"record {record.seq} was changed: its hash does not match its content"
    if record.prev_hash != prev_hash:
        # Both records hash correctly on their own, so one of them was rewritten wholesale; the
        # earlier one is the first that cannot be trusted.
        bad = max(record.seq - 1, 1)
        return bad, f"record {record.seq} does not link to record {record.seq - 1}: one was rewritten"
    return None


async def verify_chain(
    records: AsyncIterable[AuditRecord] | Iterable[AuditRecord], *, head: AuditHead | None = None
) -> VerifyResult:
    """Walk ``records`` (in seq order, from seq 1) and name the first record that breaks the chain.

    With ``head`` (read *before* iterating, so concurrent appends do not look like tampering) it also
    catches records cut off the end.
    """
    checked, prev_hash = 0, GENESIS_HASH
    try:
        async for record in _each(records):
            problem = _problem(record, checked + 1, prev_hash)
            if problem is None and head is not None and record.seq == head.seq and record.hash != head.hash:
                problem = record.seq, f"record {record.seq} does not match the stored head"
            if problem is not None:
                return VerifyResult(ok=False, checked=checked, first_bad_seq=problem[0], reason=problem[1])
            checked, prev_hash = checked + 1, record.hash
    except AuditCorrupt as exc:
        first_bad = min(exc.seq, checked + 1)
        return VerifyResult(ok=False, checked=checked, first_bad_seq=first_bad, reason=str(exc))
    if head is not None and checked < head.seq:
        reason = f"records {checked + 1}..{head.seq} are missing from the end"
        return VerifyResult(ok=False, checked=checked, first_bad_seq=checked + 1, reason=reason)
    return VerifyResult(ok=True, checked=checked)


async def verify_log(log: AuditLog) -> VerifyResult:
    """The whole log against its own head: what ``billing-hub audit verify`` runs."""
    head = await log.head()
    result = await verify_chain(log.iterate(), head=head)
    if result.ok and result.checked > head.seq:
        # Records past the head read first: appended meanwhile by a running hub, or the head was
        # removed or moved back, which would hide a cut-off tail. Appends move the head past them.
        now = await log.head()
        if now.seq < result.checked:
            reason = f"records {now.seq + 1}..{result.checked} lie past the stored head (seq {now.seq})"
            return VerifyResult(ok=False, checked=now.seq, first_bad_seq=now.seq + 1, reason=reason)
    return result
