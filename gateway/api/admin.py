"""``/v1/admin``: operators' view — audit trail, dead letters and replay, connector health, policy reload.

Every route here needs the ``admin`` scope (the policy file says so per operation).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter, QueryParameter

from connectors._breaker import BreakerSnapshot
from gateway.api._body import CanonicalBody
from gateway.api._common import READ_PROBLEMS, WRITE_PROBLEMS, caller_id, hub_of, problems
from gateway.hub import Hub
from gateway.problems import ProblemError
from gateway.store import DeadLetterFilter, OutboxRecord
from gateway.tracing import current_trace_id
from gateway.views import timestamp
from policies.audit import AuditEntry, AuditRecord

__all__ = ["AdminController"]

_DELIVERY_ID = r"^dlv_[0-9a-z]{26}$(?!\n)"
DeliveryId = Annotated[str, Parameter(pattern=_DELIVERY_ID, description="Outbox entry (delivery) id")]
DeliveryCursor = Annotated[
    str | None, QueryParameter(required=False, pattern=_DELIVERY_ID, description="next_after of the page before")
]
# What a dead-letter filter may name. Every target the hub knows, enabled or not: work for a disabled
# target is dead-lettered and kept for a replay (tests hold these to gateway.targets.TARGET_OPERATIONS).
Target = Literal["ehr", "erp", "clearinghouse"]
# The kinds of the connector error tree (connectors/_errors.py), the only error_kind the dispatcher
# writes; the tests hold them to that tree.
ErrorKind = Literal["connector_error", "retriable", "rejected", "misconfigured"]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size")]
OptionalText = Annotated[str | None, QueryParameter(required=False, max_length=100)]
# The last second a datetime can show (9999-12-31T23:59:59Z): it also keeps `inf` out of a time.
_LAST_SECOND = 253_402_300_799.0
Seconds = Annotated[float | None, QueryParameter(required=False, ge=0, le=_LAST_SECOND, description="Epoch seconds")]
Age = Annotated[
    float | None, QueryParameter(required=False, ge=0, le=_LAST_SECOND, description="Dead longer than this, s")
]


class AuditPage(msgspec.Struct, kw_only=True, frozen=True):
    records: list[AuditRecord]
    next_after_seq: int | None = None


class DeadLetterView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    transaction_id: str
    target: str
    operation: str
    attempts: int
    replays: int
    error_kind: str | None = None
    error: str | None = None
    dead_since: Any  # datetime; Any keeps msgspec from re-validating our own timestamps


class DeadLetterPage(msgspec.Struct, kw_only=True, frozen=True):
    items: list[DeadLetterView]
    next_after: str | None = None


class ReplayFilter(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    target: Target | None = None
    error_kind: ErrorKind | None = None
    older_than_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class ReplayResult(msgspec.Struct, kw_only=True, frozen=True):
    replayed: list[str]
    # Dead letters left as they are: a newer write of their resource was accepted after them, and
    # delivering the older data now would overwrite the newer at the target. Replay the newer one.
    superseded: list[str] = []


class PolicyStatus(msgspec.Struct, kw_only=True, frozen=True):
    status: str
    source: str


def _dead_view(entry: OutboxRecord) -> DeadLetterView:
    return DeadLetterView(
        id=entry.id,
        transaction_id=entry.transaction_id,
        target=entry.target,
        operation=entry.operation,
        attempts=entry.attempts,
        replays=entry.replays,
        error_kind=entry.error_kind,
        error=entry.error,
        dead_since=timestamp(entry.updated_at),
    )


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    # The policy chain refuses a query parameter a route does not take (gateway/query_params.py):
    # a POST's filter is its body.

    @get("/audit", operation_id="getAuditRecords", responses=problems(400, 401, 403, 429, 503),
         summary="The audit trail, filtered and paged by sequence number")  # fmt: skip
    async def audit(
        self,
        request: Request[Any, Any, Any],
        client_id: OptionalText = None,
        operation: OptionalText = None,
        outcome: OptionalText = None,
        since: Seconds = None,
        until: Seconds = None,
        after_seq: Annotated[int, QueryParameter(ge=0, le=2**62)] = 0,
        limit: Limit = 100,
    ) -> AuditPage:
        governance = request.app.state.governance
        await governance.audit_writer.flush()  # a reader sees the records of calls already answered
        records = await governance.audit_log.page(
            client_id=client_id, operation=operation, outcome=outcome, since=since, until=until,
            after_seq=after_seq, limit=limit,
        )  # fmt: skip
        return AuditPage(records=records, next_after_seq=records[-1].seq if len(records) == limit else None)

    @get("/dead-letters", operation_id="listDeadLetters", responses=problems(400, 401, 403, 429, 503),
         summary="Deliveries whose retry budget is spent or that the target rejected")  # fmt: skip
    async def dead_letters(
        self,
        request: Request[Any, Any, Any],
        target: Annotated[Target | None, QueryParameter(required=False)] = None,
        error_kind: Annotated[ErrorKind | None, QueryParameter(required=False)] = None,
        older_than_s: Age = None,
        after: DeliveryCursor = None,
        limit: Limit = 100,
    ) -> DeadLetterPage:
        hub = hub_of(request)
        where = DeadLetterFilter(
            target=target,
            error_kind=error_kind,
            dead_before=time.time() - older_than_s if older_than_s is not None else None,
        )
        entries = await hub.store.list_dead(where, limit, after)
        return DeadLetterPage(
            items=[_dead_view(e) for e in entries], next_after=entries[-1].id if len(entries) == limit else None
        )

    @post("/dead-letters/{delivery_id:str}/replay", operation_id="replayDeadLetter", status_code=200,
          responses={**READ_PROBLEMS, **problems(403, 409)}, summary="Replay one dead letter")  # fmt: skip
    async def replay_one(self, request: Request[Any, Any, Any], delivery_id: DeliveryId) -> ReplayResult:
        hub = hub_of(request)
        entry = await hub.store.get_delivery(delivery_id)
        if entry is None:
            raise ProblemError(404, "not-found", "no delivery with this id")
        newer = await _newer_write(hub, entry)
        if newer is not None:
            raise ProblemError(
                409,
                "conflict",
                f"a newer write of this resource was accepted after this delivery's (transaction {newer}); "
                "replaying it would overwrite the newer data at the target",
            )
        replayed = await _replay(request, hub, [delivery_id])
        if not replayed:
            raise ProblemError(409, "conflict", "this delivery is not dead (it may have been replayed already)")
        return ReplayResult(replayed=replayed)

    @post("/dead-letters/replay", operation_id="replayDeadLetters", status_code=200,
          responses=WRITE_PROBLEMS,  # 409 and 422 answer an Idempotency-Key in flight or reused
          summary="Replay every dead letter matching a filter", dto=CanonicalBody[ReplayFilter],
          return_dto=None)  # fmt: skip
    async def replay_many(self, request: Request[Any, Any, Any], data: JSONBody[ReplayFilter]) -> ReplayResult:
        hub = hub_of(request)
        where = DeadLetterFilter(
            target=data.target,
            error_kind=data.error_kind,
            dead_before=time.time() - data.older_than_s if data.older_than_s is not None else None,
        )
        entries = await hub.store.list_dead(where, data.limit, None)
        current: list[str] = []
        superseded: list[str] = []
        for entry in entries:
            (current if await _newer_write(hub, entry) is None else superseded).append(entry.id)
        return ReplayResult(replayed=await _replay(request, hub, current), superseded=superseded)

    @get("/connectors", operation_id="getConnectorStates", responses=problems(401, 403, 429, 503),
         summary="Circuit breaker state per connector")  # fmt: skip
    async def connectors(self, request: Request[Any, Any, Any]) -> dict[str, BreakerSnapshot]:
        hub = hub_of(request)
        return {name: breaker.snapshot() for name, breaker in hub.dispatcher.breakers.items()}

    @post("/policy/reload", operation_id="reloadPolicy", status_code=200, responses=problems(401, 403, 422, 429, 503),
          summary="Reload the policy file; an invalid file leaves the old policy in force")  # fmt: skip
    async def reload_policy(self, request: Request[Any, Any, Any]) -> PolicyStatus:
        holder = request.app.state.governance.holder
        error = holder.reload()
        if error is not None:
            raise ProblemError(422, "invalid-policy", f"policy not reloaded, the previous one stays in force: {error}")
        return PolicyStatus(status="reloaded", source=str(holder.path))


async def _newer_write(hub: Hub, entry: OutboxRecord) -> str | None:
    """The transaction of a write of this delivery's resource accepted after the delivery's own, if any:
    the resource names the transaction that last wrote it."""
    snapshot = await hub.store.get_transaction(entry.transaction_id)
    if snapshot is None:
        return None
    transaction = snapshot[0]
    resource = await hub.store.get_resource(transaction.resource_type, transaction.resource_id)
    if resource is None or resource.transaction_id in (None, transaction.id):
        return None
    return resource.transaction_id


async def _replay(request: Request[Any, Any, Any], hub: Hub, ids: list[str]) -> list[str]:
    replayed = await hub.store.replay(ids, time.time())
    governance = request.app.state.governance
    for entry in replayed:
        await governance.audit(
            AuditEntry(
                client_id=caller_id(request),
                operation="replay",
                resource_id=entry.id,
                outcome="replayed",
                status=None,
                trace_id=current_trace_id(),  # set for every request by the telemetry middleware
                at=time.time(),
                target=entry.target,
                transaction_id=entry.transaction_id,
            )
        )
    if replayed:
        hub.dispatcher.wake()
    return [e.id for e in replayed]
