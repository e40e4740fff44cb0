"""``/v1/remittances``: what payers paid, stored with balancing findings; paid claims get a status."""

from __future__ import annotations

import time
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter

from canonical.v1 import ClaimPayment, ClaimStatus, Remittance, check_balancing
from gateway.api._common import FINAL_200, READ_PROBLEMS, WRITE_PROBLEMS, HubDep, PreferHeader, accepted, caller_id
from gateway.api._resources import load_owned, new_resource
from gateway.ids import new_id
from gateway.store import ResourceRecord
from gateway.views import RemittanceView, TransactionView, timestamp

__all__ = ["RemittanceController", "remittance_statuses"]

RemittanceId = Annotated[str, Parameter(pattern=r"^rmt_[0-9a-z]{26}$", description="Remittance id")]

# CLP02 -> 277 status category: paid or processed (F1), denied (F2), reversed/revised (F3).
_CATEGORY_BY_CLP02 = {"4": "F2", "22": "F3"}


def _status(claim: ClaimPayment, remittance: Remittance) -> ClaimStatus:
    return ClaimStatus(
        claim_id=claim.claim_id,
        category_code=_CATEGORY_BY_CLP02.get(claim.status_code, "F1"),
        status_code=claim.status_code,  # for source 835 the status code is CLP02 itself
        payer_claim_number=claim.payer_claim_number,
        billed_amount=claim.billed,
        paid_amount=claim.paid,
        effective_date=remittance.payment.date,
        source="835",
    )


async def remittance_statuses(
    hub: HubDep, remittance: Remittance, client_id: str, transaction_id: str
) -> tuple[list[ResourceRecord], list[str]]:
    """Status records for the claims of this client that the remittance pays, and their ids."""
    records, updated = [], []
    for claim in remittance.claims:
        known = await hub.store.get_resource("claim", claim.claim_id)
        if known is None or known.client_id != client_id:
            continue
        records.append(
            new_resource("claim_status", claim.claim_id, client_id, _status(claim, remittance), transaction_id)
        )
        updated.append(claim.claim_id)
    return records, updated


class RemittanceController(Controller):
    path = "/remittances"
    tags = ["remittances"]

    @post(
        "/",
        operation_id="postRemittance",
        responses={**WRITE_PROBLEMS, **FINAL_200},
        status_code=202,
        summary="Ingest a remittance (canonical JSON)",
    )
    async def post_remittance(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Remittance],
        hub: HubDep,
        prefer: PreferHeader = None,
    ) -> Response[TransactionView]:
        client_id = caller_id(request)
        remittance_id, transaction_id = new_id("rmt"), new_id("txn")
        statuses, updated = await remittance_statuses(hub, data, client_id, transaction_id)
        view = RemittanceView(
            id=remittance_id,
            remittance=data,
            findings=check_balancing(data),
            claims_updated=updated,
            transaction_id=transaction_id,
            received_at=timestamp(time.time()),
        )
        stored = await hub.submit(
            client_id=client_id,
            kind="remittance.ingest",
            resource=new_resource("remittance", remittance_id, client_id, view, transaction_id),
            deliveries=[],
            extra_resources=statuses,
        )
        return await accepted(hub, stored, prefer)

    @get(
        "/{remittance_id:str}",
        operation_id="getRemittance",
        responses=READ_PROBLEMS,
        summary="A stored remittance with its findings",
    )
    async def get_remittance(
        self, request: Request[Any, Any, Any], remittance_id: RemittanceId, hub: HubDep
    ) -> RemittanceView:
        _, view = await load_owned(hub, "remittance", remittance_id, caller_id(request), RemittanceView)
        return view
