"""Canonical claims to one 837P (005010X222A1) interchange.

Batching: one interchange, one functional group (GS01 ``HC``), and **one transaction set per
claim**. A 999 accepts or rejects whole transaction sets, so one set per claim means a rejection
names exactly one claim (``WrittenInterchange.set_keys`` maps each ST02 back to its claim id) and a
bad claim never takes the rest of the batch down with it.

Inside each set the hierarchy is 2000A billing provider (HL 20) -> 2000B subscriber (HL 22) ->
2000C patient (HL 23, only when the patient is not the subscriber), and the claim (loop 2300) hangs
off the lowest level present.

Values the implementation guide requires but the canonical claim does not carry are refused with a
``ValueError`` rather than invented: the billing provider's street address with a nine-digit ZIP
code, the patient's address when the patient is not the subscriber.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from canonical.v1 import Claim, Person, Provider, ServiceLine
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
    address_segments,
    amount,
    build_interchange,
    d8,
    fit,
    organization_nm1,
    person_nm1,
    seg,
)

__all__ = [
    "IMPLEMENTATION_837P",
    "PATIENT_RELATIONSHIP",
    "FilingIndicator",
    "Submitter",
    "claim_transaction",
    "write_837p",
]

IMPLEMENTATION_837P = "005010X222A1"
# Subscriber.relationship_to_patient -> PAT01 (the patient's relationship to the insured).
PATIENT_RELATIONSHIP = {"spouse": "01", "child": "19", "other": "G8"}
FilingIndicator = Literal[
    "11", "12", "13", "14", "15", "16", "17", "AM", "BL", "CH", "CI", "DS", "FI", "HM", "LM", "MA", "MB",
    "MC", "OF", "TV", "VA", "WC", "ZZ",
]  # fmt: skip


class Submitter(Party, frozen=True, kw_only=True):
    """Loop 1000A: who sends the claims, and the EDI contact the receiver calls (PER, one required)."""

    contact_name: str | None = None
    phone: str | None = None  # digits only, e.g. 8005551212
    email: str | None = None

    def __post_init__(self) -> None:
        if self.phone is None and self.email is None:
            raise ValueError("the 837P submitter needs a phone number or an email address (1000A PER)")


def _submitter_loop(submitter: Submitter, receiver: Party) -> list[Segment]:
    contact: list[str] = []
    if submitter.phone is not None:
        contact += ["TE", fit(submitter.phone, 256, "submitter phone")]
    if submitter.email is not None:
        contact += ["EM", fit(submitter.email, 256, "submitter email")]
    name = fit(submitter.contact_name, 60, "submitter contact name") if submitter.contact_name else None
    return [
        organization_nm1("41", submitter.name, "46", submitter.identifier),
        seg("PER", "IC", name, *contact),
        organization_nm1("40", receiver.name, "46", receiver.identifier),
    ]


def _billing_provider(provider: Provider) -> list[Segment]:
    if provider.address is None:
        raise ValueError("the billing provider's address is required on an 837P (2010AA N3/N4)")
    if len(provider.address.postal_code) != 9:
        raise ValueError("the billing provider's ZIP code must have nine digits on an 837P (2010AA N403)")
    if provider.tax_id is None:
        raise ValueError("the billing provider's tax id is required on an 837P (2010AA REF*EI)")
    segments = [seg("HL", "1", None, "20", "1")]
    if provider.taxonomy is not None:
        segments.append(seg("PRV", "BI", "PXC", provider.taxonomy))
    segments.append(organization_nm1("85", provider.name, "XX", provider.npi))
    segments += address_segments(provider.address)
    segments.append(seg("REF", "EI", provider.tax_id))
    return segments


def _subscriber(claim: Claim, filing_indicator: str) -> list[Segment]:
    subscriber = claim.subscriber
    is_patient = claim.patient is None
    segments = [
        seg("HL", "2", "1", "22", "0" if is_patient else "1"),
        seg("SBR", "P", "18" if is_patient else None, subscriber.group_number, *[None] * 5, filing_indicator),
        person_nm1("IL", subscriber.name, "MI", subscriber.member_id),
    ]
    if subscriber.address is not None:
        segments += address_segments(subscriber.address)
    elif is_patient:
        raise ValueError("the subscriber's address is required when the subscriber is the patient (2010BA)")
    if is_patient and subscriber.birth_date is not None:  # always set then (see Subscriber)
        segments.append(seg("DMG", "D8", d8(subscriber.birth_date), subscriber.sex))
    segments.append(organization_nm1("PR", claim.payer.name, "PI", claim.payer.payer_id))
    return segments


def _patient(patient: Person, relationship: str) -> list[Segment]:
    if patient.address is None:
        raise ValueError("the patient's address is required when the patient is not the subscriber (2010CA)")
    return [
        seg("HL", "3", "2", "23", "0"),
        seg("PAT", PATIENT_RELATIONSHIP[relationship]),
        person_nm1("QC", patient.name),
        *address_segments(patient.address),
        seg("DMG", "D8", d8(patient.birth_date), patient.sex),
    ]


def _claim(claim: Claim) -> list[Segment]:
    segments = [
        seg(
            "CLM",
            claim.claim_id,
            amount(claim.total_charge),
            None,
            None,
            (claim.place_of_service, "B", claim.frequency_code),
            "Y",  # CLM06 provider signature on file
            "A",  # CLM07 assigned
            "Y",  # CLM08 benefits assignment certified
            "Y",  # CLM09 release of information
        )
    ]
    if claim.prior_authorization is not None:
        segments.append(seg("REF", "G1", claim.prior_authorization))
    if claim.payer_claim_number is not None:  # after G1, as the implementation guide orders 2300's REFs
        segments.append(seg("REF", "F8", claim.payer_claim_number))
    codes = [code.replace(".", "") for code in claim.diagnoses]
    segments.append(seg("HI", ("ABK", codes[0]), *(("ABF", code) for code in codes[1:])))
    rendering = claim.rendering_provider
    # 2310B only when the rendering provider differs from the billing provider (X222A1 2310B note).
    if rendering is not None and rendering.npi != claim.billing_provider.npi:
        segments.append(organization_nm1("82", rendering.name, "XX", rendering.npi))
        if rendering.taxonomy is not None:
            segments.append(seg("PRV", "PE", "PXC", rendering.taxonomy))
    for number, line in enumerate(claim.service_lines, start=1):
        segments += _service_line(number, line, claim.place_of_service)
    return segments


def _service_line(number: int, line: ServiceLine, claim_place: str) -> list[Segment]:
    place = line.place_of_service if line.place_of_service not in (None, claim_place) else None
    return [
        seg("LX", str(number)),
        seg(
            "SV1",
            ("HC", line.procedure, *line.modifiers),
            amount(line.charge),
            "UN",
            str(line.units),
            place,
            None,
            tuple(str(pointer) for pointer in line.diagnosis_pointers),
        ),
        seg("DTP", "472", "D8", d8(line.service_date)),
    ]


def claim_transaction(
    claim: Claim,
    *,
    submitter: Submitter,
    receiver: Party,
    created: datetime,
    filing_indicator: FilingIndicator = "CI",
) -> TransactionSet:
    """The body of one 837P transaction set (BHT through the last service line) for one claim."""
    body: list[Segment] = [
        seg("BHT", "0019", "00", claim.claim_id, created.strftime("%Y%m%d"), created.strftime("%H%M"), "CH"),
        *_submitter_loop(submitter, receiver),
        *_billing_provider(claim.billing_provider),
        *_subscriber(claim, filing_indicator),
    ]
    if claim.patient is not None:
        body += _patient(claim.patient, claim.subscriber.relationship_to_patient)
    body += _claim(claim)
    return TransactionSet("837", IMPLEMENTATION_837P, body, key=claim.claim_id)


def write_837p(
    claims: Sequence[Claim],
    *,
    submitter: Submitter,
    receiver: Party,
    envelope: Envelope,
    control: ControlNumbers | ControlCounter,
    created: datetime | None = None,
    filing_indicator: FilingIndicator = "CI",
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    newline: bool = False,
) -> WrittenInterchange:
    """One 837P interchange carrying ``claims``, one transaction set per claim, in order.

    ``filing_indicator`` is SBR09 (``CI`` commercial, ``MB`` Medicare Part B, ``MC`` Medicaid, ...):
    the canonical payer does not say which kind of plan it is, so the connector configuration does.
    The subscriber is always sent as primary (SBR01 ``P``).
    """
    if not claims:
        raise ValueError("an 837P needs at least one claim")
    ids = [claim.claim_id for claim in claims]
    if len(set(ids)) != len(ids):
        raise ValueError("claim ids must be unique within one 837P interchange")
    when = (created or datetime.now(UTC)).replace(second=0, microsecond=0)
    numbers = control.next() if isinstance(control, ControlCounter) else control
    sets = [
        claim_transaction(
            claim, submitter=submitter, receiver=receiver, created=when, filing_indicator=filing_indicator
        )
        for claim in claims
    ]
    return build_interchange(
        [FunctionalGroup("HC", IMPLEMENTATION_837P, sets)],
        envelope=envelope,
        control=numbers,
        created=when,
        delimiters=delimiters,
        newline=newline,
    )
