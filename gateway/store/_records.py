"""What the hub stores: transactions, their outbox entries and attempts, and resources."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "AttemptRecord",
    "DeliveryState",
    "OutboxRecord",
    "ResourceRecord",
    "TransactionRecord",
    "TransactionState",
    "derive_state",
]

TransactionState = Literal["accepted", "delivering", "completed", "failed"]
DeliveryState = Literal["pending", "in_flight", "done", "dead"]


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


class OutboxRecord(msgspec.Struct, kw_only=True):
    id: str
    transaction_id: str
    target: str
    operation: str
    payload: bytes
    external_ref: str
    state: DeliveryState = "pending"
    attempts: int = 0
    next_attempt_at: float
    result: dict[str, str] | None = None
    error_kind: str | None = None
    error: str | None = None
    updated_at: float


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
