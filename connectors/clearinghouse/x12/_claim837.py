"""Assembling a canonical ``Claim`` from the loops an 837P claim hangs off (X222A1).

``_read837`` collects what each loop said into ``Party837`` and ``ClaimLoop`` values as segments
arrive (so every problem is reported at its segment); ``assemble`` then checks that the parts the
canonical model requires are all there and builds the claim, validated against the canonical schema.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import msgspec

from canonical import Amount, decode, encode
from canonical.v1 import Address, Claim, Payer, Person, PersonName, Provider, ServiceLine, Subscriber
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._parts837 import Line
from connectors.clearinghouse.x12._setread import Problems

__all__ = ["ClaimLoop", "Party837", "assemble"]


class Party837:
    """An NM1 loop being read: what was mapped, and whether anything in it was wrong."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.name: PersonName | None = None
        self.label = ""
        self.ident = ""
        self.address: Address | None = None
        self.n3: list[str] | None = None
        self.extra: dict[str, str] = {}  # REF*EI tax id, PRV taxonomy, SBR03 group, PAT01 ...
        self.born: tuple[date, Literal["F", "M", "U"]] | None = None
        self.bad = False


class ClaimLoop:
    def __init__(self, clm: list[str], position: int, parties: dict[str, Party837 | None]) -> None:
        self.clm = clm
        self.position = position
        self.parties = parties
        self.header: tuple[str, Amount, str, Literal["1", "7", "8"]] | None = None
        self.codes: list[str] | None = None
        self.prior_authorization: str | None = None
        self.payer_claim_number: str | None = None
        self.lines: list[tuple[Line | None, date | None]] = []
        self.issues: list[SegmentIssue] = []
        self.bad = False


def _missing(problems: Problems, claim: ClaimLoop, segment_id: str, message: str, code: str = "3") -> None:
    problems.add(segment_id, claim.position, code, message)
    claim.issues.append(problems.issues[-1])


def assemble(problems: Problems, claim: ClaimLoop) -> Claim | None:  # noqa: PLR0911 - one check per part
    parties = claim.parties
    for role in ("billing", "subscriber", "payer", "patient", "rendering"):
        party = parties.get(role)
        if party is not None and party.bad:
            _missing(problems, claim, "CLM", f"the {role} loop of this claim has errors (see its issues)", "8")
            return None
    billing, subscriber, payer = parties.get("billing"), parties.get("subscriber"), parties.get("payer")
    if billing is None or not billing.ident:
        _missing(problems, claim, "NM1", "billing provider NM1*85 is required")
        return None
    if "tax_id" not in billing.extra:
        _missing(problems, claim, "REF", "billing provider REF*EI (tax id) is required")
        return None
    if subscriber is None or subscriber.name is None or not subscriber.ident:
        _missing(problems, claim, "NM1", "subscriber NM1*IL with a member id (MI) is required")
        return None
    if subscriber.born is None and subscriber.extra.get("self") == "1":
        _missing(problems, claim, "DMG", "the subscriber's DMG is required when the subscriber is the patient")
        return None
    if payer is None:
        _missing(problems, claim, "NM1", "payer NM1*PR is required")
        return None
    if not claim.codes:
        _missing(problems, claim, "HI", "HI with the principal diagnosis (ABK) is required")
        return None
    if not claim.lines or any(line is None or day is None for line, day in claim.lines):
        _missing(problems, claim, "SV1", "every LX needs an SV1 and a DTP*472 service date")
        return None
    return _claim(problems, claim, billing, subscriber, payer)


def _claim(
    problems: Problems, claim: ClaimLoop, billing: Party837, subscriber: Party837, payer: Party837
) -> Claim | None:
    assert claim.header is not None
    assert subscriber.name is not None
    claim_id, total, place, frequency = claim.header
    patient = claim.parties.get("patient")
    rendering = claim.parties.get("rendering")
    try:
        person = None
        relationship: Literal["self", "spouse", "child", "other"] = "self"
        if patient is not None and subscriber.extra.get("self") != "1":
            if patient.name is None or patient.born is None:
                _missing(problems, claim, "DMG", "patient NM1*QC and DMG are required in loop 2000C")
                return None
            person = Person(
                name=patient.name,
                birth_date=patient.born[0],
                sex=patient.born[1],
                address=patient.address,
            )
            relationship = patient.extra.get("relationship", "other")  # type: ignore[assignment]
        built = Claim(
            claim_id=claim_id,
            account_number=claim_id,
            billing_provider=Provider(
                npi=billing.ident,
                name=billing.label,
                tax_id=billing.extra["tax_id"],
                taxonomy=billing.extra.get("taxonomy"),
                address=billing.address,
            ),
            rendering_provider=Provider(
                npi=rendering.ident, name=rendering.label, taxonomy=rendering.extra.get("taxonomy")
            )
            if rendering is not None
            else None,
            payer=Payer(payer_id=payer.ident, name=payer.label),
            subscriber=Subscriber(
                name=subscriber.name,
                birth_date=subscriber.born[0] if subscriber.born else None,
                sex=subscriber.born[1] if subscriber.born else None,
                address=subscriber.address,
                member_id=subscriber.ident,
                group_number=subscriber.extra.get("group") or None,
                relationship_to_patient=relationship,
            ),
            patient=person,
            diagnoses=claim.codes or [],
            service_lines=[_line(line, day) for line, day in claim.lines if line and day],
            place_of_service=place,
            frequency_code=frequency,
            prior_authorization=claim.prior_authorization,
            payer_claim_number=claim.payer_claim_number,
            total_charge=total,
        )
        return decode(encode(built), Claim)  # every pattern and length of the canonical schema
    except (ValueError, msgspec.ValidationError) as error:
        _missing(problems, claim, "CLM", f"claim does not fit the canonical model: {error}", "8")
        return None


def _line(line: Line, day: date) -> ServiceLine:
    code, modifiers, units, charge, pointers, place = line
    return ServiceLine(
        procedure=code,
        modifiers=modifiers,
        units=units,
        charge=charge,
        service_date=day,
        diagnosis_pointers=pointers,
        place_of_service=place,
    )
