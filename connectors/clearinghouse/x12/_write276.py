"""Claim status inquiries to one 276 (005010X212) interchange.

One transaction set per inquiry (so a 999 rejection names exactly one inquiry; ``set_keys`` maps each
ST02 to its claim id). Each set carries the full 5010 hierarchy:

    HL 20 information source (the payer)        2100A NM1*PR
      HL 21 information receiver (the hub)      2100B NM1*41
        HL 19 service provider                  2100C NM1*1P
          HL 22 subscriber                      (DMG when the patient is the subscriber), 2100D NM1*IL
            [HL 23 dependent patient            DMG, 2100E NM1*QC]
              2200D/E  TRN*1 trace, REF*1K payer claim number, REF*EJ patient control number,
                       AMT*T3 billed amount, DTP*472 RD8 service dates
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._model import DEFAULT_DELIMITERS, Delimiters
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
    fit,
    organization_nm1,
    person_nm1,
    rd8,
    seg,
)

__all__ = ["IMPLEMENTATION_276", "inquiry_transaction", "status_party_levels", "write_276"]

IMPLEMENTATION_276 = "005010X212"


def status_party_levels(inquiry: StatusInquiry, receiver: Party) -> list[Segment]:
    """HL 20/21/19 with their names: the part a 276 and the 277 answering it share."""
    return [
        seg("HL", "1", None, "20", "1"),
        organization_nm1("PR", inquiry.payer.name, "PI", inquiry.payer.payer_id),
        seg("HL", "2", "1", "21", "1"),
        organization_nm1("41", receiver.name, "46", receiver.identifier),
        seg("HL", "3", "2", "19", "1"),
        organization_nm1("1P", fit(inquiry.provider_name, 60, "provider name"), "XX", inquiry.provider_npi),
    ]


def inquiry_transaction(inquiry: StatusInquiry, *, receiver: Party, created: datetime) -> TransactionSet:
    """The body of one 276 transaction set (BHT through DTP*472) for one inquiry."""
    dependent = not inquiry.patient_is_subscriber
    body = [
        seg("BHT", "0010", "13", inquiry.trace_number, created.strftime("%Y%m%d"), created.strftime("%H%M")),
        *status_party_levels(inquiry, receiver),
        seg("HL", "4", "3", "22", "1" if dependent else "0"),
    ]
    if not dependent and inquiry.subscriber_birth_date is not None:  # always set then (see StatusInquiry)
        body.append(seg("DMG", "D8", d8(inquiry.subscriber_birth_date)))
    body.append(person_nm1("IL", inquiry.subscriber_name, "MI", inquiry.subscriber_member_id))
    if inquiry.patient_name is not None and inquiry.patient_birth_date is not None:
        body += [
            seg("HL", "5", "4", "23"),
            seg("DMG", "D8", d8(inquiry.patient_birth_date)),
            person_nm1("QC", inquiry.patient_name),
        ]
    body.append(seg("TRN", "1", inquiry.trace_number))
    if inquiry.payer_claim_number is not None:
        body.append(seg("REF", "1K", inquiry.payer_claim_number))
    body += [
        seg("REF", "EJ", inquiry.claim_id),
        seg("AMT", "T3", amount(inquiry.billed_amount)),
        seg("DTP", "472", "RD8", rd8(inquiry.service_date_from, inquiry.service_date_to)),
    ]
    return TransactionSet("276", IMPLEMENTATION_276, body, key=inquiry.claim_id)


def write_276(
    inquiries: Sequence[StatusInquiry],
    *,
    receiver: Party,
    envelope: Envelope,
    control: ControlNumbers | ControlCounter,
    created: datetime | None = None,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    newline: bool = False,
) -> WrittenInterchange:
    """One 276 interchange (GS01 ``HR``), one transaction set per inquiry, in order.

    ``receiver`` is the information receiver (loop 2100B): who asks and gets the 277 back.
    """
    if not inquiries:
        raise ValueError("a 276 needs at least one inquiry")
    when = (created or datetime.now(UTC)).replace(second=0, microsecond=0)
    numbers = control.next() if isinstance(control, ControlCounter) else control
    sets = [inquiry_transaction(inquiry, receiver=receiver, created=when) for inquiry in inquiries]
    return build_interchange(
        [FunctionalGroup("HR", IMPLEMENTATION_276, sets)],
        envelope=envelope,
        control=numbers,
        created=when,
        delimiters=delimiters,
        newline=newline,
    )
