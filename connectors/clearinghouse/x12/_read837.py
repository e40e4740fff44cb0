"""837P professional claims (005010X222A1) back to canonical ``Claim`` values.

Used by round-trip tests and by the clearinghouse stub, which answers each claim in a 277CA. Every
CLM loop gives one ``ClaimRead``: the ``Claim`` when the loop and the loops above it (billing
provider HL 20, subscriber HL 22, patient HL 23) map onto the canonical model, otherwise ``None``
and the issues that say why, each at the segment it concerns.

What the canonical claim cannot hold is noted, not invented: ``account_number`` is CLM01 (the
patient control number is the provider's account reference; the 837P has no other); a service
period (RD8) keeps its first day, with a warning; diagnosis codes come back with their dot
(``J02.9``); a rendering provider appears only when sent (2310B is omitted when it is the
billing provider). The subscriber's birth date is only in an 837P when the subscriber is the
patient (2010BA DMG), so a dependent's claim whose 837P omits it cannot become a canonical
``Claim`` (``Subscriber.birth_date`` is required) and is reported as such.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from canonical.v1 import Claim
from connectors.clearinghouse.x12._claim837 import ClaimLoop, Party837, assemble
from connectors.clearinghouse.x12._envelope import (
    GroupEnd,
    SetEnvelope,
    TransactionSet,
    open_set,
)
from connectors.clearinghouse.x12._lexer import CHUNK_SIZE, Source
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._parts837 import (
    PATIENT_RELATIONSHIPS,
    address,
    birth_and_sex,
    claim_header,
    diagnoses,
    npi,
    person_name,
    service_date,
    service_line,
)
from connectors.clearinghouse.x12._setread import Problems, collect_sets
from connectors.clearinghouse.x12._values import MemoSet, ReadError, element, optional

__all__ = ["IMPLEMENTATION_837P", "ClaimRead", "Read837", "read_837"]

IMPLEMENTATION_837P = "005010X222A1"
_TAX_ID = MemoSet(r"^[0-9]{9}\Z")
_TAXONOMY = MemoSet(r"^[0-9]{3}[0-9A-Z]{6}X\Z")
_SEGMENTS_837P = """BHT NM1 PER HL PRV N3 N4 REF CUR SBR PAT DMG CLM DTP PWK CN1 AMT K3 NTE CR1 CR2 CRC HI HCP
    CAS OI MOA LX SV1 SV5 CR3 QTY MEA PS1 LIN CTP SVD LQ FRM"""
_KNOWN = frozenset(_SEGMENTS_837P.split())


class ClaimRead(msgspec.Struct, frozen=True, kw_only=True):
    """One CLM loop: the canonical claim, or why there is none."""

    claim_id: str  # CLM01 as sent ("" when missing)
    position: int  # of the CLM segment in the input
    claim: Claim | None
    issues: list[SegmentIssue]


class Read837(msgspec.Struct, frozen=True, kw_only=True):
    envelope: SetEnvelope
    claims: list[ClaimRead]
    issues: list[SegmentIssue]  # every error in the set, the claims' included
    warnings: list[SegmentIssue]
    group: GroupEnd

    @property
    def accepted(self) -> bool:
        return not self.issues and not self.group.issues


class _SetReader:
    def __init__(self, tset: TransactionSet) -> None:
        self.tset = tset
        self.problems = Problems(tset)
        self.separator = tset.envelope.group.interchange.delimiters.component
        self.parties: dict[str, Party837 | None] = {}
        self.area = "header"
        self.last: Party837 | None = None
        self.claim: ClaimLoop | None = None
        self.claims: list[ClaimRead] = []

    def read(self) -> None:
        for segment in self.tset:
            tag = segment[0]
            try:
                self._segment(tag, segment)
            except ReadError as fault:
                self._fail(fault, segment)
            except IndexError:
                self._fail(ReadError(len(segment), "1", f"{tag} has too few elements"), segment)
        self._close()

    def _fail(self, fault: ReadError, segment: list[str]) -> None:
        self.problems.report(fault, segment)
        party = self.last or self.parties.get(self.area)
        if self.claim is not None and self.area in ("claim", "line", "other payer"):
            self.claim.bad = True
            self.claim.issues.append(self.problems.issues[-1])
        elif party is not None:
            party.bad = True

    def _segment(self, tag: str, segment: list[str]) -> None:
        if tag == "HL":
            self._hierarchy(segment)
        elif tag == "NM1":
            self._name(segment)
        elif tag in ("N3", "N4"):
            if self.last is not None:
                self._address(tag, segment, self.last)
        elif tag in ("REF", "PRV", "SBR", "PAT", "DMG"):
            self._detail(tag, segment)
        elif tag == "CLM":
            self._close()
            parties = dict(self.parties)
            self.claim = ClaimLoop(segment, self.tset.locate(segment), parties)
            self.area, self.last = "claim", None
            self.claim.header = claim_header(segment, self.separator)
        elif tag == "HI" and self.area == "claim" and self.claim is not None:
            if self.claim.codes is None:
                self.claim.codes = diagnoses(segment, self.separator, first=True)
        elif tag == "LX" and self.claim is not None:
            self.area = "line"
            self.claim.lines.append((None, None))
        elif tag == "SV1" and self.area == "line" and self.claim is not None:
            self.claim.lines[-1] = (service_line(segment, self.separator), self.claim.lines[-1][1])
        elif tag == "DTP" and self.area == "line" and self.claim is not None and segment[1] == "472":
            self._line_date(segment, self.claim)
        elif tag not in _KNOWN:
            raise ReadError(None, "6", f"{tag} is not an 837P segment")

    def _hierarchy(self, hl: list[str]) -> None:
        self._close()
        level = element(hl, 3, "hierarchical level code")
        position = self.tset.locate(hl)
        areas = {
            "20": ("billing", ("billing", "subscriber", "payer", "patient")),
            "22": ("subscriber", ("subscriber", "payer", "patient")),
            "23": ("patient", ("patient",)),
        }
        if level not in areas:
            raise ReadError(3, "7", "HL03 must be 20, 22 or 23 in an 837P")
        self.area, cleared = areas[level]
        for name in cleared:
            self.parties[name] = None
        self.parties[self.area] = Party837(position)
        self.last = None

    def _name(self, nm1: list[str]) -> None:
        entity = element(nm1, 1, "entity identifier")
        roles = {
            ("billing", "85"): "billing",
            ("subscriber", "IL"): "subscriber",
            ("subscriber", "PR"): "payer",
            ("patient", "QC"): "patient",
            ("claim", "82"): "rendering",
        }
        role = roles.get((self.area, entity))
        self.last = None
        if role is None:
            return
        party = self.parties.get(role) if role in ("billing", "subscriber", "patient") else None
        if party is None:
            party = Party837(self.tset.locate(nm1))
            if role == "rendering" and self.claim is not None:
                self.claim.parties["rendering"] = party
            else:
                self.parties[role] = party
        self.last = party if role != "rendering" else None
        if role in ("subscriber", "patient"):
            party.name = person_name(nm1)
            if role == "subscriber":
                party.ident = element(nm1, 9, "member id") if optional(nm1, 8) == "MI" else ""
        elif role == "payer":
            party.label, party.ident = element(nm1, 3, "payer name"), element(nm1, 9, "payer id")
        else:
            party.label = element(nm1, 3, "provider name")
            if optional(nm1, 2) == "1" and optional(nm1, 4):
                party.label = f"{party.label} {nm1[4]}"
            party.ident = npi(nm1)

    def _address(self, tag: str, segment: list[str], party: Party837) -> None:
        if tag == "N3":
            party.n3 = segment
        elif party.n3 is None:
            raise ReadError(None, "3", "N4 without the N3 before it")
        else:
            party.address = address(party.n3, segment)

    def _reference(self, area: str, party: Party837 | None, segment: list[str]) -> None:
        qualifier = element(segment, 1, "reference qualifier")
        if area == "billing" and party is not None and qualifier == "EI":
            party.extra["tax_id"] = element(segment, 2, "tax id")
            if party.extra["tax_id"] not in _TAX_ID:
                raise ReadError(2, "6", "REF*EI tax id must be nine digits")
        elif area == "claim" and self.claim is not None and qualifier == "G1":
            self.claim.prior_authorization = element(segment, 2, "prior authorization")
        elif area == "claim" and self.claim is not None and qualifier == "F8":
            self.claim.payer_claim_number = element(segment, 2, "payer claim control number")

    def _detail(self, tag: str, segment: list[str]) -> None:
        area, party = self.area, self.parties.get(self.area)
        if tag == "REF":
            self._reference(area, party, segment)
        elif tag == "PRV":
            target = party if area == "billing" else self.claim.parties.get("rendering") if self.claim else None
            if target is not None and element(segment, 2, "reference qualifier") == "PXC":
                if element(segment, 3, "taxonomy") not in _TAXONOMY:
                    raise ReadError(3, "7", "PRV03 is not a provider taxonomy code")
                target.extra["taxonomy"] = segment[3]
        elif tag == "SBR":
            if area == "subscriber" and party is not None:
                party.extra["self"] = "1" if optional(segment, 2) == "18" else ""
                party.extra["group"] = optional(segment, 3) or ""
            elif area in ("claim", "line"):
                self.area, self.last = "other payer", None  # loop 2320: other subscriber information
        elif tag == "PAT" and area == "patient" and party is not None:
            relationship = element(segment, 1, "patient relationship")
            party.extra["relationship"] = PATIENT_RELATIONSHIPS.get(relationship, "other")
        elif tag == "DMG" and area in ("subscriber", "patient") and party is not None:
            party.born = birth_and_sex(segment)

    def _line_date(self, dtp: list[str], claim: ClaimLoop) -> None:
        day = service_date(dtp)
        if element(dtp, 2, "date format") == "RD8" and not dtp[3].endswith(dtp[3][:8]):
            message = "service period: the canonical service line keeps its first day"
            self.problems.report(ReadError(3, "I12", message), dtp, warning=True)
        claim.lines[-1] = (claim.lines[-1][0], day)

    def _close(self) -> None:
        claim, self.claim = self.claim, None
        if claim is None:
            return
        built = None if claim.bad else assemble(self.problems, claim)
        self.claims.append(
            ClaimRead(
                claim_id=claim.clm[1] if len(claim.clm) > 1 else "",
                position=claim.position,
                claim=built,
                issues=claim.issues,
            )
        )
        self.area = "claim-done"


def _read_set(tset: TransactionSet) -> Callable[[GroupEnd], Read837]:
    envelope = tset.envelope
    opening = open_set(envelope, "837", IMPLEMENTATION_837P)
    reader = _SetReader(tset)
    reader.problems.issues += opening
    reader.read()

    def finish(group: GroupEnd) -> Read837:
        return Read837(
            envelope=envelope,
            claims=reader.claims,
            issues=reader.problems.all_issues(),
            warnings=reader.problems.warnings,
            group=group,
        )

    return finish


def read_837(source: Source, *, chunk_size: int = CHUNK_SIZE) -> list[Read837]:
    """Every 837P transaction set in ``source``, claim by claim."""
    return collect_sets(source, chunk_size, _read_set)
