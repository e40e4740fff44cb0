"""835 (005010X221A1) health care claim payment/advice to canonical ``Remittance`` values.

Two ways in:

- ``iter_835(source)`` streams. Per transaction set it yields a ``RemittanceHeader`` (payer, payee,
  payment), then each ``ClaimPayment`` as soon as its loop closes, then a ``RemittanceTrailer``
  (provider adjustments, running totals, balancing findings, problems); after each functional
  group a ``GroupEnd``. Memory holds one claim, whatever the file size. A set is only good when its
  trailer has no ``issues``: claims already yielded from a set that turns out bad must be discarded
  by the consumer (claims that are themselves in error are never yielded).
- ``read_835(source)`` collects each set into a ``Read835``: the ``Remittance`` (``None`` when the
  set has issues), its balancing findings from ``check_balancing``, and the problems.

Balancing findings are reported, never raised. Interchange-level problems and a transaction set
that is not an 835 raise ``X12Error``. ``acknowledge`` (in ``_ack``) turns results into 999 values.

Mapping notes: a negative BPR02 is a debit (canonical amounts are non-negative), so it is read as
the absolute amount with BPR03 flipped; the transaction balancing rule uses the signed amount.
SVC01 (the adjudicated procedure) is the service line's procedure; SVC06 (the procedure as
submitted, when the payer changed it) is checked but has no canonical field.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from canonical._money import Balance, Money
from canonical.v1 import (
    BalancingFinding,
    ClaimPayment,
    Party,
    Payment,
    ProviderAdjustment,
    Remittance,
    check_balancing,
)
from canonical.v1.balancing import RULE_TRANSACTION
from canonical.v1.balancing import balancing_finding as finding
from connectors.clearinghouse.x12._envelope import (
    EnvelopeReader,
    GroupEnd,
    SetEnvelope,
    TransactionSet,
    open_set,
)
from connectors.clearinghouse.x12._lexer import CHUNK_SIZE, Source
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._remit835 import SetReader835

__all__ = [
    "IMPLEMENTATION_835",
    "Event835",
    "Read835",
    "RemittanceHeader",
    "RemittanceTrailer",
    "iter_835",
    "read_835",
]

IMPLEMENTATION_835 = "005010X221A1"


class RemittanceHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The start of one 835 set. A part is ``None`` when it is missing or wrong (see the trailer)."""

    envelope: SetEnvelope
    payer: Party | None
    payee: Party | None
    payment: Payment | None


class RemittanceTrailer(msgspec.Struct, frozen=True, kw_only=True):
    """The end of one 835 set: what it added up to and what was wrong with it."""

    envelope: SetEnvelope
    provider_adjustments: list[ProviderAdjustment]
    claim_count: int
    total_billed: Balance  # sum of CLP03 over the claims yielded (a sum: wider than one amount)
    total_paid: Balance  # sum of CLP04
    total_provider_adjustments: Balance  # sum of PLB amounts
    payment_amount: Money | None  # BPR02, signed: negative for a debit
    findings: list[BalancingFinding]
    issues: list[SegmentIssue]  # errors: the set is rejected
    warnings: list[SegmentIssue]  # noted: the set is accepted with errors
    segment_count: int


Event835 = RemittanceHeader | ClaimPayment | RemittanceTrailer | GroupEnd


class Read835(msgspec.Struct, frozen=True, kw_only=True):
    """One 835 transaction set, collected."""

    envelope: SetEnvelope
    remittance: Remittance | None  # None when ``issues`` is not empty
    findings: list[BalancingFinding]
    issues: list[SegmentIssue]
    warnings: list[SegmentIssue]
    group: GroupEnd  # the group's own checks (GE), for the 999

    @property
    def accepted(self) -> bool:
        return not self.issues and not self.group.issues


def _signed(payment: Payment | None) -> Money | None:
    if payment is None:
        return None
    return payment.amount if payment.credit_debit == "C" else Money(-payment.amount)


def _read_set(tset: TransactionSet) -> Iterator[RemittanceHeader | ClaimPayment | RemittanceTrailer]:
    envelope = tset.envelope
    opening = open_set(envelope, "835", IMPLEMENTATION_835[:10])
    reader = SetReader835(tset)
    reader.issues += opening
    payer, payee, payment = reader.header()
    yield RemittanceHeader(envelope=envelope, payer=payer, payee=payee, payment=payment)
    yield from reader.claims()
    if not tset.done:
        raise AssertionError("835 detail stopped before SE")  # pragma: no cover - claims() reads to SE
    signed = _signed(payment)
    if signed is not None:
        expected = reader.total_paid - reader.total_plb
        if expected != signed:
            reader.findings.append(finding("transaction", RULE_TRANSACTION, expected, signed))
    if reader.claim_count == 0 and not reader.issues:
        reader.missing("CLP", "no claim payment (CLP): a canonical remittance needs one")
    yield RemittanceTrailer(
        envelope=envelope,
        provider_adjustments=reader.provider_adjustments,
        claim_count=reader.claim_count,
        total_billed=Balance(reader.total_billed),
        total_paid=Balance(reader.total_paid),
        total_provider_adjustments=Balance(reader.total_plb),
        payment_amount=signed,
        findings=reader.findings,
        issues=[*reader.issues, *tset.issues],
        warnings=reader.warnings,
        segment_count=tset.segment_count,
    )


def iter_835(source: Source, *, chunk_size: int = CHUNK_SIZE) -> Iterator[Event835]:
    """Stream the 835 sets of ``source`` (bytes or a binary file) as events; see the module doc."""
    for item in EnvelopeReader(source, chunk_size):
        if isinstance(item, GroupEnd):
            yield item
        else:
            yield from _read_set(item)


def read_835(source: Source, *, chunk_size: int = CHUNK_SIZE) -> list[Read835]:
    """Every 835 set in ``source``, collected into canonical remittances with balancing findings."""
    results: list[Read835] = []
    pending: list[tuple[RemittanceHeader, list[ClaimPayment], RemittanceTrailer]] = []
    header: RemittanceHeader | None = None
    claims: list[ClaimPayment] = []
    for event in iter_835(source, chunk_size=chunk_size):
        if isinstance(event, RemittanceHeader):
            header, claims = event, []
        elif isinstance(event, ClaimPayment):
            claims.append(event)
        elif isinstance(event, RemittanceTrailer):
            assert header is not None
            pending.append((header, claims, event))
        else:
            results.extend(_collect(head, found, trailer, event) for head, found, trailer in pending)
            pending = []
    return results


def _collect(
    header: RemittanceHeader, claims: list[ClaimPayment], trailer: RemittanceTrailer, group: GroupEnd
) -> Read835:
    remittance = None
    findings = trailer.findings
    if not trailer.issues and header.payer and header.payee and header.payment and claims:
        remittance = Remittance(
            payer=header.payer,
            payee=header.payee,
            payment=header.payment,
            claims=claims,
            provider_adjustments=trailer.provider_adjustments,
        )
        findings = check_balancing(remittance)
    return Read835(
        envelope=trailer.envelope,
        remittance=remittance,
        findings=findings,
        issues=trailer.issues,
        warnings=trailer.warnings,
        group=group,
    )
