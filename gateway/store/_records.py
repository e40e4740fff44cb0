"""What the hub stores: transactions, their outbox entries and attempts, and resources."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "AttemptRecord",
    "DeadLetterFilter",
    "DeliveryState",
    "LeaseLost",
    "OutboxRecord",
    "ResourceRecord",
    "ResourceTaken",
    "TransactionRecord",
    "TransactionState",
    "WriteCondition",
    "derive_state",
]

TransactionState = Literal["accepted", "delivering", "completed", "failed"]
DeliveryState = Literal["pending", "in_flight", "done", "dead"]
# What ``accept`` may find of a resource it writes: none at all ("absent"), or one with the same body
# ("unchanged": written again, it changes nothing the client sent).
WriteCondition = Literal["absent", "unchanged"]


class TransactionRecord(msgspec.Struct, kw_only=True):
    id: str
    client_id: str
    kind: str
    resource_type: str
    resource_id: str
    state: TransactionState = "accepted"
    trace_id: str | None = None
    created_at: float
    updated_at: float
    span_id: str | None = None  # of the request that accepted the work: deliveries link to it


class OutboxRecord(msgspec.Struct, kw_only=True):
    id: str
    transaction_id: str
    target: str
    operation: str
    payload: bytes
    external_ref: str
    state: DeliveryState = "pending"
    attempts: int = 0  # every attempt ever made (numbers the attempt history)
    next_attempt_at: float
    result: dict[str, str] | None = None
    error_kind: str | None = None
    error: str | None = None
    created_at: float
    updated_at: float
    # The current retry budget: attempts and first attempt since acceptance or the last replay.
    budget_attempts: int = 0
    budget_started_at: float | None = None
    replays: int = 0
    # Fencing token of the lease under which this copy was claimed; stale holders are refused.
    lease_token: int = 0
    # W3C traceparent of the request that accepted the work: delivery spans join its trace.
    traceparent: str | None = None
    # The transaction's client and trace id, so an attempt's audit record can be written with the
    # attempt. None on entries accepted before entries carried them.
    client_id: str | None = None
    trace_id: str | None = None
    # Entries with the same key reach their target one at a time, in the order they were queued
    # (accepted, or replayed): an older account update must not overwrite a newer one at the ERP
    # because its first attempt failed. None (entries from before keys): no ordering.
    order_key: str | None = None
    # Set by ``get_transaction`` only, never stored: for a pending entry held by its order key, the
    # transaction of the oldest unfinished entry of that key (the one it waits for), else None.
    held_behind: str | None = None


class ResourceTaken(Exception):
    """``accept`` wrote nothing: a resource it would write belongs to another client, or does not
    meet its ``WriteCondition``. Checked inside the store's atomic write, so two concurrent writers
    cannot both pass a check made beforehand."""

    def __init__(self, kind: str, resource_id: str, reason: str) -> None:
        super().__init__(f"{kind} {resource_id}: {reason}")
        self.kind, self.resource_id, self.reason = kind, resource_id, reason


class LeaseLost(Exception):
    """Our lease on an outbox entry expired and another dispatcher claimed it: drop our result."""


class DeadLetterFilter(msgspec.Struct, kw_only=True, frozen=True):
    target: str | None = None
    error_kind: str | None = None
    dead_before: float | None = None  # updated_at earlier than this (epoch seconds)
    dead_after: float | None = None


class AttemptRecord(msgspec.Struct, kw_only=True):
    outbox_id: str
    number: int
    started_at: float
    duration_ms: float
    outcome: Literal["success", "retry", "reject", "misconfigured"]
    status: int | None = None
    error: str | None = None


class ResourceRecord(msgspec.Struct, kw_only=True):
    kind: str
    id: str
    client_id: str
    body: bytes
    transaction_id: str | None = None
    created_at: float
    updated_at: float


def derive_state(deliveries: list[DeliveryState], attempted: bool) -> TransactionState:
    """A transaction's state follows from its deliveries; it is never set by hand."""
    if all(state == "done" for state in deliveries):
        return "completed"
    if all(state in ("done", "dead") for state in deliveries):
        return "failed"
    return "delivering" if attempted else "accepted"
