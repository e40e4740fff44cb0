"""``/v1/claims``: professional claims sent to the clearinghouse as 837P; status live via 276/277.

Claim status is read live from the clearinghouse with a short timeout, and cached: a status younger
than ``status_cache_s`` is served from the store (``X-Status-Source: cache``); when the clearinghouse
cannot answer, the last known status is served marked stale, and without one the answer is 503.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter

from canonical import decode, encode, to_builtins
from canonical.v1 import Claim, ClaimStatus
from connectors import ConnectorError
from connectors.clearinghouse import ClaimStatusSource
from connectors.clearinghouse.x12 import StatusInquiry, unwritable_paths
from gateway.api._body import CanonicalBody
from gateway.api._common import (
    ACCEPTED_RESPONSES,
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    WaitingOperation,
    accept_work,
    caller_id,
    hub_of,
    problems,
)
from gateway.api._resources import load_owned, new_resource, transaction_state
from gateway.api._response import JsonView
from gateway.hub import Delivery, Hub
from gateway.ids import new_id
from gateway.problems import FieldError, ProblemError
from gateway.views import ClaimView, timestamp

__all__ = ["ClaimController"]

ClaimIdParam = Annotated[
    str, Parameter(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,37}$(?!\n)", description="Patient control number")
]
_REPLACEMENTS = frozenset({"7", "8"})  # replacement and void may follow an original


class ClaimController(Controller):
    path = "/claims"
    tags = ["claims"]

    @post(
        "/",
        operation_id="postClaim",
        responses={**WRITE_PROBLEMS, **ACCEPTED_RESPONSES},
        status_code=202,
        summary="Accept a professional claim for the clearinghouse (sent as an 837P)",
        dto=CanonicalBody[Claim],
        operation_class=WaitingOperation,
        return_dto=None,
    )
    async def post_claim(self, request: Request[Any, Any, Any], data: JSONBody[Claim]) -> JsonView:
        unwritable = unwritable_paths(to_builtins(data))
        if unwritable:  # it leaves as an 837P: refused now, not dead-lettered after eight attempts
            raise ProblemError(
                400, "validation-error", f"{len(unwritable)} field(s) hold characters an X12 837P cannot carry",
                errors=[FieldError(path=f"$.{path}", message="a character outside the X12 extended set, or ~ * : ^")
                        for path in unwritable],
            )  # fmt: skip
        hub = hub_of(request)
        client_id = caller_id(request)
        transaction_id = new_id("txn")
        payload = encode(data)
        return await accept_work(
            request,
            hub,
            kind="claim.submit",
            resource=new_resource("claim", data.claim_id, client_id, data, transaction_id, encoded=payload),
            deliveries=[Delivery("clearinghouse", "submit_claim", payload)],
            # Only a replacement may find it stored, and only its own: the store refuses the rest (409).
            only_if={} if data.frequency_code in _REPLACEMENTS else {("claim", data.claim_id): "absent"},
        )

    @get("/{claim_id:str}", operation_id="getClaim", responses=READ_PROBLEMS, summary="A claim and its last status")
    async def get_claim(self, request: Request[Any, Any, Any], claim_id: ClaimIdParam) -> ClaimView:
        hub = hub_of(request)
        record, claim = await load_owned(hub, "claim", claim_id, caller_id(request), Claim)
        state, results = await transaction_state(hub, record.transaction_id)
        return ClaimView(
            claim=claim,
            transaction_id=record.transaction_id,
            state=state,
            status=await _known_status(hub, claim_id, results.get("clearinghouse", {})),
            updated_at=timestamp(record.updated_at),
        )

    @get(
        "/{claim_id:str}/status",
        operation_id="getClaimStatus",
        responses={**READ_PROBLEMS, **problems(503)},
        summary="The claim's status, live from the clearinghouse (276/277), cached briefly",
    )
    async def get_status(self, request: Request[Any, Any, Any], claim_id: ClaimIdParam) -> Response[ClaimStatus]:
        hub = hub_of(request)
        client_id = caller_id(request)
        record, claim = await load_owned(hub, "claim", claim_id, client_id, Claim)
        cached = await hub.store.get_resource("claim_status", claim_id)
        age = time.time() - cached.updated_at if cached is not None else None
        if cached is not None and age is not None and age < hub.settings.status_cache_s:
            ttl = int(hub.settings.status_cache_s - age)
            return _status_response(decode(cached.body, ClaimStatus), "cache", ttl)
        connector = hub.connectors.get("clearinghouse")
        try:
            if not isinstance(connector, ClaimStatusSource):
                raise ConnectorError("no clearinghouse connector with live claim status is configured")
            _, results = await transaction_state(hub, record.transaction_id)
            inquiry = _inquiry(claim, results.get("clearinghouse", {}).get("payer_claim_number") or None)
            status = await connector.claim_status(inquiry, timeout_s=hub.settings.status_timeout_s)
        except ConnectorError:
            if cached is None:
                raise ProblemError(
                    503, "upstream-unavailable", "the clearinghouse did not answer and no status is known yet",
                    headers={"Retry-After": "5"},
                ) from None  # fmt: skip
            return _status_response(decode(cached.body, ClaimStatus), "stale", 0)
        await hub.store.put_resources(
            [new_resource("claim_status", claim_id, client_id, status, record.transaction_id or "")]
        )
        return _status_response(status, "live", int(hub.settings.status_cache_s))


def _status_response(status: ClaimStatus, source: str, max_age: int) -> Response[ClaimStatus]:
    return Response(status, headers={"X-Status-Source": source, "Cache-Control": f"private, max-age={max(max_age, 0)}"})


async def _known_status(hub: Hub, claim_id: str, delivery: dict[str, str]) -> ClaimStatus | None:
    """The newest status the hub holds: a stored 277/835 status, else the 277CA acknowledgement."""
    stored = await hub.store.get_resource("claim_status", claim_id)
    if stored is not None:
        return decode(stored.body, ClaimStatus)
    if not delivery.get("category_code"):
        return None
    return ClaimStatus(
        claim_id=claim_id,
        category_code=delivery["category_code"],
        status_code=delivery["status_code"],
        payer_claim_number=delivery.get("payer_claim_number") or None,
        effective_date=date.fromisoformat(delivery["effective_date"]),
        source="277CA",
    )


def _inquiry(claim: Claim, payer_claim_number: str | None) -> StatusInquiry:
    dates = [line.service_date for line in claim.service_lines]
    patient = claim.patient
    return StatusInquiry(
        claim_id=claim.claim_id,
        payer=claim.payer,
        provider_npi=claim.billing_provider.npi,
        provider_name=claim.billing_provider.name,
        subscriber_member_id=claim.subscriber.member_id,
        subscriber_name=claim.subscriber.name,
        subscriber_birth_date=claim.subscriber.birth_date,
        patient_name=patient.name if patient is not None else None,
        patient_birth_date=patient.birth_date if patient is not None else None,
        service_date_from=min(dates),
        service_date_to=max(dates),
        billed_amount=claim.total_charge,
        payer_claim_number=payer_claim_number,
        trace_number=new_id("trn").replace("_", "-"),
    )
