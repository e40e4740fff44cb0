from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import decode, encode, phi_paths
from canonical.v1 import Claim, JournalEntry, PatientAccount, Remittance, check_balancing
from tests import factories

amounts = st.integers(min_value=1, max_value=10**9).map(lambda c: f"{Decimal(c).scaleb(-2):.2f}")


def _journal_bytes(debits: list[str], credits: list[str]) -> bytes:
    lines = [{"account": "1000", "debit": d} for d in debits] + [{"account": "4000", "credit": c} for c in credits]
    return msgspec.json.encode({**factories.journal(), "lines": lines})


@given(st.lists(amounts, min_size=1, max_size=8), st.integers(min_value=1, max_value=4))
def test_balanced_journals_decode(debits: list[str], splits: int) -> None:
    total = sum(Decimal(d) for d in debits)
    share = (total / splits).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    credits = [f"{share:.2f}"] * (splits - 1) + [f"{total - share * (splits - 1):.2f}"]
    if any(Decimal(c) <= 0 for c in credits):
        credits = [f"{total:.2f}"]
    entry = decode(_journal_bytes(debits, credits), JournalEntry)
    assert sum(line.debit or 0 for line in entry.lines) == sum(line.credit or 0 for line in entry.lines)


@given(st.lists(amounts, min_size=1, max_size=8), amounts)
def test_unbalanced_journals_are_rejected(debits: list[str], credit: str) -> None:
    if sum(Decimal(d) for d in debits) == Decimal(credit):
        return
    with pytest.raises(msgspec.ValidationError, match="unbalanced"):
        decode(_journal_bytes(debits, [credit]), JournalEntry)


def test_journal_line_needs_exactly_one_side() -> None:
    body: dict[str, Any] = factories.journal()
    body["lines"][0]["credit"] = "125.00"
    with pytest.raises(msgspec.ValidationError, match=r"exactly one of debit or credit - at `\$.lines\[0\]`"):
        decode(msgspec.json.encode(body), JournalEntry)


def test_journal_rejects_unknown_currency_and_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="ISO 4217"):
        decode(msgspec.json.encode({**factories.journal(), "currency": "XXQ"}), JournalEntry)
    with pytest.raises(msgspec.ValidationError, match="unknown field `ledgr`"):
        decode(msgspec.json.encode({**factories.journal(), "ledgr": "x"}), JournalEntry)


def test_a_currency_without_minor_units_takes_whole_amounts_only() -> None:
    # ISO 4217: JPY, KRW, CLP, ... have no minor unit; 100.50 JPY is no amount the ledger can post.
    for currency in ("JPY", "KRW", "CLP"):
        with pytest.raises(msgspec.ValidationError, match=f"{currency} has no minor unit"):
            decode(msgspec.json.encode({**factories.journal(amount="100.50"), "currency": currency}), JournalEntry)
        whole = decode(msgspec.json.encode({**factories.journal(amount="100"), "currency": currency}), JournalEntry)
        assert whole.lines[0].debit == Decimal("100")
    assert decode(msgspec.json.encode({**factories.journal(amount="100.50"), "currency": "KWD"}), JournalEntry)


def test_claim_decodes_and_round_trips() -> None:
    claim = decode(msgspec.json.encode(factories.claim("PCN1")), Claim)
    assert claim.total_charge == Decimal("125.50")
    assert decode(encode(claim), Claim) == claim


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(total_charge="125.00"), "does not equal the sum"),
        (lambda c: c["billing_provider"].update(npi="1234567890"), "not a valid NPI"),
        (lambda c: c.update(diagnoses=["123"]), "regex"),
        (lambda c: c["service_lines"][0].update(procedure="9921"), "regex"),
        (lambda c: c["service_lines"][0].update(diagnosis_pointers=[3]), "points past"),
        (lambda c: c.update(diagnoses=[]), "length"),
        (lambda c: c["service_lines"][0].update(modifiers=["25", "59", "XU", "GT", "26"]), "length"),
    ],
)
def test_claim_invariants(mutate: Any, message: str) -> None:
    body = factories.claim("PCN2")
    mutate(body)
    with pytest.raises(msgspec.ValidationError, match=message):
        decode(msgspec.json.encode(body), Claim)


def test_phi_paths_come_from_the_types() -> None:
    assert phi_paths(Claim) >= {
        "subscriber.name",
        "subscriber.birth_date",
        "subscriber.member_id",
        "subscriber.address",
        "patient.name",
        "diagnoses[]",
    }
    assert "billing_provider.npi" not in phi_paths(Claim)
    assert phi_paths(PatientAccount) >= {"patient.name", "coverages[].member_id", "guarantor.name"}
    assert "claims[].patient_name" in phi_paths(Remittance)


def test_balancing_reports_exact_differences() -> None:
    body = factories.remittance(("A1", "A2"))
    body["payment"]["amount"] = "150.00"  # claims pay 160.00
    body["claims"][1]["paid"] = "79.99"  # one cent short of billed - adjustments
    remittance = decode(msgspec.json.encode(body), Remittance)
    findings = {(f.level, f.claim_id): f for f in check_balancing(remittance)}
    assert findings[("claim", "A2")].difference == Decimal("-0.01")
    assert findings[("transaction", None)].difference == Decimal("-9.99")
    assert ("claim", "A1") not in findings


def test_balancing_sums_wider_than_one_amount_are_reported_exactly() -> None:
    """Each amount is below 10^12, their sums need not be: findings have room (18 digits)."""
    body = factories.remittance(("BIG1",))
    body["claims"][0]["adjustments"] = [{"group": "CO", "reason": "45", "amount": "999999999999.00"}] * 2
    remittance = decode(msgspec.json.encode(body), Remittance)
    claim = next(f for f in check_balancing(remittance) if f.level == "claim")
    assert claim.expected == Decimal("125.50") - Decimal("1999999999998.00")
    assert claim.difference == Decimal("80.00") - claim.expected


def test_a_debit_balances_as_money_taken_back() -> None:
    """BPR03 D: the payer takes money back, so BPR02 counts as negative, whether the remittance came
    in as X12 (where the reader used to apply the sign itself) or as JSON (where it was ignored)."""
    body = factories.remittance(("D1",))
    body["claims"][0] |= {"billed": "0.00", "paid": "0.00", "adjustments": [], "service_lines": []}
    body["provider_adjustments"] = [{"reason": "WO", "amount": "35.00"}]  # 0.00 - 35.00 = -35.00
    body["payment"] |= {"amount": "35.00", "credit_debit": "D"}
    assert check_balancing(decode(msgspec.json.encode(body), Remittance)) == []
    body["payment"]["credit_debit"] = "C"
    (finding,) = check_balancing(decode(msgspec.json.encode(body), Remittance))
    assert (finding.expected, finding.actual) == (Decimal("-35.00"), Decimal("35.00"))
