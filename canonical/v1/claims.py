"""Professional claims (v1): enough to build an 837P (005010X222A1)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from canonical._base import Canonical
from canonical._codes import AccountNumber, ClaimId, Icd10Cm, Modifier, ProcedureCode, check_not_after_today
from canonical._money import Amount
from canonical._phi import PHI
from canonical.v1._parties import Address, Payer, Person, PersonName, Provider, Sex

__all__ = ["Claim", "ServiceLine", "Subscriber"]

PlaceOfService = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}$(?!\n)")]
MAX_DIAGNOSES = 12


class Subscriber(Canonical, kw_only=True, frozen=True):
    """The insured. Birth date and sex are required when the subscriber is the patient; for a
    dependent the 837P does not carry them (2010BA DMG: "if not required, do not send")."""

    name: Annotated[PersonName, PHI]
    birth_date: Annotated[date, PHI] | None = None
    sex: Sex | None = None
    address: Annotated[Address, PHI] | None = None
    member_id: Annotated[str, PHI, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,80}$(?!\n)")]
    group_number: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    relationship_to_patient: Literal["self", "spouse", "child", "other"] = "self"

    def __post_init__(self) -> None:
        if self.relationship_to_patient == "self" and (self.birth_date is None or self.sex is None):
            raise ValueError("birth_date and sex are required when the subscriber is the patient")
        if self.birth_date is not None:
            check_not_after_today(self.birth_date, "birth_date")


class ServiceLine(Canonical, kw_only=True, frozen=True):
    procedure: ProcedureCode
    modifiers: Annotated[list[Modifier], msgspec.Meta(max_length=4)] = []
    units: Annotated[int, msgspec.Meta(ge=1, le=9999)] = 1
    charge: Amount
    service_date: date
    diagnosis_pointers: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=MAX_DIAGNOSES)]], msgspec.Meta(min_length=1, max_length=4)
    ]
    place_of_service: PlaceOfService | None = None

    def __post_init__(self) -> None:
        if self.charge <= 0:
            raise ValueError("charge must be greater than zero")
        check_not_after_today(self.service_date, "service_date")  # a claim bills what was rendered


class Claim(Canonical, kw_only=True, frozen=True):
    claim_id: ClaimId
    account_number: AccountNumber
    billing_provider: Provider
    rendering_provider: Provider | None = None
    payer: Payer
    subscriber: Subscriber
    # None when the patient is the subscriber (837P loop 2000C is then omitted).
    patient: Person | None = None
    diagnoses: Annotated[list[Annotated[Icd10Cm, PHI]], msgspec.Meta(min_length=1, max_length=MAX_DIAGNOSES)]
    service_lines: Annotated[list[ServiceLine], msgspec.Meta(min_length=1, max_length=50)]
    place_of_service: PlaceOfService = "11"
    frequency_code: Literal["1", "7", "8"] = "1"
    prior_authorization: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,50}$(?!\n)")] | None = None
    # The payer's claim control number of the claim a replacement (7) or void (8) acts on: the 837P
    # must carry it (2300 REF*F8), and a payer cannot match the correction to its claim without it.
    payer_claim_number: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,50}$(?!\n)")] | None = None
    total_charge: Amount

    def __post_init__(self) -> None:
        if self.billing_provider.tax_id is None:
            raise ValueError("billing_provider.tax_id is required on a claim")
        if (self.frequency_code in ("7", "8")) != (self.payer_claim_number is not None):
            raise ValueError(
                "payer_claim_number (the payer's claim control number, 837P REF*F8) is required to replace (7) "
                "or void (8) a claim, and only then"
            )
        line_total = sum((line.charge for line in self.service_lines), Amount("0"))
        if line_total != self.total_charge:
            raise ValueError(f"total_charge {self.total_charge} does not equal the sum of line charges {line_total}")
        for number, line in enumerate(self.service_lines, start=1):
            if max(line.diagnosis_pointers) > len(self.diagnoses):
                raise ValueError(f"service line {number} points past the {len(self.diagnoses)} diagnoses")
        if self.patient is not None and self.subscriber.relationship_to_patient == "self":
            raise ValueError("patient must be omitted when the subscriber is the patient")
        if self.patient is None and self.subscriber.relationship_to_patient != "self":
            raise ValueError("patient is required when the subscriber is not the patient")
