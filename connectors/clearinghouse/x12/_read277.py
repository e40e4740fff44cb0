"""277 claim status responses (005010X212) and 277CA claim acknowledgements (005010X214).

Each claim-level loop (2200D/2200E under HL 22 or 23 in a 277, 2200D under HL ``PT`` in a 277CA)
becomes one ``ClaimStatus`` per status it carries: STC01, then STC10 and STC11 when present, for
every STC of the loop, in order. Service-line STCs (after an SVC) and the information receiver's and
provider's summary STCs of a 277CA are not claim statuses and are not mapped.

The claim id is the patient control number: REF*EJ in a 277 (its TRN02 is the trace number of the
276 it answers), TRN02 in a 277CA. ``source`` is ``277CA`` for X214 and ``277`` for X212, from ST03
or else GS08; any other guide is an issue on the set.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Literal

import msgspec

from canonical._codes import StatusCategory
from canonical._money import Money
from canonical.v1 import ClaimStatus
from connectors.clearinghouse.x12._envelope import GroupEnd, SetEnvelope, TransactionSet, wrong_transaction
from connectors.clearinghouse.x12._lexer import CHUNK_SIZE, Source
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._setread import Problems, collect_sets
from connectors.clearinghouse.x12._values import MemoSet, ReadError, d8, element, money

__all__ = ["Read277", "read_277"]

_CLAIM_LEVELS = {"277": frozenset({"22", "23"}), "277CA": frozenset({"PT"})}
_CATEGORY = MemoSet.of(StatusCategory)  # the categories ClaimStatus can hold, D0 included
_STATUS = MemoSet(r"^[0-9A-Z]{1,5}\Z")
_ENTITY = MemoSet(r"^[0-9A-Z]{2,3}\Z")
_CLAIM_ID = MemoSet(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,37}\Z")
_KNOWN = frozenset(
    {"BHT", "HL", "NM1", "PER", "TRN", "STC", "REF", "DTP", "QTY", "AMT", "SVC", "DMG", "N3", "N4", "PRV"}
)
_Status = tuple[str, str, str | None, date, Money | None, Money | None]


class Read277(msgspec.Struct, frozen=True, kw_only=True):
    """One 277 or 277CA transaction set."""

    envelope: SetEnvelope
    source: Literal["277", "277CA"] | None  # None when the guide is neither X212 nor X214
    statuses: list[ClaimStatus]
    trace_numbers: list[str]  # TRN02 of the claim loop each status came from, same order
    issues: list[SegmentIssue]
    warnings: list[SegmentIssue]
    group: GroupEnd

    @property
    def accepted(self) -> bool:
        return not self.issues and not self.group.issues


def _source(envelope: SetEnvelope) -> Literal["277", "277CA"] | None:
    version = envelope.version
    if version.startswith("005010X214"):
        return "277CA"
    if version.startswith("005010X212"):
        return "277"
    return None


def _composite(text: str, separator: str, index: int) -> tuple[str, str, str | None]:
    """STC01/STC10/STC11: category, status and (optional) entity code."""
    parts = text.split(separator)
    if parts[0] not in _CATEGORY:
        raise ReadError(index, "7", "claim status category code is not one the canonical model knows", 1)
    if len(parts) < 2 or parts[1] not in _STATUS:
        raise ReadError(index, "7", "claim status code must be 1-5 letters or digits", 2)
    entity = parts[2] if len(parts) > 2 and parts[2] else None
    if entity is not None and entity not in _ENTITY:
        raise ReadError(index, "7", "entity identifier code must be 2-3 letters or digits", 3)
    return parts[0], parts[1], entity


def _statuses(stc: list[str], separator: str) -> list[_Status]:
    when = d8(element(stc, 2, "status effective date"), 2, "STC02 effective date")
    billed = money(stc[4], 4, "STC04 total claim charge") if len(stc) > 4 and stc[4] else None
    paid = money(stc[5], 5, "STC05 claim payment") if len(stc) > 5 and stc[5] else None
    found = []
    for index in (1, 10, 11):
        if index < len(stc) and stc[index]:
            category, status, entity = _composite(stc[index], separator, index)
            found.append((category, status, entity, when, billed, paid))
    if not found:
        raise ReadError(1, "1", "STC01 (claim status) is required")
    return found


class _ClaimLoop:
    def __init__(self, trace: str, position: int) -> None:
        self.trace = trace
        self.position = position  # of its TRN
        self.statuses: list[_Status] = []
        self.payer_claim_number: str | None = None
        self.patient_control: str | None = None
        self.bad = False


class _SetReader:
    def __init__(self, tset: TransactionSet) -> None:
        self.tset = tset
        self.problems = Problems(tset)
        self.source = _source(tset.envelope)
        self.separator = tset.envelope.group.interchange.delimiters.component
        self.statuses: list[ClaimStatus] = []
        self.traces: list[str] = []

    def read(self) -> None:
        levels = _CLAIM_LEVELS.get(self.source or "", frozenset())
        level = ""
        claim: _ClaimLoop | None = None
        in_service = False
        for segment in self.tset:
            tag = segment[0]
            try:
                if tag == "HL":
                    self._close(claim)
                    claim, in_service, level = None, False, element(segment, 3, "hierarchical level code")
                elif tag == "TRN" and level in levels and element(segment, 1, "trace type") == "2":
                    self._close(claim)
                    trace = element(segment, 2, "trace number")
                    claim, in_service = _ClaimLoop(trace, self.tset.locate(segment)), False
                elif claim is None or in_service:
                    if tag not in _KNOWN:
                        raise ReadError(None, "6", f"{tag} is not a 277 segment")
                else:
                    in_service = self._claim_segment(claim, tag, segment)
            except ReadError as fault:
                self.problems.report(fault, segment)
                if claim is not None and not in_service:
                    claim.bad = True
            except IndexError:
                self.problems.short(segment)
                if claim is not None and not in_service:
                    claim.bad = True
        self._close(claim)

    def _claim_segment(self, claim: _ClaimLoop, tag: str, segment: list[str]) -> bool:
        """One segment of a claim status loop; True when it starts a service line (SVC)."""
        if tag == "STC":
            claim.statuses += _statuses(segment, self.separator)
        elif tag == "REF":
            if segment[1] == "1K":
                claim.payer_claim_number = element(segment, 2, "payer claim control number")
            elif segment[1] == "EJ":
                claim.patient_control = element(segment, 2, "patient control number")
        elif tag == "SVC":
            return True
        elif tag not in _KNOWN:
            raise ReadError(None, "6", f"{tag} is not a 277 segment")
        return False

    def _close(self, claim: _ClaimLoop | None) -> None:
        if claim is None or claim.bad or self.source is None:
            return
        claim_id = claim.trace
        if self.source == "277" and claim.patient_control is not None:
            claim_id = claim.patient_control
        if claim_id not in _CLAIM_ID:
            message = "claim id (patient control number) is not 1-38 letters, digits, . _ -"
            self.problems.add("TRN", claim.position, "6", message, element=2)
            return
        if claim.payer_claim_number is not None and len(claim.payer_claim_number) > 50:
            self.problems.add("TRN", claim.position, "5", "REF*1K of this claim is longer than 50 characters")
            return
        if not claim.statuses:
            self.problems.add("STC", claim.position, "3", "claim status loop without an STC")
            return
        for category, status, entity, when, billed, paid in claim.statuses:
            self.statuses.append(
                ClaimStatus(
                    claim_id=claim_id,
                    category_code=category,
                    status_code=status,
                    entity_code=entity,
                    payer_claim_number=claim.payer_claim_number,
                    billed_amount=billed,
                    paid_amount=paid,
                    effective_date=when,
                    source=self.source,
                )
            )
            self.traces.append(claim.trace)


def _read_set(tset: TransactionSet) -> Callable[[GroupEnd], Read277]:
    envelope = tset.envelope
    if envelope.transaction_code != "277":
        raise wrong_transaction(envelope, "277")
    reader = _SetReader(tset)
    if reader.source is None:
        message = "implementation guide (ST03 or GS08) is neither 005010X212 nor 005010X214"
        reader.problems.add("ST", envelope.position, "7", message, element=3)
    reader.read()

    def finish(group: GroupEnd) -> Read277:
        return Read277(
            envelope=envelope,
            source=reader.source,
            statuses=reader.statuses,
            trace_numbers=reader.traces,
            issues=reader.problems.all_issues(),
            warnings=reader.problems.warnings,
            group=group,
        )

    return finish


def read_277(source: Source, *, chunk_size: int = CHUNK_SIZE) -> list[Read277]:
    """Every 277/277CA transaction set in ``source`` with its claim statuses and problems."""
    return collect_sets(source, chunk_size, _read_set)
