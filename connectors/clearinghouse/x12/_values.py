"""Element values to canonical types, fast on the common shapes and exact on every other one.

A value that cannot become what the canonical model needs raises ``ReadError`` naming the element (and
component) position and the 999 IK403 code; the reader turns it into a ``SegmentIssue``. A ReadError
never carries the value itself: element values can be PHI.

IK403 codes used: 1 mandatory element missing, 4 too short, 5 too long, 6 invalid character,
7 invalid code value, 8 invalid date, I12 implementation pattern match failure.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any, get_args

import msgspec

from canonical._money import MONEY_MAX_DIGITS, Amount, Money, Quantity

__all__ = [
    "KNOWN_DATES",
    "MemoSet",
    "ReadError",
    "amount",
    "d8",
    "date_period_start",
    "element",
    "money",
    "optional",
    "quantity",
]

_CACHE_LIMIT = 4096


class ReadError(Exception):
    """One element that cannot be mapped: where it is and why, never what it holds."""

    def __init__(self, element: int | None, code: str, message: str, component: int | None = None) -> None:
        super().__init__(message)
        self.element = element
        self.component = component
        self.code = code
        self.message = message


def element(segment: list[str], index: int, what: str) -> str:
    """A mandatory element: present and not empty."""
    if index < len(segment) and segment[index]:
        return segment[index]
    raise ReadError(index, "1", f"{segment[0]}{index:02d} ({what}) is required")


def optional(segment: list[str], index: int) -> str | None:
    return segment[index] or None if index < len(segment) else None


_DIGITS = "0123456789"


def money(text: str, index: int, what: str = "amount") -> Money:
    """An X12 R amount as ``Money``: fast for the usual shapes (``123``, ``-1.5``, ``9.99``).

    The fast path builds exactly the value ``Money`` would (two places, at most twelve whole
    digits) without its general parsing; anything else must still be X12 decimal text (no
    exponent, spaces or underscores, which ``Decimal`` would accept) and goes through ``Money``.
    """
    if text.isdigit() and text.isascii() and len(text) <= MONEY_MAX_DIGITS:  # "0", "45": the commonest
        return Decimal.__new__(Money, text + ".00")
    negative = text[:1] == "-"
    body = text[1:] if negative else text
    if negative and not body.strip("0."):
        text = body  # "-0", "-0.00": a zero has no sign, money is never negative zero
    rest = body.strip(_DIGITS)
    size = len(body)
    if not rest:
        if 0 < size <= MONEY_MAX_DIGITS:
            return Decimal.__new__(Money, text + ".00")
    elif rest == ".":
        if body[-3:-2] == "." and 3 < size <= MONEY_MAX_DIGITS + 3:
            return Decimal.__new__(Money, text)
        if body[-2:-1] == "." and 2 < size <= MONEY_MAX_DIGITS + 2:
            return Decimal.__new__(Money, text + "0")
    digits = body.replace(".", "", 1)
    if not (digits.isdigit() and digits.isascii()):  # X12 R: sign, digits, one point; no 1e5, no spaces
        raise ReadError(index, "6", f"{what} is not a decimal number")
    try:
        return Money(text)
    except ValueError:
        raise ReadError(index, "6", f"{what} has more than two decimal places or twelve digits") from None


def amount(text: str, index: int, what: str = "amount") -> Amount:
    """A non-negative amount."""
    value = money(text, index, what)
    if value < 0:
        raise ReadError(index, "6", f"{what} must not be negative")
    return Decimal.__new__(Amount, value)


def _ascii_digits(text: str) -> bool:
    return text.isdigit() and text.isascii()


def quantity(text: str, index: int, what: str = "quantity") -> Quantity:
    """A canonical ``Quantity``: at most nine whole digits and four decimal places.

    An X12 R value may leave out the leading zero (``.5``, ``-.25``), as ``money`` also allows;
    ``Decimal`` puts it back (``0.5``), so the JSON form stays the canonical quantity pattern.
    """
    if _ascii_digits(text) and len(text) <= 9:  # units of service: "1", "12"
        return Decimal.__new__(Quantity, text)
    body = text[1:] if text[:1] == "-" else text
    whole, dot, places = body.partition(".")
    whole_ok = len(whole) <= 9 and (not whole or _ascii_digits(whole))
    places_ok = (0 < len(places) <= 4 and _ascii_digits(places)) if dot else bool(whole)
    if not (whole_ok and places_ok):
        raise ReadError(index, "6", f"{what} is not a number with at most 9 digits and 4 decimal places")
    return Decimal.__new__(Quantity, text)


KNOWN_DATES: dict[str, date] = {}  # CCYYMMDD text -> date, filled by d8()


def d8(text: str, index: int, what: str = "date", component: int | None = None) -> date:
    """A CCYYMMDD date; cached because the same few dates fill a remittance."""
    cached = KNOWN_DATES.get(text)
    if cached is not None:
        return cached
    if len(text) != 8 or not (text.isdigit() and text.isascii()):
        raise ReadError(index, "8", f"{what} is not a CCYYMMDD date", component)
    try:
        value = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ReadError(index, "8", f"{what} is not a valid calendar date", component) from None
    if len(KNOWN_DATES) >= _CACHE_LIMIT:
        KNOWN_DATES.clear()
    KNOWN_DATES[text] = value
    return value


def date_period_start(qualifier: str, text: str, index: int, what: str = "date") -> date:
    """DTP format qualifier D8 (``20240131``) or RD8 (``20240101-20240131``, first day taken)."""
    if qualifier == "D8":
        return d8(text, index, what)
    if qualifier == "RD8":
        start, dash, end = text.partition("-")
        if not dash:
            raise ReadError(index, "8", f"{what} is not a CCYYMMDD-CCYYMMDD range")
        first = d8(start, index, what)
        if d8(end, index, what) < first:
            raise ReadError(index, "8", f"{what} range ends before it starts")
        return first
    raise ReadError(index - 1, "7", f"{what} format qualifier must be D8 or RD8")


class MemoSet:
    """A pattern check with a memory: codes repeat (CARC 45, HC:99213), regexes need not."""

    __slots__ = ("_good", "_pattern")

    def __init__(self, pattern: str) -> None:
        self._pattern = re.compile(pattern)
        self._good: set[str] = set()

    @classmethod
    def of(cls, canonical: Any) -> MemoSet:
        """The check of a canonical ``Annotated[str, msgspec.Meta(pattern=...)]`` type: a reader that
        takes the model's own pattern accepts exactly what the model does, with no copy to drift."""
        for meta in get_args(canonical)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.pattern is not None:
                return cls(meta.pattern)
        raise TypeError(f"{canonical!r} carries no pattern")

    def __contains__(self, value: object) -> bool:
        if value in self._good:
            return True
        if not isinstance(value, str) or not self._pattern.match(value):
            return False
        if len(self._good) >= _CACHE_LIMIT:
            self._good.clear()
        self._good.add(value)
        return True
