"""General-ledger journal entries (v1) for the ERP."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec

from canonical._base import Canonical
from canonical._codes import TEXT_PATTERN, Currency, check_currency, check_minor_units
from canonical._money import Amount

__all__ = ["JournalEntry", "JournalLine"]

# What a person reads in the ledger: not blank, no control characters (TEXT_PATTERN).
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=240, pattern=TEXT_PATTERN)]


class JournalLine(Canonical, kw_only=True, frozen=True):
    account: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$(?!\n)")]
    cost_center: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,19}$(?!\n)")] | None = None
    debit: Amount | None = None
    credit: Amount | None = None
    memo: Text | None = None

    def __post_init__(self) -> None:
        if (self.debit is None) == (self.credit is None):
            raise ValueError("a journal line needs exactly one of debit or credit")


_NOTHING = Amount("0")  # where the sums start: built once, not twice per journal


class JournalEntry(Canonical, kw_only=True, frozen=True):
    ledger: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$(?!\n)")]
    accounting_date: date
    currency: Currency = "USD"
    description: Text
    external_reference: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$(?!\n)")]
    lines: Annotated[list[JournalLine], msgspec.Meta(min_length=2, max_length=500)]

    def __post_init__(self) -> None:
        check_currency(self.currency)
        for index, line in enumerate(self.lines):
            amount = line.debit if line.debit is not None else line.credit
            if amount is not None:
                check_minor_units(amount, self.currency, f"lines[{index}]")
        debits = sum((line.debit for line in self.lines if line.debit is not None), _NOTHING)
        credits = sum((line.credit for line in self.lines if line.credit is not None), _NOTHING)
        if debits != credits:
            raise ValueError(f"journal is unbalanced: debits {debits} != credits {credits}")
