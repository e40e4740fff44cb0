"""The 835 header (BPR, TRN, DTM*405, loops 1000A payer and 1000B payee) to canonical values.

``HeaderState`` collects the header segments as they arrive; ``payment`` and ``party`` then map
them, reporting through the set reader what is missing or wrong.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Protocol, cast

from canonical._codes import is_text
from canonical._money import Money
from canonical.v1 import Party, Payment
from connectors.clearinghouse.x12._parts835 import ACCEPTED_DETAIL, HEADER_SEGMENTS, PAYMENT_METHODS, reference
from connectors.clearinghouse.x12._values import ReadError, amount, d8, element, money, optional

__all__ = ["HeaderState", "Reporter"]


class Reporter(Protocol):
    """Where header problems go (the set reader)."""

    def report(self, fault: ReadError, segment: list[str], *, warning: bool = False) -> None: ...

    def missing(self, segment_id: str, message: str) -> None: ...


class HeaderState:
    """What the 835 header segments said, before it is checked and mapped."""

    def __init__(self) -> None:
        self.bpr: list[str] | None = None
        self.trace: str | None = None
        self.produced: date | None = None
        self.names: dict[str, list[str]] = {}
        self.fallback_ids: dict[str, tuple[str, str]] = {}
        self.entity = ""

    def take(self, tag: str, segment: list[str]) -> None:
        if tag == "BPR":
            if self.bpr is not None:
                raise ReadError(None, "5", "BPR occurs more than once")
            self.bpr = segment
        elif tag == "TRN":
            if self.trace is not None:
                raise ReadError(None, "5", "TRN occurs more than once")
            self.trace = reference(element(segment, 2, "check or EFT trace number"), 2, "TRN02")
        elif tag == "DTM":
            if element(segment, 1, "date qualifier") == "405":
                self.produced = d8(element(segment, 2, "production date"), 2, "production date")
        elif tag == "CUR":
            if optional(segment, 2) not in (None, "USD"):
                raise ReadError(2, "7", "only USD remittances are supported")
        elif tag == "N1" or (tag == "REF" and self.entity):
            self._party_loop(tag, segment)
        elif tag not in HEADER_SEGMENTS:
            code = "2" if tag in ACCEPTED_DETAIL else "6"
            raise ReadError(None, code, f"{tag} is not expected in the 835 header")

    def _party_loop(self, tag: str, segment: list[str]) -> None:
        """N1 starts loop 1000A (PR) or 1000B (PE); a REF*2U or REF*TJ in it is a fallback id."""
        if tag == "N1":
            self.entity = element(segment, 1, "entity identifier")
            if self.entity in ("PR", "PE"):
                if self.entity in self.names:
                    raise ReadError(None, "5", f"N1*{self.entity} occurs more than once")
                self.names[self.entity] = segment
        elif optional(segment, 1) in ("2U", "TJ"):
            ref = (segment[1], element(segment, 2, "reference identification"))
            self.fallback_ids.setdefault(self.entity + segment[1], ref)

    def payment(self, reader: Reporter) -> Payment | None:
        """BPR and TRN as a canonical ``Payment``; ``None`` (and issues) when they do not make one."""
        bpr = self.bpr
        if bpr is None:
            reader.missing("BPR", "BPR (financial information) is required")
            return None
        if self.trace is None:
            reader.missing("TRN", "TRN (reassociation trace number) is required")
        try:
            total = money(element(bpr, 2, "total payment"), 2, "BPR02 total payment")
            credit_debit = element(bpr, 3, "credit or debit flag")
            if credit_debit not in ("C", "D"):
                raise ReadError(3, "7", "BPR03 must be C or D")
            method = element(bpr, 4, "payment method")
            if method not in PAYMENT_METHODS:
                raise ReadError(4, "7", "BPR04 is not ACH, CHK, BOP, FWT or NON")
            paid_on = self._payment_date(reader, bpr)
        except ReadError as fault:
            reader.report(fault, bpr)
            return None
        if self.trace is None:
            return None
        if total < 0:  # a negative credit is a debit; canonical amounts are non-negative
            total, credit_debit = Money(-total), "D" if credit_debit == "C" else "C"
        return Payment(
            method=cast(Literal["ACH", "CHK", "BOP", "FWT", "NON"], method),
            credit_debit=cast(Literal["C", "D"], credit_debit),
            amount=amount(str(total), 2, "BPR02 total payment"),
            date=paid_on,
            trace_number=self.trace,
        )

    def _payment_date(self, reader: Reporter, bpr: list[str]) -> date:
        """BPR16; when it is not a valid date, the DTM*405 production date, with a warning."""
        text = optional(bpr, 16)
        if text is None:
            raise ReadError(16, "1", "BPR16 (payment date) is required")
        try:
            return d8(text, 16, "BPR16 payment date")
        except ReadError as fault:
            if self.produced is None:
                raise
            fault.message += "; the DTM*405 production date is used instead"
            reader.report(fault, bpr, warning=True)
            return self.produced

    def party(self, reader: Reporter, entity: str, what: str) -> Party | None:
        """N1*PR or N1*PE as a canonical ``Party``; N104 missing: its loop's REF*2U / REF*TJ."""
        n1 = self.names.get(entity)
        fallback = self.fallback_ids.get(entity + ("2U" if entity == "PR" else "TJ"))
        if n1 is None:
            reader.missing("N1", f"N1 loop for the {what} is required")
            return None
        try:
            name = element(n1, 2, f"{what} name")
            if len(name) > 80:
                raise ReadError(2, "5", f"{what} name is longer than 80 characters")
            if not is_text(name):
                raise ReadError(2, "6", f"{what} name is blank or holds a control character")
            qualifier, ident = optional(n1, 3), optional(n1, 4)
            if ident is None and fallback is not None:
                qualifier, ident = fallback
            if qualifier is not None and not (len(qualifier) <= 3 and qualifier.isalnum()):
                raise ReadError(3, "7", f"{what} identification code qualifier is not valid")
            return Party(name=name, identifier=reference(ident, 4, "N104"), identifier_qualifier=qualifier)
        except ReadError as fault:
            reader.report(fault, n1)
            return None
