"""835 balancing rules (005010X221A1 section 1.10.2), applied to a canonical Remittance.

Findings are reported, not raised: a payer's arithmetic error must not stop the hub from recording
the money that did arrive; the finding tells a person exactly how far off it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from canonical._base import Canonical
from canonical._money import Balance
from canonical.v1.remittances import Adjustment, ClaimPayment, Remittance

__all__ = ["RULE_CLAIM", "RULE_LINE", "RULE_TRANSACTION", "BalancingFinding", "balancing_finding", "check_balancing"]

RULE_LINE = "SVC02 - sum(CAS) = SVC03"
RULE_CLAIM = "CLP03 - sum(claim and line CAS) = CLP04"
RULE_TRANSACTION = "sum(CLP04) - sum(PLB) = BPR02"


class BalancingFinding(Canonical, kw_only=True, frozen=True):
    level: Literal["service_line", "claim", "transaction"]
    claim_id: str | None = None
    line: int | None = None
    rule: str
    expected: Balance
    actual: Balance
    difference: Balance


def _total(adjustments: Iterable[Adjustment]) -> Decimal:
    return sum((a.amount for a in adjustments), Decimal(0))


def balancing_finding(
    level: Literal["service_line", "claim", "transaction"],
    rule: str,
    expected: Decimal,
    actual: Decimal,
    claim_id: str | None = None,
    line: int | None = None,
) -> BalancingFinding:
    return BalancingFinding(
        level=level,
        claim_id=claim_id,
        line=line,
        rule=rule,
        expected=Balance(expected),
        actual=Balance(actual),
        difference=Balance(actual - expected),
    )


def _claim_findings(claim: ClaimPayment) -> list[BalancingFinding]:
    findings = []
    line_adjustments = Decimal(0)
    for number, svc in enumerate(claim.service_lines, start=1):
        svc_cas = _total(svc.adjustments)
        line_adjustments += svc_cas
        expected = svc.charge - svc_cas
        if expected != svc.paid:
            findings.append(balancing_finding("service_line", RULE_LINE, expected, svc.paid, claim.claim_id, number))
    expected_paid = claim.billed - _total(claim.adjustments) - line_adjustments
    if expected_paid != claim.paid:
        findings.append(balancing_finding("claim", RULE_CLAIM, expected_paid, claim.paid, claim.claim_id))
    return findings


def check_balancing(remittance: Remittance) -> list[BalancingFinding]:
    findings = [f for claim in remittance.claims for f in _claim_findings(claim)]
    paid = sum((c.paid for c in remittance.claims), Decimal(0))
    provider = sum((p.amount for p in remittance.provider_adjustments), Decimal(0))
    # A debit (BPR03 D) is money taken back: BPR02 counts as negative, as the 835 writes it.
    payment = remittance.payment
    bpr02 = -payment.amount if payment.credit_debit == "D" else payment.amount
    if paid - provider != bpr02:
        findings.append(balancing_finding("transaction", RULE_TRANSACTION, paid - provider, bpr02))
    return findings
