"""Validated identifier and code types shared by every API version.

Formats are checked by pattern on the wire type (so they show in the OpenAPI documents); checks a
pattern cannot express (the NPI Luhn digit, ISO 4217 membership) are functions the Structs call.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

import msgspec

__all__ = [
    "TEXT_PATTERN",
    "AccountNumber",
    "Carc",
    "ClaimId",
    "Currency",
    "Icd10Cm",
    "Modifier",
    "Npi",
    "PayerId",
    "ProcedureCode",
    "Rarc",
    "ShortText",
    "StatusCategory",
    "TaxId",
    "check_currency",
    "check_minor_units",
    "check_not_after_today",
    "check_npi",
    "is_text",
    "npi_is_valid",
]

# Every pattern here (and on the canonical types and path parameters) ends in ``$(?!\n)``, not ``$``:
# msgspec and Litestar match with Python's ``re``, whose ``$`` also matches before a final newline,
# so "1000\n" passed as an account code and failed only at delivery. The lookahead makes the end the
# end, in Python and in the ECMA regexes of the OpenAPI document alike.
Npi = Annotated[str, msgspec.Meta(pattern=r"^[12][0-9]{9}$(?!\n)", description="National Provider Identifier")]
TaxId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{9}$(?!\n)", description="EIN or SSN, digits only")]
ClaimId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,37}$(?!\n)",
        description="Patient control number (837P CLM01, 1-38 characters)",
    ),
]
# CLP01 of an 835: the patient control number as the payer echoes it, any printable text of 1-38
# characters. Wider than ClaimId (the claims the hub sends): a payment for a claim some other system
# sent is money received all the same, and refusing it refused the whole remittance.
PatientControlNumber = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[!-~]([ -~]{0,36}[!-~])?$(?!\n)",
        description="Patient control number as the payer echoes it (835 CLP01, 1-38 printable characters)",
    ),
]
AccountNumber = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$(?!\n)")]
PayerId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{2,80}$(?!\n)")]
# ICD-10-CM: letter, digit, alphanumeric, then up to four more after an optional dot (A00.0, S52.521A).
Icd10Cm = Annotated[str, msgspec.Meta(pattern=r"^[A-TV-Z][0-9][0-9AB](\.?[0-9A-TV-Z]{1,4})?$(?!\n)")]
# CPT (five digits, or four digits + F/T for categories II/III) or HCPCS Level II (letter + 4 digits).
ProcedureCode = Annotated[str, msgspec.Meta(pattern=r"^([0-9]{4}[0-9FTU]|[A-V][0-9]{4})$(?!\n)")]
Modifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{2}$(?!\n)")]
# Claim adjustment reason codes: 1-3 characters, digits or a letter then digits (e.g. 45, B7, P12).
Carc = Annotated[str, msgspec.Meta(pattern=r"^([0-9]{1,3}|[A-Z][0-9]{1,2})$(?!\n)")]
# Remittance advice remark codes: M/N/MA + digits (N130, MA01, M15).
Rarc = Annotated[str, msgspec.Meta(pattern=r"^(MA|M|N)[0-9]{1,3}$(?!\n)")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$(?!\n)", description="ISO 4217 code")]
StatusCategory = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(A[0-8]|P[0-5]|F[0-4]|R([0-9]|1[0-6])|E[0-4]|D0)$(?!\n)",
        description="X12 277 claim status category code",
    ),
]
# Free text a person reads (names, addresses, descriptions): no control characters and not blank.
# "   " as a family name and a NUL inside one were accepted, and reached the EHR as FHIR forbids.
# C0 and C1 controls are out; "not blank" counts Unicode white space (NBSP, U+3000, ...) as blank, in
# Python's re and in the ECMA regex of the OpenAPI document alike, and so are the invisible format
# marks (zero-width spaces and joiners, direction marks and overrides, word joiner, BOM): a name of
# nothing but U+202E U+200F shows as blank too.
_INVISIBLE = r"\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f" + _INVISIBLE + r"][^\x00-\x1f\x7f-\x9f]*$(?!\n)"
_TEXT = re.compile(TEXT_PATTERN)
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=TEXT_PATTERN)]

_NPI_PREFIX_SUM = 24  # Luhn sum of the digits of the 80840 prefix, per the CMS NPI standard


def npi_is_valid(npi: str) -> bool:
    """Luhn check over ``80840`` + the first nine digits, as the CMS NPI rule defines it."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    total = _NPI_PREFIX_SUM
    for position, char in enumerate(reversed(npi[:9])):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return (10 - total % 10) % 10 == int(npi[9])


def check_npi(npi: str, field: str) -> None:
    if not npi_is_valid(npi):
        raise ValueError(f"{field} is not a valid NPI (check digit mismatch)")


_ISO_4217 = frozenset(
    (  # noqa: SIM905 - one readable block of codes
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN "
        "BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD "
        "FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY "
        "KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP "
        "MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR "
        "RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT "
        "TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW "
        "ZWL "
    ).split()
)


def check_currency(code: str) -> None:
    if code not in _ISO_4217:
        raise ValueError(f"currency {code!r} is not an active ISO 4217 code")


# ISO 4217 codes whose minor unit is 0: an amount in one of them is a whole number (100.50 JPY is none).
_NO_MINOR_UNIT = frozenset(
    ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF")
)


def check_minor_units(amount: Decimal, currency: str, field: str) -> None:
    """Money carries two places; a currency without a minor unit takes whole amounts only."""
    if currency in _NO_MINOR_UNIT and amount != amount.to_integral_value():
        raise ValueError(f"{field}: {currency} has no minor unit, so its amounts are whole numbers")


def check_not_after_today(value: date, what: str) -> None:
    """A date that cannot be in the future (a birth, a service rendered). One day of slack: a client
    east of this server may already be a day ahead. The message names the field, never the value."""
    if value > datetime.now(UTC).date() + timedelta(days=1):  # UTC: every hub answers the same
        raise ValueError(f"{what} is in the future")


def is_text(value: str) -> bool:
    """Whether ``value`` meets TEXT_PATTERN: for Structs built directly (the X12 readers), which
    msgspec does not check against their patterns; decoding one later would then fail."""
    return _TEXT.match(value) is not None
