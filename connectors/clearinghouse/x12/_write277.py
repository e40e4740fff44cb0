"""Claim statuses to a 277 (005010X212, the answer to a 276) or a 277CA (005010X214, the claim
acknowledgement of an 837 batch).

The canonical ``ClaimStatus`` carries the status itself (STC01 category:status:entity, STC02 date,
STC04 billed, STC05 paid, the payer's claim number) but not the parties; those come from what is
being answered: the ``StatusInquiry`` for a 277, the ``Claim`` for a 277CA. Each status must name
the same claim id as its question.

277: one transaction set per answer, hierarchy HL 20 payer / 21 receiver / 19 provider / 22
subscriber (/ 23 dependent), then 2200D/E: TRN*2 (the inquiry's trace number), STC, REF*1K,
REF*EJ patient control number, DTP*472.

277CA: one transaction set for the batch: HL 20 information source (TRN*1, receipt and process
dates) / 21 information receiver (TRN*2 batch reference, STC, accepted and rejected totals) / 19 per
billing provider (TRN*1, STC, totals) / PT per claim (NM1*QC, TRN*2 patient control number, STC with
action code WQ accepted or U rejected, REF*1K, DTP*472 claim service period).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from canonical.v1 import Claim, ClaimStatus
from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._model import DEFAULT_DELIMITERS, Delimiters
from connectors.clearinghouse.x12._write276 import status_party_levels
from connectors.clearinghouse.x12._writer import (
    ControlCounter,
    ControlNumbers,
    Envelope,
    FunctionalGroup,
    Party,
    Segment,
    TransactionSet,
    WrittenInterchange,
    amount,
    build_interchange,
    d8,
    organization_nm1,
    person_nm1,
    rd8,
    seg,
)

__all__ = [
    "IMPLEMENTATION_277",
    "IMPLEMENTATION_277CA",
    "REJECTED_CATEGORIES",
    "answer_transaction",
    "write_277",
    "write_277ca",
]

IMPLEMENTATION_277 = "005010X212"
IMPLEMENTATION_277CA = "005010X214"
# Acknowledgement categories that mean the claim was not accepted into adjudication (STC03 "U").
REJECTED_CATEGORIES = frozenset({"A3", "A4", "A6", "A7", "A8"})
ZERO = Decimal("0.00")


def _stc(status: ClaimStatus, *elements: str | None) -> Segment:
    composite = (status.category_code, status.status_code, status.entity_code or "")
    return seg("STC", composite, d8(status.effective_date), *elements)


def _check_pair(question_id: str, status: ClaimStatus) -> None:
    if question_id != status.claim_id:
        raise ValueError("each status must answer the claim it is paired with (claim ids differ)")


def answer_transaction(
    inquiry: StatusInquiry, status: ClaimStatus, *, receiver: Party, created: datetime
) -> TransactionSet:
    """The body of one 277 (X212) transaction set answering one 276 inquiry."""
    _check_pair(inquiry.claim_id, status)
    dependent = not inquiry.patient_is_subscriber
    body = [
        seg(
            "BHT",
            "0010",
            "08",
            inquiry.trace_number,
            created.strftime("%Y%m%d"),
            created.strftime("%H%M"),
            "DG",
        ),
        *status_party_levels(inquiry, receiver),
        seg("HL", "4", "3", "22", "1" if dependent else "0"),
        person_nm1("IL", inquiry.subscriber_name, "MI", inquiry.subscriber_member_id),
    ]
    if inquiry.patient_name is not None:
        body += [seg("HL", "5", "4", "23"), person_nm1("QC", inquiry.patient_name)]
    billed = status.billed_amount if status.billed_amount is not None else inquiry.billed_amount
    paid = status.paid_amount if status.paid_amount is not None else ZERO
    body += [
        seg("TRN", "2", inquiry.trace_number),
        _stc(status, None, amount(billed), amount(paid)),
    ]
    payer_claim_number = status.payer_claim_number or inquiry.payer_claim_number
    if payer_claim_number is not None:
        body.append(seg("REF", "1K", payer_claim_number))
    body += [
        seg("REF", "EJ", inquiry.claim_id),
        seg("DTP", "472", "RD8", rd8(inquiry.service_date_from, inquiry.service_date_to)),
    ]
    return TransactionSet("277", IMPLEMENTATION_277, body, key=inquiry.claim_id)


def write_277(
    answers: Sequence[tuple[StatusInquiry, ClaimStatus]],
    *,
    receiver: Party,
    envelope: Envelope,
    control: ControlNumbers | ControlCounter,
    created: datetime | None = None,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    newline: bool = False,
) -> WrittenInterchange:
    """One 277 interchange (GS01 ``HN``, X212): one transaction set per (inquiry, status) pair.

    ``receiver`` is the information receiver the 276 named (loop 2100B).
    """
    if not answers:
        raise ValueError("a 277 needs at least one answer")
    when = (created or datetime.now(UTC)).replace(second=0, microsecond=0)
    numbers = control.next() if isinstance(control, ControlCounter) else control
    sets = [answer_transaction(q, s, receiver=receiver, created=when) for q, s in answers]
    return build_interchange(
        [FunctionalGroup("HN", IMPLEMENTATION_277, sets)],
        envelope=envelope,
        control=numbers,
        created=when,
        delimiters=delimiters,
        newline=newline,
    )


def _action(status: ClaimStatus) -> Literal["U", "WQ"]:
    return "U" if status.category_code in REJECTED_CATEGORIES else "WQ"


def _totals(pairs: Sequence[tuple[Claim, ClaimStatus]], accepted_qty: str, rejected_qty: str) -> list[Segment]:
    """QTY/AMT accepted and rejected, each only when non-zero (X214 usage notes)."""
    accepted = [claim.total_charge for claim, status in pairs if _action(status) == "WQ"]
    rejected = [claim.total_charge for claim, status in pairs if _action(status) == "U"]
    segments = []
    if accepted:
        segments.append(seg("QTY", accepted_qty, str(len(accepted))))
    if rejected:
        segments.append(seg("QTY", rejected_qty, str(len(rejected))))
    if accepted:
        segments.append(seg("AMT", "YU", amount(sum(accepted, ZERO))))
    if rejected:
        segments.append(seg("AMT", "YY", amount(sum(rejected, ZERO))))
    return segments


def _summary_stc(pairs: Sequence[tuple[Claim, ClaimStatus]], entity: str, when: date | None) -> Segment:
    any_accepted = any(_action(status) == "WQ" for _, status in pairs)
    total = sum((claim.total_charge for claim, _ in pairs), ZERO)
    composite = ("A1", "19", entity) if any_accepted else ("A3", "19", entity)
    return seg("STC", composite, d8(when) if when else None, "WQ" if any_accepted else "U", amount(total))


def _patient_level(number: int, parent: int, claim: Claim, status: ClaimStatus) -> list[Segment]:
    _check_pair(claim.claim_id, status)
    patient = claim.patient or claim.subscriber
    dates = [line.service_date for line in claim.service_lines]
    billed = status.billed_amount if status.billed_amount is not None else claim.total_charge
    body = [
        seg("HL", str(number), str(parent), "PT"),
        person_nm1("QC", patient.name, "MI", claim.subscriber.member_id),
        seg("TRN", "2", claim.claim_id),
        _stc(status, _action(status), amount(billed)),
    ]
    if status.payer_claim_number is not None:
        body.append(seg("REF", "1K", status.payer_claim_number))
    body.append(seg("DTP", "472", "RD8", rd8(min(dates), max(dates))))
    return body


def write_277ca(
    acknowledged: Sequence[tuple[Claim, ClaimStatus]],
    *,
    source: Party,
    receiver: Party,
    batch_reference: str,
    received: date,
    envelope: Envelope,
    control: ControlNumbers | ControlCounter,
    source_entity: Literal["PR", "AY"] = "AY",
    created: datetime | None = None,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    newline: bool = False,
) -> WrittenInterchange:
    """One 277CA interchange (GS01 ``HN``, X214) acknowledging an 837 batch, claim by claim.

    ``source`` is who acknowledges (a clearinghouse ``AY`` or a payer ``PR``), ``receiver`` who sent
    the 837 (its 1000A submitter); ``batch_reference`` identifies the acknowledged batch (e.g. the
    837's ISA13 or BHT03) and is returned in the receiver's TRN*2.
    """
    if not acknowledged:
        raise ValueError("a 277CA needs at least one claim")
    when = (created or datetime.now(UTC)).replace(second=0, microsecond=0)
    numbers = control.next() if isinstance(control, ControlCounter) else control
    body: list[Segment] = [
        seg("BHT", "0085", "08", batch_reference, when.strftime("%Y%m%d"), when.strftime("%H%M"), "TH"),
        seg("HL", "1", None, "20", "1"),
        organization_nm1(source_entity, source.name, "46", source.identifier),
        seg("TRN", "1", batch_reference),
        seg("DTP", "050", "D8", d8(received)),
        seg("DTP", "009", "D8", d8(when.date())),
        seg("HL", "2", "1", "21", "1"),
        organization_nm1("41", receiver.name, "46", receiver.identifier),
        seg("TRN", "2", batch_reference),
        _summary_stc(acknowledged, source_entity, when.date()),
        *_totals(acknowledged, "90", "AA"),
    ]
    by_provider: dict[str, list[tuple[Claim, ClaimStatus]]] = {}
    for claim, status in acknowledged:
        by_provider.setdefault(claim.billing_provider.npi, []).append((claim, status))
    number = 2
    for npi, pairs in by_provider.items():
        number += 1
        provider_hl = number
        provider = pairs[0][0].billing_provider
        body += [
            seg("HL", str(provider_hl), "2", "19", "1"),
            organization_nm1("85", provider.name, "XX", npi),
            seg("TRN", "1", npi),
            _summary_stc(pairs, "85", None),
            *_totals(pairs, "QA", "QC"),
        ]
        for claim, status in pairs:
            number += 1
            body += _patient_level(number, provider_hl, claim, status)
    tset = TransactionSet("277", IMPLEMENTATION_277CA, body, key=batch_reference)
    return build_interchange(
        [FunctionalGroup("HN", IMPLEMENTATION_277CA, [tset])],
        envelope=envelope,
        control=numbers,
        created=when,
        delimiters=delimiters,
        newline=newline,
    )
