"""The store interface the gateway depends on; backends implement it (SQLite now, Redis later)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gateway.store._records import (
    AttemptRecord,
    DeadLetterFilter,
    OutboxRecord,
    ResourceRecord,
    TransactionRecord,
    WriteCondition,
)
from policies.audit import AuditPush, InTransaction
from policies.idempotency import FinalStatement, FinalWrite

__all__ = ["Store", "TransactionSnapshot"]

TransactionSnapshot = tuple[TransactionRecord, list[OutboxRecord], list[AttemptRecord]]


class Store(Protocol):
    async def accept(
        self,
        transaction: TransactionRecord,
        resources: list[ResourceRecord],
        outbox: list[OutboxRecord],
        idempotency_record: FinalWrite | FinalStatement | None = None,
        audit_record: AuditPush | InTransaction | None = None,
        only_if: Mapping[tuple[str, str], WriteCondition] | None = None,
    ) -> None:
        """Persist a transaction, its resources and its outbox entries in one atomic write.

        Nothing is written, and ``ResourceTaken`` raised, when a resource belongs to another client
        or, for a ``(kind, id)`` in ``only_if``, does not meet its condition.

        ``idempotency_record`` and ``audit_record``, when given, are written in that same write: the
        finished record of the idempotent request this transaction answers, and the audit record of
        the call that stored it, each in this backend's form (Redis commands for the Redis store, work
        in the SQLite transaction for the SQLite store; the other form is refused, not dropped).
        """

    async def put_resources(self, resources: list[ResourceRecord]) -> None: ...

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None: ...

    async def get_transaction(self, transaction_id: str) -> TransactionSnapshot | None: ...

    async def get_delivery(self, entry_id: str) -> OutboxRecord | None: ...

    async def claim_due(self, now: float, limit: int, lease_s: float, owner: str) -> list[OutboxRecord]:
        """Lease up to ``limit`` entries due now (or whose lease expired) to ``owner``."""

    async def record_attempt(
        self,
        entry: OutboxRecord,
        attempt: AttemptRecord,
        *,
        next_attempt_at: float | None,
        audit_record: AuditPush | InTransaction | None = None,
    ) -> TransactionRecord:
        """Store an attempt and the entry's new state (with the attempt's audit record, when given, in
        the same atomic step); return the transaction with its derived state.

        ``entry.state`` says what became of it: ``done`` (with ``result``), ``dead``, or ``pending``
        again with ``next_attempt_at``. Raises ``LeaseLost`` when ``entry.lease_token`` is no longer
        the entry's current lease (another dispatcher claimed it after our lease ran out).
        """

    async def release(self, entry: OutboxRecord, next_attempt_at: float) -> None:
        """Give a leased entry back without an attempt (circuit open, shutting down)."""

    async def list_dead(self, where: DeadLetterFilter, limit: int, after_id: str | None) -> list[OutboxRecord]:
        """Dead-lettered entries matching ``where``, oldest id first, after ``after_id``."""

    async def replay(self, entry_ids: list[str], now: float) -> list[OutboxRecord]:
        """Make dead entries pending again with a fresh retry budget; returns those replayed."""

    async def outbox_stats(self, now: float) -> tuple[int, float | None, int]:
        """(entries waiting or in flight, age in seconds of the oldest of them, dead entries)."""

    async def next_due_at(self) -> float | None: ...

    async def repair_order(self) -> int:
        """Release entries held behind entries of their order key that a process of an earlier
        release finished without releasing them (a rolling upgrade); returns how many."""

    async def next_number(self, name: str, ceiling: int, first: int) -> int:
        """The next value of a durable named sequence shared by every process on this store:
        ``first`` when the sequence is new, then one more each call, back to 1 after ``ceiling``."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
