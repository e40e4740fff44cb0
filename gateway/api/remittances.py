"""``/v1/remittances``: what payers paid, stored with balancing findings; paid claims get a status."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Reference, RequestBody, Schema
from litestar.params import Parameter

from canonical import encode
from canonical.v1 import BalancingFinding, ClaimPayment, ClaimStatus, Remittance, check_balancing
from gateway.api._body import decode_body
from gateway.api._common import (
    ACCEPTED_RESPONSES,
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    WaitingOperation,
    WithWork,
    accept_work,
    caller_id,
    hub_of,
    taken_problem,
)
from gateway.api._remit_once import interchange_once, new_only, payment_once
from gateway.api._remit_x12 import X12_MEDIA_TYPE, AckRecord, IngestedSet, RejectedSet, ingest_835
from gateway.api._resources import load_owned, new_resource
from gateway.api._response import JsonView
from gateway.hub import Hub
from gateway.ids import new_id, new_id_off_loop
from gateway.problems import PROBLEM_JSON, Problem, problem_body
from gateway.store import ResourceRecord, ResourceTaken
from gateway.views import RemittanceView, timestamp

__all__ = ["RemittanceController", "remittance_statuses"]

AckId = Annotated[str, Parameter(pattern=r"^ack_[0-9a-z]{26}$(?!\n)", description="Acknowledgement id")]
RemittanceId = Annotated[str, Parameter(pattern=r"^rmt_[0-9a-z]{26}$(?!\n)", description="Remittance id")]

# CLP02 (code list 1029) -> 277 STC01-1 claim status category (code list 507). Processed as
# primary, secondary or tertiary, forwarded or not (1-3, 19-21), stays F1 (finalized/payment).
_CATEGORY_BY_CLP02 = {
    "4": "F2",  # denied: finalized/denial
    "22": "F3",  # reversal of previous payment: finalized/revised
    # Not our claim, forwarded to additional payer(s): this payer did not adjudicate it, so no F
    # ("completed the adjudication cycle") is true; A0 (acknowledgement/forwarded: forwarded to
    # another entity) is, and keeps the claim open until the next payer answers. The 507 list's
    # F3F (finalized/forwarded) is not a category the canonical model holds.
    "23": "A0",
    # Predetermination pricing only, no payment: F4 (finalized/adjudication complete, no payment
    # forthcoming), not F1, which says the claim was paid.
    "25": "F4",
}


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


# An 835 of 15,000 claims read them all from SQLite in one go, holding the loop ~50 ms.
_CLAIMS_BETWEEN_YIELDS = 500


async def remittance_statuses(
    hub: Hub, remittance: Remittance, client_id: str, transaction_id: str
) -> tuple[list[ResourceRecord], list[str]]:
    """Status records for the claims of this client that the remittance pays, and their ids."""
    records, updated = [], []
    for index, claim in enumerate(remittance.claims, 1):
        if index % _CLAIMS_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)  # the embedded store answers without yielding: let other requests run
        known = await hub.store.get_resource("claim", claim.claim_id)
        if known is None or known.client_id != client_id:
            continue
        records.append(
            new_resource("claim_status", claim.claim_id, client_id, _status(claim, remittance), transaction_id)
        )
        updated.append(claim.claim_id)
    return records, updated


class RejectedInterchange(Problem, kw_only=True, frozen=True):
    """A 422 of postRemittance. For a raw 835 none of whose transaction sets could be accepted, the
    interchange was acknowledged all the same, by a 999 rejecting them: the extension members link
    to it (a JSON remittance's 422 has none)."""

    acknowledgement_id: str | None = None
    acknowledgement_href: str | None = None


REJECTED_REMITTANCE = {
    422: ResponseSpec(
        RejectedInterchange,
        description="The remittance cannot be processed; for a raw 835, the 999 rejecting its sets is linked",
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )
}


class X12Accepted(msgspec.Struct, kw_only=True, frozen=True):
    """The answer to a raw 835: the remittances created, the sets rejected, and the 999."""

    transaction_id: str
    acknowledgement_id: str
    acknowledgement_href: str
    remittances: list[IngestedSet]
    rejected: list[RejectedSet]


X12_ACCEPTED = ResponseSpec(
    X12Accepted, description="A raw 835 was read: its remittances and the 999 answering it", generate_examples=False
)


@dataclass
class RemittanceOperation(WaitingOperation):
    """The request body is canonical JSON or a raw X12 835; Litestar can describe only one of them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Remittance")),
                X12_MEDIA_TYPE: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, min_length=106)),
            },
        )


async def _remittance_view(
    hub: Hub,
    remittance_id: str,
    remittance: Remittance,
    findings: list[BalancingFinding] | None,
    client_id: str,
    transaction_id: str,
) -> tuple[RemittanceView, list[ResourceRecord]]:
    statuses, updated = await remittance_statuses(hub, remittance, client_id, transaction_id)
    view = RemittanceView(
        id=remittance_id,
        remittance=remittance,
        findings=findings if findings is not None else check_balancing(remittance),
        claims_updated=updated,
        transaction_id=transaction_id,
        received_at=timestamp(time.time()),
    )
    return view, statuses


@functools.cache
def _x12_reader() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="x12-reader")


async def _post_x12(request: Request[Any, Any, Any], hub: Hub, body: bytes, transaction_id: str) -> JsonView:
    client_id = caller_id(request)
    control = await hub.reply_numbers().next()
    # Reading a large 835 takes seconds (10 MiB: about 6 s): on the event loop it would hold every
    # other request that long. One worker thread, so parses queue rather than crowd out the loop.
    # (In this request's context: its trace id goes with what the reader logs.)
    reading = functools.partial(contextvars.copy_context().run, ingest_835, body, new_id_off_loop, control)
    ingest = await asyncio.get_running_loop().run_in_executor(_x12_reader(), reading)
    ack = ingest.ack
    resources: list[ResourceRecord] = []
    once: list[ResourceRecord] = []  # what posts money: each payment and interchange only once
    for remittance_id, read in ingest.remittances:
        assert read.remittance is not None
        view, statuses = await _remittance_view(hub, remittance_id, read.remittance, read.findings, client_id,
                                                transaction_id)  # fmt: skip
        # Written out by the reader's thread: a view of 15,000 claims took ~0.1 s to encode, all of it
        # holding the loop (its amounts go through a Python hook, so there the loop gets turns).
        encoded = await asyncio.get_running_loop().run_in_executor(_x12_reader(), encode, view)
        view_record = new_resource("remittance", remittance_id, client_id, view, transaction_id, encoded=encoded)
        resources += [view_record, *statuses]
        if read.envelope.group.interchange.usage != "T":  # test data posts no money
            once.append(payment_once(read.remittance, client_id, remittance_id, transaction_id))
    interchanges = {read.envelope.group.interchange.position: read.envelope.group.interchange
                    for _, read in ingest.remittances}  # fmt: skip
    # The interchange first: a file sent again is named as that, not by the first payment in it.
    once = [*(interchange_once(isa, client_id, ack.id, transaction_id) for isa in interchanges.values()), *once]
    ack_href = f"/v1/remittances/acknowledgements/{ack.id}"
    href = f"/v1/transactions/{transaction_id}"
    if ingest.refused is None:
        answer = X12Accepted(
            transaction_id=transaction_id,
            acknowledgement_id=ack.id,
            acknowledgement_href=ack_href,
            remittances=ack.accepted,
            rejected=ack.rejected,
        )
        reply = JsonView(answer, status=201, headers=[(b"location", href.encode())])
    else:  # a 4xx all the same, but the payer must hear of it: the 999 rejecting the sets is kept
        refused = ingest.refused
        problem = problem_body(request, refused.status, refused.kind, refused.detail, refused.errors)
        rejection = RejectedInterchange(
            **msgspec.structs.asdict(problem), acknowledgement_id=ack.id, acknowledgement_href=ack_href
        )
        reply = JsonView(rejection, status=refused.status, media_type=PROBLEM_JSON.encode())
    records = WithWork.answering(request, reply, href)  # the answer is known before the work is stored
    try:
        await hub.submit(
            client_id=client_id,
            kind="remittance.ingest.x12",
            resource=new_resource("acknowledgement", ack.id, client_id, ack, transaction_id),
            deliveries=[],
            extra_resources=[*resources, *once],
            records=records,
            only_if=new_only(once),
        )
    except ResourceTaken as taken:
        raise taken_problem(taken) from None
    records.written(request)
    return reply


class RemittanceController(Controller):
    path = "/remittances"
    tags = ["remittances"]

    @post(
        "/",
        operation_id="postRemittance",
        responses={**WRITE_PROBLEMS, **REJECTED_REMITTANCE, **ACCEPTED_RESPONSES, 201: X12_ACCEPTED},
        status_code=202,
        operation_class=RemittanceOperation,
        opt={"body": Remittance},  # reads its own body (JSON or X12); a JSON one is a Remittance
        summary="Ingest a remittance: canonical JSON, or a raw X12 835 (application/edi-x12)",
    )
    async def post_remittance(self, request: Request[Any, Any, Any]) -> JsonView:
        hub = hub_of(request)
        client_id = caller_id(request)
        body = await request.body()
        transaction_id = new_id("txn")
        if request.content_type[0] == X12_MEDIA_TYPE:
            return await _post_x12(request, hub, body, transaction_id)
        remittance = decode_body(body, Remittance)
        view, statuses = await _remittance_view(hub, new_id("rmt"), remittance, None, client_id, transaction_id)
        payment = payment_once(remittance, client_id, view.id, transaction_id)
        return await accept_work(
            request,
            hub,
            kind="remittance.ingest",
            resource=new_resource("remittance", view.id, client_id, view, transaction_id),
            deliveries=[],
            extra_resources=[*statuses, payment],
            only_if=new_only([payment]),
        )

    @get(
        "/acknowledgements/{ack_id:str}",
        operation_id="getRemittanceAcknowledgement",
        responses=READ_PROBLEMS,
        media_type=X12_MEDIA_TYPE,
        summary="The 999 the hub answered a received 835 interchange with",
    )
    async def get_acknowledgement(self, request: Request[Any, Any, Any], ack_id: AckId) -> Response[str]:
        hub = hub_of(request)
        _, ack = await load_owned(hub, "acknowledgement", ack_id, caller_id(request), AckRecord)
        return Response(ack.ack_999, media_type=X12_MEDIA_TYPE)

    @get(
        "/{remittance_id:str}",
        operation_id="getRemittance",
        responses=READ_PROBLEMS,
        summary="A stored remittance with its findings",
    )
    async def get_remittance(self, request: Request[Any, Any, Any], remittance_id: RemittanceId) -> RemittanceView:
        hub = hub_of(request)
        _, view = await load_owned(hub, "remittance", remittance_id, caller_id(request), RemittanceView)
        return view
