"""Remittances (v1): what a payer paid, adjusted and why, claim by claim (835 005010X221A1)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from canonical._base import Canonical
from canonical._codes import Carc, Modifier, PatientControlNumber, Rarc, ShortText
from canonical._money import Amount, Money, Quantity
from canonical._phi import PHI
from canonical.v1._parties import PersonName

__all__ = [
    "Adjustment",
    "ClaimPayment",
    "Party",
    "Payment",
    "ProviderAdjustment",
    "Remittance",
    "ServicePayment",
]

Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
# CLP02: 1-4 processed (primary..quaternary), 19-21 also forwarded, 22 reversal, 23 not our claim,
# 25 predetermination. 4 is a denial.
ClaimStatusCode = Literal["1", "2", "3", "4", "19", "20", "21", "22", "23", "25"]


class Adjustment(Canonical, kw_only=True, frozen=True):
    group: Literal["CO", "PR", "OA", "PI", "CR"]
    reason: Carc
    amount: Money
    quantity: Quantity | None = None


class ServicePayment(Canonical, kw_only=True, frozen=True):
    qualifier: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{2}$(?!\n)")] = "HC"
    procedure: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,48}$(?!\n)")]
    modifiers: Annotated[list[Modifier], msgspec.Meta(max_length=4)] = []
    charge: Money
    paid: Money
    units: Quantity | None = None
    service_date: date | None = None
    control_number: Reference | None = None
    adjustments: list[Adjustment] = []
    remark_codes: list[Rarc] = []


class ClaimPayment(Canonical, kw_only=True, frozen=True):
    claim_id: PatientControlNumber
    status_code: ClaimStatusCode
    billed: Money
    paid: Money
    patient_responsibility: Money | None = None
    payer_claim_number: Reference | None = None
    patient_name: Annotated[PersonName, PHI] | None = None
    adjustments: list[Adjustment] = []
    service_lines: list[ServicePayment] = []
    remark_codes: list[Rarc] = []


class ProviderAdjustment(Canonical, kw_only=True, frozen=True):
    reason: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{2}$(?!\n)")]
    reference: Reference | None = None
    amount: Money


class Payment(Canonical, kw_only=True, frozen=True):
    method: Literal["ACH", "CHK", "BOP", "FWT", "NON"]
    credit_debit: Literal["C", "D"] = "C"
    amount: Amount
    date: date
    trace_number: Reference


class Party(Canonical, kw_only=True, frozen=True):
    name: ShortText
    identifier: Reference | None = None
    identifier_qualifier: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,3}$(?!\n)")] | None = None


class Remittance(Canonical, kw_only=True, frozen=True):
    payer: Party
    payee: Party
    payment: Payment
    claims: Annotated[list[ClaimPayment], msgspec.Meta(min_length=1)]
    provider_adjustments: list[ProviderAdjustment] = []
