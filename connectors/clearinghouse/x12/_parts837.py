"""837P segments to canonical pieces: names, addresses, providers, CLM05, HI, SV1, DTP.

Each function reads one segment and either returns a value the canonical ``Claim`` can hold or
raises ``ReadError`` naming the element (and component) at fault, without its value.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, cast

from canonical._codes import npi_is_valid
from canonical._money import Amount
from canonical.v1 import Address, PersonName
from connectors.clearinghouse.x12._values import (
    MemoSet,
    ReadError,
    amount,
    d8,
    date_period_start,
    element,
    optional,
)

__all__ = [
    "PATIENT_RELATIONSHIPS",
    "Line",
    "address",
    "birth_and_sex",
    "claim_header",
    "diagnoses",
    "npi",
    "person_name",
    "service_date",
    "service_line",
]

# PAT01 (the patient's relationship to the insured) -> Subscriber.relationship_to_patient
PATIENT_RELATIONSHIPS: dict[str, Literal["spouse", "child", "other"]] = {"01": "spouse", "19": "child"}
_ICD10 = MemoSet(r"^[A-TV-Z][0-9][0-9AB][0-9A-TV-Z]{0,4}\Z")
_PROCEDURE = MemoSet(r"^([0-9]{4}[0-9FTU]|[A-V][0-9]{4})\Z")
_MODIFIER = MemoSet(r"^[A-Z0-9]{2}\Z")
_POSTAL = MemoSet(r"^[0-9]{5}([0-9]{4})?\Z")
_STATE = MemoSet(r"^[A-Z]{2}\Z")
_PLACE = MemoSet(r"^[0-9]{2}\Z")

Line = tuple[str, list[str], int, Amount, list[int], str | None]  # procedure .. place of service


def _limit(value: str | None, index: int, low: int, high: int, what: str) -> str | None:
    if value is not None and not low <= len(value) <= high:
        raise ReadError(index, "5" if len(value) > high else "4", f"{what} must be {low}-{high} characters")
    return value


def person_name(nm1: list[str]) -> PersonName:
    """NM103 last, NM104 first, NM105 middle, NM107 suffix of a person (NM102 ``1``)."""
    if optional(nm1, 2) != "1":
        raise ReadError(2, "7", f"NM1*{nm1[1]} must name a person (NM102 1)")
    family = _limit(element(nm1, 3, "last name"), 3, 1, 60, "last name")
    given = _limit(element(nm1, 4, "first name"), 4, 1, 60, "first name")
    assert family is not None
    assert given is not None
    return PersonName(
        family=family,
        given=given,
        middle=_limit(optional(nm1, 5), 5, 1, 60, "middle name"),
        suffix=_limit(optional(nm1, 7), 7, 1, 10, "name suffix"),
    )


def npi(nm1: list[str]) -> str:
    """NM109 with NM108 ``XX``: ten digits and a valid check digit."""
    if optional(nm1, 8) != "XX":
        raise ReadError(8, "7", f"NM1*{nm1[1]} must be identified by an NPI (NM108 XX)")
    value = element(nm1, 9, "NPI")
    if not npi_is_valid(value):
        raise ReadError(9, "I12", "NPI is not ten digits with a valid check digit")
    return value


def address(n3: list[str], n4: list[str]) -> Address:
    """N3 street lines and N4 city, state, ZIP (and country when not US)."""
    line1 = _limit(element(n3, 1, "address line"), 1, 1, 55, "address line")
    assert line1 is not None
    city = _limit(element(n4, 1, "city"), 1, 2, 30, "city")
    assert city is not None
    state, postal = element(n4, 2, "state"), element(n4, 3, "postal code")
    if state not in _STATE:
        raise ReadError(2, "7", "N402 must be a two-letter state code")
    if postal not in _POSTAL:
        raise ReadError(3, "6", "N403 must be a five- or nine-digit ZIP code")
    country = optional(n4, 4) or "US"
    if country not in _STATE:
        raise ReadError(4, "7", "N404 must be a two-letter country code")
    return Address(
        line1=line1,
        line2=_limit(optional(n3, 2), 2, 1, 55, "address line 2"),
        city=city,
        state=state,
        postal_code=postal,
        country=country,
    )


def birth_and_sex(dmg: list[str]) -> tuple[date, Literal["F", "M", "U"]]:
    if element(dmg, 1, "date format") != "D8":
        raise ReadError(1, "7", "DMG01 must be D8")
    born = d8(element(dmg, 2, "birth date"), 2, "DMG02 birth date")
    sex = element(dmg, 3, "sex")
    if sex not in ("F", "M", "U"):
        raise ReadError(3, "7", "DMG03 must be F, M or U")
    return born, cast(Literal["F", "M", "U"], sex)


def claim_header(clm: list[str], separator: str) -> tuple[str, Amount, str, Literal["1", "7", "8"]]:
    """CLM01 claim id, CLM02 total charge, CLM05 place of service and frequency code."""
    claim_id = element(clm, 1, "patient control number")
    total = amount(element(clm, 2, "total claim charge"), 2, "CLM02 total charge")
    place, qualifier, frequency = ([*element(clm, 5, "facility code").split(separator), "", ""])[:3]
    if place not in _PLACE:
        raise ReadError(5, "7", "CLM05-1 place of service must be two digits", 1)
    if qualifier != "B":
        raise ReadError(5, "7", "CLM05-2 must be B (place of service codes for professional claims)", 2)
    if frequency not in ("1", "7", "8"):
        raise ReadError(5, "7", "CLM05-3 claim frequency must be 1, 7 or 8", 3)
    return claim_id, total, place, cast(Literal["1", "7", "8"], frequency)


def diagnoses(hi: list[str], separator: str, first: bool) -> list[str]:
    """HI composites ABK (principal, first HI only) then ABF; dots restored after 3 characters."""
    found = []
    for index in range(1, len(hi)):
        if not hi[index]:
            continue
        parts = hi[index].split(separator)
        expected = "ABK" if first and index == 1 else "ABF"
        if parts[0] != expected:
            raise ReadError(index, "7", f"HI{index:02d}-1 must be {expected} (ICD-10-CM)", 1)
        code = parts[1] if len(parts) > 1 else ""
        if code not in _ICD10:
            raise ReadError(index, "7", "diagnosis is not an ICD-10-CM code", 2)
        found.append(code if len(code) == 3 else f"{code[:3]}.{code[3:]}")
    return found


def service_line(sv1: list[str], separator: str) -> Line:
    """SV101 HC:code:modifiers, SV102 charge, SV103-04 units, SV105 place, SV107 pointers."""
    parts = element(sv1, 1, "procedure").split(separator)
    if parts[0] != "HC":
        raise ReadError(1, "7", "SV101-1 must be HC (CPT/HCPCS)", 1)
    code = parts[1] if len(parts) > 1 else ""
    if code not in _PROCEDURE:
        raise ReadError(1, "7", "SV101-2 is not a CPT or HCPCS code", 2)
    modifiers = [modifier for modifier in parts[2:6] if modifier]
    for number, modifier in enumerate(modifiers, start=3):
        if modifier not in _MODIFIER:
            raise ReadError(1, "7", "procedure modifier must be two letters or digits", number)
    charge = amount(element(sv1, 2, "line charge"), 2, "SV102 charge")
    if charge <= 0:
        raise ReadError(2, "6", "SV102 charge must be greater than zero")
    if element(sv1, 3, "unit basis") not in ("UN", "MJ"):
        raise ReadError(3, "7", "SV103 must be UN or MJ")
    units_text = element(sv1, 4, "units")
    if not (units_text.isdigit() and units_text.isascii() and 1 <= int(units_text) <= 9999):
        raise ReadError(4, "6", "SV104 units must be a whole number from 1 to 9999")
    place = optional(sv1, 5)
    if place is not None and place not in _PLACE:
        raise ReadError(5, "7", "SV105 place of service must be two digits")
    pointers_text = element(sv1, 7, "diagnosis pointers").split(separator)
    if not all(p.isdigit() and p.isascii() and 1 <= int(p) <= 12 for p in pointers_text) or len(pointers_text) > 4:
        raise ReadError(7, "7", "SV107 must be one to four diagnosis pointers from 1 to 12")
    return code, modifiers, int(units_text), charge, [int(p) for p in pointers_text], place


def service_date(dtp: list[str]) -> date:
    """DTP*472: D8, or RD8 (the first day is the canonical service date)."""
    return date_period_start(element(dtp, 2, "date format"), element(dtp, 3, "service date"), 3, "DTP03")
