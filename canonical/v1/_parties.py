"""People, organisations and addresses shared by accounts, claims and remittances (v1)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from canonical._base import Canonical
from canonical._codes import TEXT_PATTERN, Npi, PayerId, TaxId, check_not_after_today, check_npi
from canonical._phi import PHI

__all__ = ["Address", "Payer", "PersonName", "Provider", "Sex"]

Sex = Literal["F", "M", "U"]
NamePart = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=TEXT_PATTERN)]
# An organisation's name travels in X12 NM103, which holds at most 60 characters.
OrgName = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=TEXT_PATTERN)]
AddressLine = Annotated[str, msgspec.Meta(min_length=1, max_length=55, pattern=TEXT_PATTERN)]


class Address(Canonical, kw_only=True, frozen=True):
    line1: AddressLine
    line2: AddressLine | None = None
    city: Annotated[str, msgspec.Meta(min_length=2, max_length=30, pattern=TEXT_PATTERN)]
    state: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$(?!\n)")]
    postal_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5}([0-9]{4})?$(?!\n)")]
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$(?!\n)")] = "US"


class PersonName(Canonical, kw_only=True, frozen=True):
    family: NamePart
    given: NamePart
    middle: NamePart | None = None
    suffix: Annotated[str, msgspec.Meta(min_length=1, max_length=10, pattern=TEXT_PATTERN)] | None = None


class Person(Canonical, kw_only=True, frozen=True):
    """A patient, subscriber or guarantor: everything identifying is PHI."""

    name: Annotated[PersonName, PHI]
    birth_date: Annotated[date, PHI]
    sex: Sex
    address: Annotated[Address, PHI] | None = None

    def __post_init__(self) -> None:
        check_not_after_today(self.birth_date, "birth_date")


class Provider(Canonical, kw_only=True, frozen=True):
    """A billing or rendering provider. Provider identity is not PHI; it appears on every claim."""

    npi: Npi
    name: OrgName
    tax_id: TaxId | None = None
    taxonomy: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{3}[0-9A-Z]{6}X$(?!\n)")] | None = None
    address: Address | None = None

    def __post_init__(self) -> None:
        check_npi(self.npi, "npi")


class Payer(Canonical, kw_only=True, frozen=True):
    payer_id: PayerId
    name: OrgName
