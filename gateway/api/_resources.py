"""Loading stored resources for a caller: another client's resource is simply not there (404)."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from canonical import decode, encode
from gateway.hub import Hub
from gateway.problems import ProblemError
from gateway.store import ResourceRecord, TransactionState

__all__ = ["load_owned", "new_resource", "transaction_state"]

T = TypeVar("T")


async def load_owned(hub: Hub, kind: str, resource_id: str, client_id: str, type_: type[T]) -> tuple[ResourceRecord, T]:
    record = await hub.store.get_resource(kind, resource_id)
    if record is None or record.client_id != client_id:
        raise ProblemError(404, "not-found", f"no {kind} with this id")
    return record, decode(record.body, type_)


def new_resource(
    kind: str, resource_id: str, client_id: str, body: Any, transaction_id: str, *, encoded: bytes | None = None
) -> ResourceRecord:
    """A resource record of ``body``; ``encoded`` is ``encode(body)`` when the caller has it already."""
    now = time.time()
    return ResourceRecord(
        kind=kind,
        id=resource_id,
        client_id=client_id,
        body=encode(body) if encoded is None else encoded,
        transaction_id=transaction_id,
        created_at=now,
        updated_at=now,
    )


async def transaction_state(hub: Hub, transaction_id: str | None) -> tuple[TransactionState, dict[str, dict[str, str]]]:
    """The state of the transaction that last wrote a resource, and each target's result."""
    snapshot = await hub.store.get_transaction(transaction_id) if transaction_id else None
    if snapshot is None:
        return "completed", {}
    transaction, entries, _ = snapshot
    return transaction.state, {e.target: dict(e.result or {}) for e in entries if e.state == "done"}
