"""Response bodies of the v1 API (the canonical objects wrapped with the hub's own facts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from canonical.v1 import BalancingFinding, Claim, ClaimStatus, JournalEntry, PatientAccount, Remittance
from gateway.store import AttemptRecord, OutboxRecord, TransactionRecord, TransactionState

__all__ = [
    "AccountView",
    "AttemptView",
    "ClaimView",
    "DeliveryView",
    "JournalView",
    "RemittanceView",
    "TransactionView",
    "timestamp",
    "transaction_view",
]


class View(msgspec.Struct, kw_only=True, frozen=True):
    pass


def timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class AttemptView(View, kw_only=True, frozen=True):
    number: int
    started_at: datetime
    duration_ms: float
    outcome: Literal["success", "retry", "reject", "misconfigured"]
    status: int | None = None
    error: str | None = None


_HELD_BEHIND = (
    "Set while this delivery is pending behind an unfinished delivery of the same resource to the same "
    "target accepted before it: that delivery's transaction id. This one goes when that one is done or dead."
)


class DeliveryView(View, kw_only=True, frozen=True):
    target: str
    operation: str
    state: Literal["pending", "in_flight", "done", "dead"]
    attempts: int
    reference: str | None = None
    details: dict[str, str] = {}
    error_kind: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    # Deliveries of one resource to one target go one at a time, in order; a replay queues anew.
    held_behind: Annotated[str | None, msgspec.Meta(description=_HELD_BEHIND)] = None
    history: list[AttemptView] = []


class ResourceLink(View, kw_only=True, frozen=True):
    type: str
    id: str
    href: str


class TransactionView(View, kw_only=True, frozen=True):
    id: str
    kind: str
    state: TransactionState
    resource: ResourceLink
    trace_id: str | None = None
    created_at: datetime
    updated_at: datetime
    deliveries: list[DeliveryView] = []


_RESOURCE_PATHS = {
    "account": "/v1/accounts/{}",
    "claim": "/v1/claims/{}",
    "remittance": "/v1/remittances/{}",
    "journal": "/v1/journals/{}",
    "acknowledgement": "/v1/remittances/acknowledgements/{}",
}


def resource_href(kind: str, resource_id: str) -> str:
    return _RESOURCE_PATHS[kind].format(resource_id)


def _delivery(entry: OutboxRecord, attempts: list[AttemptRecord]) -> DeliveryView:
    result = dict(entry.result or {})
    reference = result.pop("reference", None) or None
    return DeliveryView(
        target=entry.target,
        operation=entry.operation,
        state=entry.state,
        attempts=entry.attempts,
        reference=reference,
        details=result,
        error_kind=entry.error_kind,
        error=entry.error,
        next_attempt_at=timestamp(entry.next_attempt_at) if entry.state == "pending" and entry.attempts else None,
        held_behind=entry.held_behind,
        history=[
            AttemptView(
                number=a.number,
                started_at=timestamp(a.started_at),
                duration_ms=a.duration_ms,
                outcome=a.outcome,
                status=a.status,
                error=a.error,
            )
            for a in attempts
            if a.outbox_id == entry.id
        ],
    )


def transaction_view(
    transaction: TransactionRecord, entries: list[OutboxRecord], attempts: list[AttemptRecord]
) -> TransactionView:
    return TransactionView(
        id=transaction.id,
        kind=transaction.kind,
        state=transaction.state,
        resource=ResourceLink(
            type=transaction.resource_type,
            id=transaction.resource_id,
            href=resource_href(transaction.resource_type, transaction.resource_id),
        ),
        trace_id=transaction.trace_id,
        created_at=timestamp(transaction.created_at),
        updated_at=timestamp(transaction.updated_at),
        deliveries=[_delivery(e, attempts) for e in entries],
    )


class AccountView(View, kw_only=True, frozen=True):
    account: PatientAccount
    transaction_id: str | None
    state: TransactionState
    ehr_patient_id: str | None = None
    erp_customer_number: str | None = None
    updated_at: datetime


class ClaimView(View, kw_only=True, frozen=True):
    claim: Claim
    transaction_id: str | None
    state: TransactionState
    status: ClaimStatus | None = None
    updated_at: datetime


class RemittanceView(View, kw_only=True, frozen=True):
    id: str
    remittance: Remittance
    findings: list[BalancingFinding] = []
    claims_updated: list[str] = []
    transaction_id: str | None = None
    received_at: datetime


class JournalView(View, kw_only=True, frozen=True):
    id: str
    journal: JournalEntry
    transaction_id: str | None
    state: TransactionState
    document_number: str | None = None
    duplicate_in_erp: bool = False
    created_at: datetime
