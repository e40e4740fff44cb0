"""Clearinghouse stub: X12 in, X12 out, like a real clearinghouse's real-time endpoints.

``POST /x12/837`` takes an 837P interchange and answers with two interchanges in one body: the 999
for the received groups and, for the claims that passed, a 277CA (claim acknowledgement). A claim id
seen before is acknowledged again but not stored twice. ``POST /x12/276`` takes a 276 and answers a
277 with each claim's current status (A4 "not found" for unknown claims). Tests set a claim's
adjudication with ``PUT /_control/claims/{claim_id}/status``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, Router, get, post, put
from litestar.di import Provide

from canonical import Money
from canonical.v1 import Claim, ClaimStatus
from connectors._stubkit import create_stub_app
from connectors.clearinghouse._parties import CLEARINGHOUSE
from connectors.clearinghouse.x12 import (
    ControlCounter,
    Party,
    StatusInquiry,
    X12Error,
    acknowledge,
    read_276,
    read_837,
    reply_envelope,
    write_277,
    write_277ca,
    write_999,
)

__all__ = ["create_app"]

X12 = "application/edi-x12"
ACCEPTED = ("A2", "20")  # accepted for processing
NOT_FOUND = ("A4", "35")  # claim/encounter not found
# Payer ids the stub's "payers" do not know: their claims are rejected in the 277CA (A7 invalid info).
UNKNOWN_PAYERS = frozenset({"00000", "UNKNOWN"})


class _Known(msgspec.Struct, kw_only=True):
    claim: Claim
    status: ClaimStatus
    submissions: int = 1


class StatusUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    category_code: str
    status_code: str
    paid_amount: str | None = None


class Clearinghouse:
    def __init__(self) -> None:
        self.claims: dict[str, _Known] = {}
        self.control = ControlCounter()
        self.payer_numbers = itertools.count(1)

    def receive(self, claim: Claim, today: date) -> ClaimStatus:
        known = self.claims.get(claim.claim_id)
        if known is not None and claim.frequency_code == "1":
            known.submissions += 1  # a redelivery: acknowledge again, never a second claim
            return known.status
        category, code = ("A7", "21") if claim.payer.payer_id in UNKNOWN_PAYERS else ACCEPTED
        status = ClaimStatus(
            claim_id=claim.claim_id,
            category_code=category,
            status_code=code,
            entity_code="PR",
            payer_claim_number=f"PCN{next(self.payer_numbers):09d}",
            billed_amount=claim.total_charge,
            effective_date=today,
            source="277CA",
        )
        if category == ACCEPTED[0]:
            self.claims[claim.claim_id] = _Known(claim=claim, status=status)
        return status

    def answer(self, inquiry: StatusInquiry, today: date) -> ClaimStatus:
        known = self.claims.get(inquiry.claim_id)
        if known is None:
            return ClaimStatus(
                claim_id=inquiry.claim_id,
                category_code=NOT_FOUND[0],
                status_code=NOT_FOUND[1],
                effective_date=today,
                source="277",
            )
        return msgspec.structs.replace(known.status, source="277")


def _problem(message: str) -> Response[bytes]:
    return Response(msgspec.json.encode({"error": message}), status_code=400, media_type="application/json")


@post("/837", status_code=200)
async def receive_837(request: Request[Any, Any, Any], house: Clearinghouse) -> Response[bytes]:
    body = await request.body()
    try:
        read = read_837(body)
    except X12Error as exc:
        return _problem(str(exc))
    if not read:
        return _problem("the interchange has no transaction sets")
    today = datetime.now(UTC).date()
    envelope = reply_envelope(read[0].envelope.group)
    ack = write_999(acknowledge(read), envelope=envelope, control=house.control)
    acknowledged = [
        (claim.claim, house.receive(claim.claim, today))
        for set_read in read
        if set_read.accepted
        for claim in set_read.claims
        if claim.claim is not None
    ]
    parts = [ack.data]
    if acknowledged:
        submitter = Party(name="SUBMITTER", identifier=read[0].envelope.group.interchange.sender_id)
        parts.append(
            write_277ca(
                acknowledged,
                source=CLEARINGHOUSE,
                receiver=submitter,
                batch_reference=read[0].envelope.interchange_control_number,
                received=today,
                envelope=envelope,
                control=house.control,
            ).data
        )
    return Response(b"\n".join(parts), media_type=X12)


@post("/276", status_code=200)
async def receive_276(request: Request[Any, Any, Any], house: Clearinghouse) -> Response[bytes]:
    try:
        read = read_276(await request.body())
    except X12Error as exc:
        return _problem(str(exc))
    if not read:
        return _problem("the interchange has no transaction sets")
    today = datetime.now(UTC).date()
    answers = [(q, house.answer(q, today)) for set_read in read for q in set_read.inquiries]
    reply = reply_envelope(read[0].envelope.group)
    if not answers:
        return Response(write_999(acknowledge(read), envelope=reply, control=house.control).data,
                        media_type=X12, status_code=422)  # fmt: skip
    receiver = Party(name="INFORMATION RECEIVER", identifier=read[0].envelope.group.interchange.sender_id)
    answer = write_277(answers, receiver=receiver, envelope=reply, control=house.control)
    return Response(answer.data, media_type=X12)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/claims", sync_to_thread=False)
def list_claims(house: Clearinghouse) -> dict[str, Any]:
    items = [
        {"claim_id": k, "payer_claim_number": v.status.payer_claim_number, "submissions": v.submissions,
         "category_code": v.status.category_code, "status_code": v.status.status_code}
        for k, v in house.claims.items()
    ]  # fmt: skip
    return {"items": items, "count": len(items)}


@put("/_control/claims/{claim_id:str}/status", sync_to_thread=False, status_code=200)
def set_status(claim_id: str, data: StatusUpdate, house: Clearinghouse) -> dict[str, str]:
    known = house.claims.get(claim_id)
    if known is None:
        return {"error": "unknown claim"}
    known.status = msgspec.structs.replace(
        known.status,
        category_code=data.category_code,
        status_code=data.status_code,
        paid_amount=Money(data.paid_amount) if data.paid_amount is not None else None,
        effective_date=datetime.now(UTC).date(),
    )
    return {"status": "set"}


def _render_fault(status: int) -> tuple[bytes, str]:
    return msgspec.json.encode({"error": "injected fault", "status": status}), "application/json"


def create_app() -> Litestar:
    house = Clearinghouse()

    def provide() -> Clearinghouse:
        return house

    routes = Router(
        path="/",
        route_handlers=[
            Router(path="/x12", route_handlers=[receive_837, receive_276, health, list_claims]),
            set_status,
        ],
        dependencies={"house": Provide(provide, sync_to_thread=False)},
    )
    return create_stub_app([routes], _render_fault)
