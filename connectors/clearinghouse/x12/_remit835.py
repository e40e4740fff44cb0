"""The inside of one 835 transaction set: header, claim loops, PLB, balancing as it goes.

This is the hot path of the reader. Each segment is handled where it arrives, its values checked
and converted at once (so a problem names the segment being read), and a claim becomes a canonical
``ClaimPayment`` the moment its loop closes; only that one claim is ever held. Balancing (005010X221A1
section 1.10.2) is computed on the fly with the rules, texts and arithmetic of
``canonical.v1.balancing.check_balancing``, so a streamed remittance and a collected one agree.

The claim loop is one function with its state in local variables and the segment ids tested most
frequent first: that is what makes pure Python read an 835 at several megabytes a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from itertools import chain

from canonical._money import Money, Quantity
from canonical.v1 import (
    Adjustment,
    BalancingFinding,
    ClaimPayment,
    Party,
    Payment,
    PersonName,
    ProviderAdjustment,
    ServicePayment,
)
from canonical.v1.balancing import balancing_finding as finding
from connectors.clearinghouse.x12._envelope import CONTROL_SEGMENTS, TransactionSet
from connectors.clearinghouse.x12._head835 import HeaderState
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._parts835 import (
    ACCEPTED_DETAIL,
    CARC,
    CLAIM_ID,
    CLAIM_STATUSES,
    DETAIL_START,
    GROUPS,
    HEADER_SEGMENTS,
    LOOP_STARTS,
    RULE_CLAIM,
    RULE_LINE,
    adjustments,
    patient_name,
    procedure,
    provider_adjustments,
    reference,
    remarks,
)
from connectors.clearinghouse.x12._values import (
    KNOWN_DATES,
    ReadError,
    d8,
    element,
    money,
    optional,
    quantity,
)

__all__ = ["SetReader835"]

_ZERO = Decimal(0)
_NO_MONEY = Money("0")
_MOA_REMARKS = range(3, 8)
_MIA_REMARKS = (5, 20, 21, 22, 23)
LineFields = tuple[str, str, list[str], Money, Money, Quantity | None]


class SetReader835:
    """Read one 835 transaction set: ``header()``, then ``claims()``, then the totals and problems."""

    def __init__(self, tset: TransactionSet) -> None:
        self.tset = tset
        self.component = tset.envelope.group.interchange.delimiters.component
        self.issues: list[SegmentIssue] = []
        self.warnings: list[SegmentIssue] = []
        self.findings: list[BalancingFinding] = []
        self.provider_adjustments: list[ProviderAdjustment] = []
        self.claim_count = 0
        self.total_billed = _ZERO
        self.total_paid = _ZERO
        self.total_plb = _ZERO
        self._first_detail: list[str] | None = None

    def report(self, fault: ReadError, segment: list[str], *, warning: bool = False) -> None:
        issue = SegmentIssue(
            segment_id=segment[0],
            position=self.tset.locate(segment),
            element=fault.element,
            component=fault.component,
            code=fault.code,
            message=fault.message,
            control_number=self.tset.envelope.control_number,
        )
        (self.warnings if warning else self.issues).append(issue)

    def _short(self, segment: list[str]) -> None:
        self.report(ReadError(len(segment), "1", f"{segment[0]} has too few elements"), segment)

    # -- header: BPR, TRN, DTM*405, N1*PR and N1*PE loops -------------------------------------------
    def header(self) -> tuple[Party | None, Party | None, Payment | None]:
        state = HeaderState()
        end: list[str] | None = None
        for segment in self.tset.raw:
            tag = segment[0]
            if tag in DETAIL_START:
                self._first_detail = segment
                break
            if tag in CONTROL_SEGMENTS:
                end = segment
                break
            try:
                state.take(tag, segment)
            except ReadError as fault:
                self.report(fault, segment)
        else:
            self.tset.end(None)
        payment = state.payment(self)
        payer = state.party(self, "PR", "payer")
        payee = state.party(self, "PE", "payee")
        if end is not None:
            self.tset.end(end)
        return payer, payee, payment

    def missing(self, segment_id: str, message: str) -> None:
        """A required segment is absent: reported where the header ended."""
        where = self._first_detail or [segment_id]
        position = self.tset.locate(where) if self._first_detail else self.tset.envelope.position
        self.issues.append(
            SegmentIssue(
                segment_id=segment_id,
                position=position,
                code="3",
                message=message,
                control_number=self.tset.envelope.control_number,
            )
        )

    # -- detail: claim payment loops, then PLB --------------------------------------------------------
    def claims(self) -> Iterator[ClaimPayment]:  # noqa: PLR0912, PLR0915 - the hot loop stays in one frame
        if self._first_detail is None:
            return
        tset = self.tset
        separator = self.component
        clp: list[str] | None = None
        claim_id = ""
        billed = paid = _NO_MONEY
        responsibility: Money | None = None
        payer_number: str | None = None
        patient: PersonName | None = None
        claim_adj: list[Adjustment] = []
        claim_cas = _ZERO
        claim_remarks: list[str] = []
        lines: list[ServicePayment] = []
        lines_cas = _ZERO
        claim_ok = True
        in_line = False
        line: LineFields | None = None
        line_adj: list[Adjustment] = []
        line_cas = _ZERO
        line_remarks: list[str] = []
        line_date: date | None = None
        line_start: date | None = None
        line_control: str | None = None
        summary = False
        known_dates = KNOWN_DATES
        for segment in chain((self._first_detail,), tset.raw):
            tag = segment[0]
            try:
                if tag == "CAS":
                    size = len(segment)
                    total: Decimal
                    if 4 <= size <= 5 and segment[1] in GROUPS and segment[2] in CARC:  # one triplet
                        total = money(segment[3], 3, "adjustment amount")
                        units = segment[4] if size == 5 and segment[4] else None
                        found = [
                            Adjustment(
                                group=segment[1],  # type: ignore[arg-type]  # checked against GROUPS
                                reason=segment[2],
                                amount=total,
                                quantity=quantity(units, 4) if units else None,
                            )
                        ]
                    else:
                        found = adjustments(segment)
                        total = sum((a.amount for a in found), _ZERO)
                    if in_line:
                        line_adj += found
                        line_cas += total
                    elif clp is not None:
                        claim_adj += found
                        claim_cas += total
                    else:
                        raise ReadError(None, "7", "CAS outside a claim or service line")
                elif tag == "DTM":
                    value = known_dates.get(segment[2]) or d8(segment[2], 2)
                    if in_line:
                        if segment[1] == "472":
                            line_date = value
                        elif segment[1] == "150":
                            line_start = value
                    elif clp is None:
                        raise ReadError(None, "7", "DTM outside a claim or service line")
                elif tag == "REF":
                    if in_line:
                        if segment[1] == "6R":
                            line_control = reference(element(segment, 2, "line control number"), 2, "REF02")
                    elif clp is not None:
                        if segment[1] in ("1K", "F8") and payer_number is None:
                            payer_number = reference(element(segment, 2, "payer claim number"), 2, "REF02")
                    else:
                        raise ReadError(None, "7", "REF outside a claim or service line")
                elif tag in ("AMT", "QTY"):
                    if clp is None:
                        raise ReadError(None, "7", f"{tag} outside a claim or service line")
                elif tag in LOOP_STARTS:
                    if in_line:
                        in_line = False
                        if line is not None and claim_ok:
                            lines.append(
                                self._line(
                                    line,
                                    line_adj,
                                    line_cas,
                                    line_remarks,
                                    line_date or line_start,
                                    line_control,
                                    claim_id,
                                    len(lines) + 1,
                                )
                            )
                            lines_cas += line_cas
                    if tag == "SVC":
                        if clp is None:
                            raise ReadError(None, "7", "SVC outside a claim")
                        in_line, line = True, None
                        line_adj, line_remarks, line_date, line_start, line_control = [], [], None, None, None
                        line_cas = _ZERO
                        qualifier, code, modifiers = procedure(segment[1], separator)
                        units = segment[5] if len(segment) > 5 and segment[5] else None
                        line = (
                            qualifier,
                            code,
                            modifiers,
                            money(segment[2], 2, "SVC02 charge"),
                            money(segment[3], 3, "SVC03 payment"),
                            quantity(units, 5, "SVC05 units") if units else None,
                        )
                        if len(segment) > 6 and segment[6]:
                            procedure(segment[6], separator, 6)
                        continue
                    if clp is not None:
                        if claim_ok:
                            yield self._claim(
                                clp,
                                claim_id,
                                billed,
                                paid,
                                responsibility,
                                payer_number,
                                patient,
                                claim_adj,
                                claim_cas + lines_cas,
                                lines,
                                claim_remarks,
                            )
                        clp = None
                    if summary and tag != "PLB":
                        raise ReadError(None, "7", f"{tag} after PLB: PLB ends the transaction")
                    if tag == "CLP":
                        clp, claim_ok = segment, False  # stays False if this CLP is rejected below
                        claim_id = element(segment, 1, "patient control number")
                        if claim_id not in CLAIM_ID:
                            raise ReadError(1, "6", "CLP01 is not 1-38 printable characters")
                        if segment[2] not in CLAIM_STATUSES:
                            raise ReadError(2, "7", "CLP02 is not a claim status code")
                        billed = money(segment[3], 3, "CLP03 charge")
                        paid = money(segment[4], 4, "CLP04 payment")
                        text = optional(segment, 5)
                        responsibility = money(text, 5, "CLP05 patient responsibility") if text else None
                        payer_number = reference(optional(segment, 7), 7, "CLP07")
                        patient, claim_adj, claim_remarks, lines = None, [], [], []
                        claim_cas = lines_cas = _ZERO
                        claim_ok = True
                    elif tag == "PLB":
                        summary = True
                        found_plb = provider_adjustments(segment, separator)
                        self.provider_adjustments += found_plb
                        self.total_plb += sum((p.amount for p in found_plb), _ZERO)
                elif tag == "LQ":
                    if not in_line:
                        raise ReadError(None, "7", "LQ outside a service line")
                    if segment[1] == "HE":
                        remarks(segment, (2,), line_remarks)
                elif tag == "NM1":
                    if clp is None or in_line:
                        raise ReadError(None, "7", "NM1 outside the claim level")
                    if segment[1] == "QC":
                        patient = patient_name(segment)
                        if patient is None:
                            message = "patient has no first name; patient_name is left out"
                            self.report(ReadError(4, "1", message), segment, warning=True)
                elif tag in ("MOA", "MIA"):
                    if clp is None or in_line:
                        raise ReadError(None, "7", f"{tag} outside the claim level")
                    remarks(segment, _MOA_REMARKS if tag == "MOA" else _MIA_REMARKS, claim_remarks)
                elif tag in ("PER", "TS2"):
                    pass
                elif tag in CONTROL_SEGMENTS:
                    tset.end(segment)
                    break
                else:
                    code = "2" if tag in HEADER_SEGMENTS or tag in ACCEPTED_DETAIL else "6"
                    raise ReadError(None, code, f"{tag} is not expected in the 835 detail")
            except ReadError as fault:
                self.report(fault, segment)
                if clp is not None:
                    claim_ok = False
            except IndexError:
                self._short(segment)
                if clp is not None:
                    claim_ok = False
        else:
            tset.end(None)
        if in_line and line is not None and claim_ok:
            lines.append(
                self._line(
                    line,
                    line_adj,
                    line_cas,
                    line_remarks,
                    line_date or line_start,
                    line_control,
                    claim_id,
                    len(lines) + 1,
                )
            )
            lines_cas += line_cas
        if clp is not None and claim_ok:
            yield self._claim(
                clp,
                claim_id,
                billed,
                paid,
                responsibility,
                payer_number,
                patient,
                claim_adj,
                claim_cas + lines_cas,
                lines,
                claim_remarks,
            )

    def _line(
        self,
        fields: LineFields,
        found: list[Adjustment],
        adjusted: Decimal,
        remark_codes: list[str],
        service_date: date | None,
        control: str | None,
        claim_id: str,
        number: int,
    ) -> ServicePayment:
        qualifier, code, modifiers, charge, paid, units = fields
        if charge - adjusted != paid:
            self.findings.append(finding("service_line", RULE_LINE, charge - adjusted, paid, claim_id, number))
        return ServicePayment(
            qualifier=qualifier,
            procedure=code,
            modifiers=modifiers,
            charge=charge,
            paid=paid,
            units=units,
            service_date=service_date,
            control_number=control,
            adjustments=found,
            remark_codes=remark_codes,
        )

    def _claim(
        self,
        clp: list[str],
        claim_id: str,
        billed: Money,
        paid: Money,
        responsibility: Money | None,
        payer_number: str | None,
        patient: PersonName | None,
        found: list[Adjustment],
        adjusted: Decimal,
        lines: list[ServicePayment],
        remark_codes: list[str],
    ) -> ClaimPayment:
        if billed - adjusted != paid:
            self.findings.append(finding("claim", RULE_CLAIM, billed - adjusted, paid, claim_id))
        self.claim_count += 1
        self.total_billed += billed
        self.total_paid += paid
        return ClaimPayment(
            claim_id=claim_id,
            status_code=clp[2],  # type: ignore[arg-type]  # checked against CLAIM_STATUSES
            billed=billed,
            paid=paid,
            patient_responsibility=responsibility,
            payer_claim_number=payer_number,
            patient_name=patient,
            adjustments=found,
            service_lines=lines,
            remark_codes=remark_codes,
        )
