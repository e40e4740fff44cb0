"""Clearinghouse connector: claims leave as 837P, acknowledgements come back as 999 + 277CA, and
claim status is a 276/277 exchange — X12 5010 on the wire, canonical objects at the edges.

Exactly-once at the clearinghouse rests on the claim id (CLM01): a redelivered claim is acknowledged
again, not entered twice. A claim the clearinghouse rejects (999 IK5 ``R``, or a 277CA rejection
category) is a rejection, not something to retry.
"""

from __future__ import annotations

import re
from typing import ClassVar, Protocol, runtime_checkable

import httpx

from canonical.v1 import Claim, ClaimStatus
from connectors._base import HttpConnector
from connectors._errors import RejectedError, RetriableError
from connectors._protocol import ConnectorConfig, DeliveryResult
from connectors.clearinghouse._numbers import ClockSeededNumbers, InterchangeNumbers
from connectors.clearinghouse._parties import CLEARINGHOUSE, HUB, HUB_SUBMITTER, HUB_TO_CLEARINGHOUSE
from connectors.clearinghouse.x12 import (
    FilingIndicator,
    FunctionalAck,
    Read277,
    StatusInquiry,
    X12Error,
    is_segment_id,
    read_277,
    read_999,
    write_276,
    write_837p,
)

__all__ = ["ClaimStatusSource", "X12ClearinghouseConfig", "X12ClearinghouseConnector", "split_interchanges"]

X12 = "application/edi-x12"
# 277CA categories that mean the claim was not accepted (A3 returned, A4 not found, A6/A7 rejected,
# A8 rejected for relational field in error).
REJECTED_CATEGORIES = frozenset({"A3", "A4", "A6", "A7", "A8"})


@runtime_checkable
class ClaimStatusSource(Protocol):
    """A clearinghouse connector that can ask for a claim's status live (``GET /v1/claims/{id}/status``);
    one without it still submits claims, and the route answers from what is stored."""

    async def claim_status(self, inquiry: StatusInquiry, *, timeout_s: float | None = None) -> ClaimStatus: ...


class X12ClearinghouseConfig(ConnectorConfig, kw_only=True, frozen=True):
    filing_indicator: FilingIndicator = "CI"  # SBR09 of every claim: one of the 5010 code list


def split_interchanges(body: bytes) -> list[bytes]:
    """A response may carry several interchanges back to back (a 999, then a 277CA): cut after each
    IEA segment, using the delimiters of the ISA that opens each interchange."""
    parts, rest = [], body.strip()
    while len(rest) > 106 and rest.startswith(b"ISA"):
        element, terminator = rest[3:4], rest[105:106]
        iea = rest.find(terminator + b"IEA" + element)
        end = rest.find(terminator, iea + 1) if iea != -1 else -1
        if end == -1:
            parts.append(rest)
            break
        parts.append(rest[: end + 1])
        rest = rest[end + 1 :].strip()
    return parts


def _by_kind(body: bytes) -> dict[str, bytes]:
    """Each interchange by the functional group it carries (GS01 at a fixed place after the ISA)."""
    found = {}
    for part in split_interchanges(body):
        element = part[3:4].decode("latin-1")
        gs = part.find(b"GS" + element.encode("latin-1"))
        if gs != -1:
            found[part[gs + 3 : gs + 5].decode("latin-1")] = part
    return found


# IK304, IK403 and AK905 codes: one to three letters or digits. A 999 is the clearinghouse's text,
# and one that repeats input where a code or a segment id belongs (a name split off by a stray
# delimiter) must not carry it into our delivery errors: what has not the form is not kept.
_ACK_CODE = re.compile(r"[A-Z0-9]{1,3}")


def _code(text: str) -> str:
    return text if _ACK_CODE.fullmatch(text) else "?"


def _set_rejection(acks: list[FunctionalAck], control_number: str) -> str | None:
    """The 999's verdict on our set: ``None`` when accepted, else a code summary (no values)."""
    for ack in acks:
        if ack.status == "R" and not ack.sets:
            return f"999 group rejected ({','.join(map(_code, ack.group_errors)) or 'AK9 R'})"
        for set_ack in ack.sets:
            if set_ack.control_number == control_number and not set_ack.accepted:
                where = ",".join(
                    f"{i.segment_id if is_segment_id(i.segment_id) else '?'}@{i.position}:{_code(i.code)}"
                    for i in set_ack.issues[:5]
                )
                return f"999 rejected the claim set ({where or 'IK5 R'})"
    return None


class X12ClearinghouseConnector(HttpConnector):
    kind: ClassVar[str] = "clearinghouse"
    config_type: ClassVar[type[ConnectorConfig]] = X12ClearinghouseConfig
    health_path: ClassVar[str] = "/x12/health"

    def __init__(self, config: ConnectorConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self.filing_indicator: FilingIndicator = (
            config.filing_indicator if isinstance(config, X12ClearinghouseConfig) else "CI"
        )
        # A hub replaces this with its store's sequence (see _numbers): shared and restart-proof.
        self.numbers: InterchangeNumbers = ClockSeededNumbers()
        self.offer("submit_claim", Claim, self.submit_claim)

    async def submit_claim(self, claim: Claim, external_ref: str) -> DeliveryResult:
        try:
            written = write_837p(
                [claim],
                submitter=HUB_SUBMITTER,
                receiver=CLEARINGHOUSE,
                envelope=HUB_TO_CLEARINGHOUSE,
                control=await self.numbers.next(),
                filing_indicator=self.filing_indicator,
            )
        except ValueError:  # a value X12 cannot carry: no retry will change that, and it is not the target's fault
            raise RejectedError("the claim holds characters an 837P cannot carry", code="x12-charset") from None
        response = await self.send(
            "POST",
            "/x12/837",
            content=written.data,
            headers={"content-type": X12, "x-external-reference": external_ref},
        )
        answers = _by_kind(response.content)
        try:
            rejection = _set_rejection(read_999(answers.get("FA", b"")), written.set_control_numbers[0])
            acknowledged = read_277(answers["HN"]) if rejection is None and "HN" in answers else []
        except X12Error:
            raise RetriableError("clearinghouse answered with an unreadable acknowledgement") from None
        if rejection is not None:
            raise RejectedError(rejection, code="999")
        status = _status_for(acknowledged, claim.claim_id)
        if status is None:
            raise RetriableError("clearinghouse did not acknowledge the claim in a 277CA")
        if status.category_code in REJECTED_CATEGORIES:
            code = f"{status.category_code}:{status.status_code}"
            raise RejectedError(f"clearinghouse rejected the claim (277CA {code})", code=code)
        return DeliveryResult(
            status=response.status_code,
            reference=status.payer_claim_number,
            details={
                "category_code": status.category_code,
                "status_code": status.status_code,
                "payer_claim_number": status.payer_claim_number or "",
                "interchange": written.interchange_control_number,
                "effective_date": status.effective_date.isoformat(),
            },
        )

    async def claim_status(self, inquiry: StatusInquiry, *, timeout_s: float | None = None) -> ClaimStatus:
        written = write_276([inquiry], receiver=HUB, envelope=HUB_TO_CLEARINGHOUSE, control=await self.numbers.next())
        response = await self.send(
            "POST", "/x12/276", content=written.data, headers={"content-type": X12}, timeout_s=timeout_s
        )
        try:
            answers = read_277(response.content)
        except X12Error:
            raise RetriableError("clearinghouse answered the 276 with an unreadable 277") from None
        status = _status_for(answers, inquiry.claim_id)
        if status is None:
            raise RetriableError("clearinghouse's 277 did not answer for the claim")
        return status


def _status_for(reads: list[Read277], claim_id: str) -> ClaimStatus | None:
    for read in reads:
        for status in read.statuses:
            if status.claim_id == claim_id:
                return status
    return None
