"""276 claim status inquiries (005010X212) to ``StatusInquiry`` values (defined in ``_inquiry``).

The hierarchy is HL 20 payer (NM1*PR), 21 information receiver, 19 provider (NM1*1P), 22
subscriber (DMG, NM1*IL) and, for a dependent, 23 patient (DMG, NM1*QC). Each claim status loop
(2200D/2200E, from its TRN*1) becomes one inquiry: TRN02 trace number, REF*EJ patient control
number (the claim id), REF*1K payer claim number, AMT*T3 billed amount, DTP*472 service dates
(D8 or RD8). Service-line loops (SVC) are read over but not mapped.

As with the 837P, the 276 carries the subscriber's birth date only when the subscriber is the
patient; for a dependent ``StatusInquiry.subscriber_birth_date`` stays ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import msgspec

from canonical import decode, encode
from canonical.v1 import Payer, PersonName
from connectors.clearinghouse.x12._envelope import (
    GroupEnd,
    SetEnvelope,
    TransactionSet,
    open_set,
)
from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._lexer import CHUNK_SIZE, Source
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._parts837 import npi, person_name
from connectors.clearinghouse.x12._setread import Problems, collect_sets
from connectors.clearinghouse.x12._values import ReadError, amount, d8, element, optional

__all__ = ["IMPLEMENTATION_276", "Read276", "read_276"]

IMPLEMENTATION_276 = "005010X212"
_BELOW = {"20": ("21", "19", "22", "23"), "21": ("19", "22", "23"), "19": ("22", "23"), "22": ("23",), "23": ()}
_KNOWN = frozenset({"BHT", "HL", "NM1", "PER", "PRV", "DMG", "TRN", "REF", "AMT", "DTP", "SVC", "N3", "N4"})


class Read276(msgspec.Struct, frozen=True, kw_only=True):
    envelope: SetEnvelope
    inquiries: list[StatusInquiry]
    issues: list[SegmentIssue]
    warnings: list[SegmentIssue]
    group: GroupEnd

    @property
    def accepted(self) -> bool:
        return not self.issues and not self.group.issues


class _Level:
    """What one HL level said: a name, an identifier, a birth date."""

    def __init__(self) -> None:
        self.name: PersonName | None = None
        self.label = ""
        self.ident = ""
        self.born: date | None = None
        self.bad = False


class _Inquiry:
    def __init__(self, trace: str, position: int) -> None:
        self.trace = trace
        self.position = position
        self.refs: dict[str, str] = {}
        self.billed: str | None = None
        self.dates: tuple[date, date] | None = None
        self.bad = False


def _period(dtp: list[str]) -> tuple[date, date]:
    qualifier, text = element(dtp, 2, "date format"), element(dtp, 3, "service dates")
    if qualifier == "D8":
        day = d8(text, 3, "DTP03 service date")
        return day, day
    if qualifier != "RD8":
        raise ReadError(2, "7", "DTP02 must be D8 or RD8")
    start, _, end = text.partition("-")
    return d8(start, 3, "DTP03 service period start"), d8(end, 3, "DTP03 service period end")


class _SetReader:
    def __init__(self, tset: TransactionSet) -> None:
        self.tset = tset
        self.problems = Problems(tset)
        self.levels: dict[str, _Level] = {}
        self.level = ""
        self.inquiry: _Inquiry | None = None
        self.in_service = False
        self.inquiries: list[StatusInquiry] = []

    def read(self) -> None:
        for segment in self.tset:
            tag = segment[0]
            try:
                self._segment(tag, segment)
            except (ReadError, IndexError) as error:
                fault = error if isinstance(error, ReadError) else ReadError(len(segment), "1", "too few elements")
                self.problems.report(fault, segment)
                if self.inquiry is not None and not self.in_service:
                    self.inquiry.bad = True
                elif self.level in self.levels:
                    self.levels[self.level].bad = True
        self._close()

    def _segment(self, tag: str, segment: list[str]) -> None:
        current = self.levels.get(self.level)
        if tag == "HL":
            self._close()
            self.level = element(segment, 3, "hierarchical level code")
            if self.level not in _BELOW:
                raise ReadError(3, "7", "HL03 must be 20, 21, 19, 22 or 23 in a 276")
            for lower in _BELOW[self.level]:
                self.levels.pop(lower, None)
            self.levels[self.level] = _Level()
        elif tag == "TRN" and self.level in ("22", "23"):
            self._close()
            self.inquiry = _Inquiry(element(segment, 2, "trace number"), self.tset.locate(segment))
        elif self.inquiry is not None and not self.in_service and tag in ("REF", "AMT", "DTP", "SVC"):
            self._claim_segment(tag, segment, self.inquiry)
        elif tag == "NM1" and current is not None and self.inquiry is None:
            self._name(segment, current)
        elif tag == "DMG" and current is not None and self.inquiry is None:
            current.born = _born(segment)
        elif tag not in _KNOWN:
            raise ReadError(None, "6", f"{tag} is not a 276 segment")

    def _name(self, nm1: list[str], level: _Level) -> None:
        entity = element(nm1, 1, "entity identifier")
        if (self.level, entity) in (("22", "IL"), ("23", "QC")):
            level.name = person_name(nm1)
            if entity == "IL":
                if optional(nm1, 8) != "MI":
                    raise ReadError(8, "7", "the subscriber must be identified by a member id (MI)")
                level.ident = element(nm1, 9, "member id")
        elif (self.level, entity) == ("20", "PR"):
            level.label, level.ident = element(nm1, 3, "payer name"), element(nm1, 9, "payer id")
        elif (self.level, entity) == ("19", "1P"):
            level.label, level.ident = element(nm1, 3, "provider name"), npi(nm1)

    def _claim_segment(self, tag: str, segment: list[str], inquiry: _Inquiry) -> None:
        if tag == "REF":
            inquiry.refs[element(segment, 1, "reference qualifier")] = element(segment, 2, "reference")
        elif tag == "AMT":
            if element(segment, 1, "amount qualifier") == "T3":
                inquiry.billed = element(segment, 2, "billed amount")
                amount(inquiry.billed, 2, "AMT02 billed amount")
        elif tag == "DTP":
            if element(segment, 1, "date qualifier") == "472":
                inquiry.dates = _period(segment)
        else:
            self.in_service = True

    def _close(self) -> None:
        inquiry, self.inquiry, self.in_service = self.inquiry, None, False
        if inquiry is None or inquiry.bad:
            return
        built = self._build(inquiry)
        if built is not None:
            self.inquiries.append(built)

    def _missing(self, inquiry: _Inquiry, segment_id: str, message: str, code: str = "3") -> None:
        self.problems.add(segment_id, inquiry.position, code, message)

    def _build(self, inquiry: _Inquiry) -> StatusInquiry | None:
        payer, provider = self.levels.get("20"), self.levels.get("19")
        subscriber, patient = self.levels.get("22"), self.levels.get("23")
        parts = {"payer NM1*PR": payer, "provider NM1*1P": provider, "subscriber NM1*IL": subscriber}
        for what, level in parts.items():
            if level is None or level.bad or not level.ident:
                self._missing(inquiry, "NM1", f"{what} is missing or in error for this inquiry")
                return None
        assert payer is not None
        assert provider is not None
        assert subscriber is not None
        if patient is not None and (patient.bad or patient.name is None or patient.born is None):
            self._missing(inquiry, "NM1", "dependent patient NM1*QC and DMG are missing or in error")
            return None
        if subscriber.name is None or (subscriber.born is None and patient is None):
            self._missing(inquiry, "DMG", "the subscriber's NM1 and, when they are the patient, DMG are required")
            return None
        if "EJ" not in inquiry.refs or inquiry.billed is None or inquiry.dates is None:
            self._missing(inquiry, "REF", "REF*EJ, AMT*T3 and DTP*472 are required for an inquiry")
            return None
        try:
            built = StatusInquiry(
                claim_id=inquiry.refs["EJ"],
                payer=Payer(payer_id=payer.ident, name=payer.label),
                provider_npi=provider.ident,
                provider_name=provider.label,
                subscriber_member_id=subscriber.ident,
                subscriber_name=subscriber.name,
                subscriber_birth_date=subscriber.born,
                patient_name=patient.name if patient else None,
                patient_birth_date=patient.born if patient else None,
                service_date_from=inquiry.dates[0],
                service_date_to=inquiry.dates[1],
                billed_amount=amount(inquiry.billed, 2),
                payer_claim_number=inquiry.refs.get("1K"),
                trace_number=inquiry.trace,
            )
            return decode(encode(built), StatusInquiry)  # every pattern of the schema
        except (ValueError, msgspec.ValidationError) as error:
            self._missing(inquiry, "TRN", f"inquiry does not fit StatusInquiry: {error}", "8")
            return None


def _born(dmg: list[str]) -> date:
    """DMG01 D8 and DMG02 birth date (DMG03, the sex, is not part of an inquiry)."""
    if element(dmg, 1, "date format") != "D8":
        raise ReadError(1, "7", "DMG01 must be D8")
    return d8(element(dmg, 2, "birth date"), 2, "DMG02 birth date")


def _read_set(tset: TransactionSet) -> Callable[[GroupEnd], Read276]:
    envelope = tset.envelope
    opening = open_set(envelope, "276", IMPLEMENTATION_276)
    reader = _SetReader(tset)
    reader.problems.issues += opening
    reader.read()

    def finish(group: GroupEnd) -> Read276:
        return Read276(
            envelope=envelope,
            inquiries=reader.inquiries,
            issues=reader.problems.all_issues(),
            warnings=reader.problems.warnings,
            group=group,
        )

    return finish


def read_276(source: Source, *, chunk_size: int = CHUNK_SIZE) -> list[Read276]:
    """Every 276 transaction set in ``source`` with its inquiries and problems."""
    return collect_sets(source, chunk_size, _read_set)
