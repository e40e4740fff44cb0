"""Money as ``Decimal`` with exactly two places, never float.

Two wire types share one rule set: ``Money`` (signed: remittance reversals and provider
adjustments go negative) and ``Amount`` (non-negative: charges, journal debits and credits).
On the JSON wire both are decimal *strings*; a JSON number is refused because a client that sends
``12.3`` has usually already been through a binary float, and we would rather say so than guess.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "BALANCE_MAX_DIGITS",
    "CENT",
    "MONEY_MAX_DIGITS",
    "Amount",
    "Balance",
    "Money",
    "Quantity",
    "money_pattern",
    "quantity_pattern",
]

CENT = Decimal("0.01")
MONEY_MAX_DIGITS = 12  # whole-unit digits; a hospital's largest remittance is far below 10^12

_SIGNED = re.compile(rf"^-?[0-9]{{1,{MONEY_MAX_DIGITS}}}(\.[0-9]{{1,2}})?$(?!\n)")
_UNSIGNED = re.compile(rf"^[0-9]{{1,{MONEY_MAX_DIGITS}}}(\.[0-9]{{1,2}})?$(?!\n)")
# Sums of money (balancing expectations and differences) get the width of an X12 R18 amount: a
# sum of up to a million amounts below 10^12 still fits, so computing a finding can never overflow.
BALANCE_MAX_DIGITS = 18
_BALANCE = re.compile(rf"^-?[0-9]{{1,{BALANCE_MAX_DIGITS}}}(\.[0-9]{{1,2}})?$(?!\n)")


class Money(Decimal):
    """A signed amount of currency with exactly two decimal places."""

    __slots__ = ()
    _pattern = _SIGNED
    _max_digits = MONEY_MAX_DIGITS

    def __new__(cls, value: Any = "0") -> Money:
        if isinstance(value, float | bool):
            raise TypeError("money must be a decimal string or Decimal, never a float")
        try:
            exact = Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError("money must be a decimal number like 12.50") from None
        if not exact.is_finite():
            raise ValueError("money must be a finite decimal number")
        try:
            cents = exact.quantize(CENT)
        except InvalidOperation:
            raise ValueError("money amount is too large") from None
        if cents != exact:
            raise ValueError("money has more than two decimal places")
        if not cents:
            cents = cents.copy_abs()  # "-0.00" is zero: a sign on it would be shown as a reversal
        if cents.adjusted() >= cls._max_digits:
            raise ValueError(f"money must have at most {cls._max_digits} whole digits")
        if cls._pattern is _UNSIGNED and cents < 0:
            raise ValueError("amount must not be negative")
        return super().__new__(cls, cents)

    @classmethod
    def from_wire(cls, raw: object) -> Money:
        """Decode the JSON representation: a decimal string, nothing else."""
        if not isinstance(raw, str):
            raise ValueError('money must be a JSON string like "12.50", not a number')
        if not cls._pattern.match(raw):
            kind = "a non-negative" if cls._pattern is _UNSIGNED else "a"
            raise ValueError(f"money must be {kind} decimal string with at most two places")
        # The pattern has settled everything ``__new__`` checks (a finite number, at most two places,
        # the whole digits, the sign): only the two places are written out. Several amounts per
        # write, and ``__new__``'s Decimal, quantize and comparisons were 4 % of an accepted journal.
        whole, _, fraction = raw.partition(".")
        money = Decimal.__new__(cls, f"{whole}.{fraction:0<2}")
        return money if money else Decimal.__new__(cls, "0.00")  # "-0.00" is zero: no sign on it

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"


class Balance(Money):
    """A sum of money amounts, as balancing reports them: signed, two places, up to 18 whole digits."""

    __slots__ = ()
    _pattern = _BALANCE
    _max_digits = BALANCE_MAX_DIGITS


class Amount(Money):
    """A non-negative amount: charges, debits, credits, payments."""

    __slots__ = ()
    _pattern = _UNSIGNED


def money_pattern(kind: type[Money]) -> str:
    """The JSON Schema pattern of a money type, for the OpenAPI documents."""
    return kind._pattern.pattern


_QUANTITY = re.compile(r"^-?[0-9]{1,9}(\.[0-9]{1,4})?$(?!\n)")


class Quantity(Decimal):
    """A count that may be fractional (units of service, CAS quantities): a decimal string on the wire."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, raw: object) -> Quantity:
        if not isinstance(raw, str) or not _QUANTITY.match(raw):
            raise ValueError('quantity must be a decimal string with at most four places, like "1.5"')
        return cls(raw)

    def __repr__(self) -> str:
        return f"Quantity('{self}')"


def quantity_pattern() -> str:
    return _QUANTITY.pattern
