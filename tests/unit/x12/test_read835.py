"""835 to canonical remittances: mapping, delimiters, streaming, balancing, problems, 999 answers."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical import Amount, Money, Quantity, encode
from canonical.v1 import (
    Adjustment,
    BalancingFinding,
    ClaimPayment,
    Party,
    Payment,
    PersonName,
    ProviderAdjustment,
    Remittance,
    ServicePayment,
    check_balancing,
)
from connectors.clearinghouse.x12._ack import acknowledge
from connectors.clearinghouse.x12._envelope import GroupEnd
from connectors.clearinghouse.x12._model import X12Error
from connectors.clearinghouse.x12._read835 import (
    Read835,
    RemittanceHeader,
    RemittanceTrailer,
    iter_835,
    read_835,
)
from connectors.clearinghouse.x12._read999 import read_999
from connectors.clearinghouse.x12._values import ReadError, money
from connectors.clearinghouse.x12._write999 import write_999
from connectors.clearinghouse.x12._writer import ControlNumbers, Envelope

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"
FULL = (FIXTURES / "835_full.x12").read_text()


def one(text: str, **kwargs: int) -> Read835:
    (read,) = read_835(text.encode(), **kwargs)
    return read


def redelimit(text: str, element: str, repetition: str, component: str, terminator: str) -> str:
    """The fixture with other delimiters (its data holds none of the old or new ones)."""
    table = str.maketrans({"*": element, "^": repetition, ":": component, "~": terminator})
    return text.replace("~\n", "~").translate(table)


def test_full_remittance_maps_every_part() -> None:
    read = one(FULL)
    assert (read.issues, read.warnings, read.findings) == ([], [], [])
    remittance = read.remittance
    assert remittance is not None
    assert remittance.payer == Party(name="ACME HEALTH PLAN", identifier="ACME01", identifier_qualifier="2U")
    assert remittance.payee == Party(
        name="RIVERSIDE FAMILY PRACTICE", identifier="1234567893", identifier_qualifier="XX"
    )
    assert remittance.payment == Payment(
        method="ACH", credit_debit="C", amount=Amount("295.00"), date=date(2024, 3, 29), trace_number="TRACE-0001"
    )
    assert [c.claim_id for c in remittance.claims] == ["CLM-1001", "CLM-0999", "CLM-1002", "CLM-1003"]
    assert remittance.provider_adjustments == [
        ProviderAdjustment(reason="L6", reference="INT01", amount=Money("-5.00")),
        ProviderAdjustment(reason="WO", reference="OVP-77", amount=Money("30.00")),
        ProviderAdjustment(reason="FB", reference="FB1", amount=Money("1.00")),
        ProviderAdjustment(reason="CS", reference=None, amount=Money("2.00")),
        ProviderAdjustment(reason="72", reference="AP1", amount=Money("3.00")),
        ProviderAdjustment(reason="90", reference=None, amount=Money("4.00")),
    ]
    assert read.envelope.control_number == "0001"
    assert read.envelope.interchange_control_number == "000000501"
    assert read.envelope.group_control_number == "501"
    assert read.envelope.version == "005010X221A1"


def test_claim_with_lines_remarks_and_dates() -> None:
    remittance = one(FULL).remittance
    assert remittance is not None
    assert remittance.claims[0] == ClaimPayment(
        claim_id="CLM-1001",
        status_code="1",
        billed=Money("500.00"),
        paid=Money("310.00"),
        patient_responsibility=Money("90.00"),
        payer_claim_number="PAYER-1001",
        patient_name=PersonName(family="DOE", given="JANE", middle="Q"),
        remark_codes=["MA01", "N130"],
        service_lines=[
            ServicePayment(
                procedure="99213",
                modifiers=["25"],
                charge=Money("300.00"),
                paid=Money("200.00"),
                units=Quantity("1"),
                service_date=date(2024, 3, 1),
                control_number="LINE1",
                adjustments=[
                    Adjustment(group="CO", reason="45", amount=Money("60.00")),
                    Adjustment(group="PR", reason="2", amount=Money("40.00")),
                ],
                remark_codes=["N130"],
            ),
            ServicePayment(
                procedure="87880",
                charge=Money("200.00"),
                paid=Money("110.00"),
                units=Quantity("2"),
                service_date=date(2024, 3, 1),  # DTM*150, the start of the period
                control_number="LINE2",
                adjustments=[
                    Adjustment(group="CO", reason="45", amount=Money("40.00")),
                    Adjustment(group="PR", reason="1", amount=Money("50.00")),
                ],
                remark_codes=["M15"],
            ),
        ],
    )


def test_reversal_denial_six_triplets_and_payer_number_fallback() -> None:
    remittance = one(FULL).remittance
    assert remittance is not None
    reversal, denial, secondary = remittance.claims[1:]
    assert (reversal.status_code, reversal.billed, reversal.paid) == ("22", Money("-120.00"), Money("-80.00"))
    assert reversal.adjustments == [Adjustment(group="CO", reason="45", amount=Money("-40.00"))]
    assert reversal.patient_name == PersonName(family="ROE", given="RICHARD")
    assert (denial.status_code, denial.paid, denial.remark_codes) == ("4", Money("0.00"), ["MA130"])
    assert denial.patient_name == PersonName(family="POE", given="EDGAR", middle="A", suffix="JR")
    assert [(a.reason, a.amount, a.quantity) for a in denial.adjustments] == [
        ("45", Money("50.00"), Quantity("1")),
        ("97", Money("30.00"), None),
        ("B7", Money("20.00"), Quantity("2")),
        ("16", Money("10.00"), None),
        ("18", Money("40.00"), Quantity("1")),
        ("29", Money("100.00"), None),
    ]
    assert secondary.payer_claim_number == "PAYER-1003"  # CLP07 empty: the first REF*1K/F8
    assert secondary.service_lines[0].units is None


DELIMITER_VARIANTS = [
    ("|", "^", ">", "~"),
    ("^", "!", ">", "~"),
    ("*", "^", ":", "\n"),
    ("!", "^", "\\", "'"),
]


@pytest.mark.parametrize(("element", "repetition", "component", "terminator"), DELIMITER_VARIANTS)
def test_any_declared_delimiters_give_the_same_remittance(
    element: str, repetition: str, component: str, terminator: str
) -> None:
    text = redelimit(FULL, element, repetition, component, terminator)
    assert (text[3], text[104], text[105]) == (element, component, terminator)
    assert one(text).remittance == one(FULL).remittance


@pytest.mark.parametrize("chunk_size", [106, 107, 250, 4096])
def test_bom_crlf_and_chunk_size_change_nothing(chunk_size: int) -> None:
    text = "\ufeff\r\n" + FULL.replace("~\n", "~\r\n\r\n  ")
    assert one(text, chunk_size=chunk_size).remittance == one(FULL).remittance


def test_several_interchanges_groups_and_sets() -> None:
    second = FULL.replace("ST*835*0001", "ST*835*0002").replace("SE*61*0001", "SE*61*0002")
    first_group = FULL[: FULL.index("GE*")]
    set_two = second[second.index("ST*835") : second.index("GE*")]
    two_sets = first_group + set_two + "GE*2*501~\nIEA*1*000000501~\n"
    reads = read_835((two_sets + FULL.replace("000000501", "000000502")).encode())
    assert [(r.envelope.interchange_control_number, r.envelope.control_number) for r in reads] == [
        ("000000501", "0001"),
        ("000000501", "0002"),
        ("000000502", "0001"),
    ]
    assert all(r.remittance == reads[0].remittance and r.accepted for r in reads)


def test_stream_yields_header_claims_trailer_and_group_end() -> None:
    events = list(iter_835(FULL.encode()))
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["RemittanceHeader"] + ["ClaimPayment"] * 4 + ["RemittanceTrailer", "GroupEnd"]
    header, trailer = events[0], events[5]
    assert isinstance(header, RemittanceHeader)
    assert header.payment is not None
    assert header.payment.amount == Money("295.00")
    assert isinstance(trailer, RemittanceTrailer)
    assert (trailer.claim_count, trailer.total_billed, trailer.total_paid) == (4, Money("730.00"), Money("330.00"))
    assert (trailer.total_provider_adjustments, trailer.payment_amount) == (Money("35.00"), Money("295.00"))
    assert trailer.segment_count == 61


class CountingReader:
    """A binary stream that remembers how much has been read from it."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        block = self.data.read(size)
        self.consumed += len(block)
        return block


def big_835(claims: int) -> bytes:
    """The fixture's first claim repeated with distinct ids; counts and BPR02 kept right."""
    start, end = FULL.index("CLP*CLM-1001"), FULL.index("CLP*CLM-0999")
    block = FULL[start:end]
    body = "".join(block.replace("CLM-1001", f"CLM-{n:06d}") for n in range(claims))
    head = FULL[: FULL.index("LX*1")].replace("BPR*I*295.00", f"BPR*I*{310 * claims}.00")
    segments = head.count("~") - 2 + 1 + body.count("~") + 1
    tail = f"LX*1~\n{body}SE*{segments}*0001~\nGE*1*501~\nIEA*1*000000501~\n"
    return (head + tail).encode()


def test_claims_arrive_before_the_input_is_read_to_the_end() -> None:
    data = big_835(2000)
    stream = CountingReader(data)
    events = iter_835(stream, chunk_size=16384)
    first_claim = next(event for event in events if isinstance(event, ClaimPayment))
    assert first_claim.claim_id == "CLM-000000"
    assert stream.consumed <= 2 * 16384 < len(data) / 10
    trailer = next(event for event in events if isinstance(event, RemittanceTrailer))
    assert (trailer.claim_count, trailer.issues, trailer.findings) == (2000, [], [])
    assert stream.consumed == len(data)


def test_streaming_findings_equal_check_balancing() -> None:
    text = (
        FULL.replace("SVC*HC:99213:25*300.00*200.00", "SVC*HC:99213:25*300.00*199.99")
        .replace("CLP*CLM-1001*1*500.00*310.00", "CLP*CLM-1001*1*500.00*315.00")
        .replace("CAS*CO*45*50.00*1*97*30.00", "CAS*CO*45*50.00*1*97*31.00")
    )
    read = one(text)
    assert read.remittance is not None
    expected = [
        BalancingFinding(
            level="service_line",
            claim_id="CLM-1001",
            line=1,
            rule="SVC02 - sum(CAS) = SVC03",
            expected=Money("200.00"),
            actual=Money("199.99"),
            difference=Money("-0.01"),
        ),
        BalancingFinding(
            level="claim",
            claim_id="CLM-1001",
            rule="CLP03 - sum(claim and line CAS) = CLP04",
            expected=Money("310.00"),
            actual=Money("315.00"),
            difference=Money("5.00"),
        ),
        BalancingFinding(
            level="claim",
            claim_id="CLM-1002",
            rule="CLP03 - sum(claim and line CAS) = CLP04",
            expected=Money("-1.00"),
            actual=Money("0.00"),
            difference=Money("1.00"),
        ),
        BalancingFinding(
            level="transaction",
            rule="sum(CLP04) - sum(PLB) = BPR02",
            expected=Money("300.00"),
            actual=Money("295.00"),
            difference=Money("-5.00"),
        ),
    ]
    assert read.findings == expected
    assert check_balancing(read.remittance) == expected
    trailer = next(e for e in iter_835(text.encode()) if isinstance(e, RemittanceTrailer))
    assert trailer.findings == expected
    assert read.issues == []  # findings are reported, never raised or rejected


def test_negative_bpr02_is_a_debit_and_balances_signed() -> None:
    text = FULL.replace("BPR*I*295.00*C", "BPR*H*-35.00*C").replace(
        "CLP*CLM-1001*1*500.00*310.00*90.00", "CLP*CLM-1001*1*500.00*-20.00*90.00"
    )
    text = text.replace("CAS*CO*45*60.00~", "CAS*CO*45*60.00~\nCAS*OA*23*330.00~").replace("SE*61", "SE*62")
    read = one(text)
    assert read.remittance is not None
    assert (read.remittance.payment.amount, read.remittance.payment.credit_debit) == (Money("35.00"), "D")
    assert [f.level for f in read.findings] == ["service_line"]
    assert read.findings[0].difference == Money("330.00")


def test_unreadable_bpr16_falls_back_to_the_production_date_with_a_warning() -> None:
    read = one(FULL.replace("DA*98765*20240329", "DA*98765*20241329"))
    assert read.remittance is not None
    assert read.remittance.payment.date == date(2024, 3, 28)
    (warning,) = read.warnings
    assert (warning.segment_id, warning.position, warning.element, warning.code) == ("BPR", 4, 16, "8")
    assert read.issues == []


@pytest.mark.parametrize(
    ("old", "new", "segment_id", "position", "element", "code"),
    [
        ("CLP*CLM-1001*1*500.00*310.00", "CLP*CLM-1001*1*500.00*31O.00", "CLP", 21, 4, "6"),
        ("CLP*CLM-1001*1*", "CLP*CLM-1001*9*", "CLP", 21, 2, "7"),
        ("CAS*CO*45*60.00", "CAS*XX*45*60.00", "CAS", 32, 1, "7"),
        ("CAS*CO*45*60.00", "CAS*CO*4500*60.00", "CAS", 32, 2, "7"),
        ("CAS*CO*45*60.00", "CAS*CO*45*60.001", "CAS", 32, 3, "6"),
        ("CAS*CO*45*60.00", "CAS*CO*45", "CAS", 32, 3, "1"),
        ("SVC*HC:99213:25*", "SVC*HC:99213:2*", "SVC", 30, 1, "6"),
        ("DTM*472*20240301", "DTM*472*20240231", "DTM", 31, 2, "8"),
        ("LQ*HE*N130", "LQ*HE*X130", "LQ", 36, 2, "7"),
        ("REF*6R*LINE1", "ZZZ*6R*LINE1", "ZZZ", 34, None, "6"),
    ],
)
def test_a_bad_element_rejects_the_set_and_names_its_place(
    old: str, new: str, segment_id: str, position: int, element: int | None, code: str
) -> None:
    read = one(FULL.replace(old, new, 1))
    assert read.remittance is None
    (issue,) = read.issues
    assert (issue.segment_id, issue.position, issue.element, issue.code) == (segment_id, position, element, code)
    assert issue.control_number == "0001"
    assert "CLM-1001" not in issue.message  # locations, never values


def test_a_claim_in_error_is_not_streamed_but_its_neighbours_are() -> None:
    events = list(iter_835(FULL.replace("CLP*CLM-1001*1*500.00*310.00", "CLP*CLM-1001*1*500.00*x").encode()))
    claims = [e.claim_id for e in events if isinstance(e, ClaimPayment)]
    assert claims == ["CLM-0999", "CLM-1002", "CLM-1003"]
    trailer = next(e for e in events if isinstance(e, RemittanceTrailer))
    assert [(i.segment_id, i.element) for i in trailer.issues] == [("CLP", 4)]


def test_missing_header_segments_are_reported() -> None:
    text = FULL.replace("TRN*1*TRACE-0001*1512345678~\n", "").replace("N1*PE*", "N1*ZZ*").replace("SE*61", "SE*60")
    read = one(text)
    assert read.remittance is None
    assert [(i.segment_id, i.code) for i in read.issues] == [("TRN", "3"), ("N1", "3")]
    assert {i.position for i in read.issues} == {17}  # where the header ended (LX*1)


def test_segments_out_of_order() -> None:
    text = FULL.replace("TS2*100.00*50.00~", "TS2*100.00*50.00~\nCAS*CO*45*1.00~\nBPR*I*1*C*ACH~")
    text = text.replace("~\nSE*61", "~\nCLP*LATE*1*1*1~\nSVC*HC:99213*1*1~\nSE*65")
    read = one(text)
    assert [(i.segment_id, i.position, i.code) for i in read.issues] == [
        ("CAS", 21, "7"),
        ("BPR", 22, "2"),
        ("CLP", 65, "7"),
        ("SVC", 66, "7"),
    ]
    assert read.remittance is None


def test_an_837_given_to_the_835_reader_names_the_st() -> None:
    text = FULL.replace("ST*835*0001*005010X221A1", "ST*837*0001*005010X222A1")
    with pytest.raises(X12Error, match="not an 835") as caught:
        read_835(text.encode())
    assert (caught.value.issue.segment_id, caught.value.issue.position, caught.value.issue.element) == ("ST", 3, 1)


def test_another_guide_version_is_an_issue() -> None:
    read = one(FULL.replace("*005010X221A1~\nBPR", "*004010X091A1~\nBPR"))
    assert [(i.segment_id, i.element, i.code) for i in read.issues] == [("ST", 3, "7")]


def test_envelope_issues_reject_the_set() -> None:
    read = one(FULL.replace("SE*61*0001", "SE*60*0001"))
    assert read.remittance is None
    assert [(i.segment_id, i.code, i.position) for i in read.issues] == [("SE", "4", 63)]


# -- acknowledgements --------------------------------------------------------------------------


def test_an_accepted_835_is_acknowledged_and_the_999_reads_back() -> None:
    (ack,) = acknowledge(read_835(FULL.encode()))
    assert (ack.functional_id, ack.group_control_number, ack.version, ack.status) == ("HP", "501", "005010X221A1", "A")
    assert [(s.control_number, s.status, s.issues) for s in ack.sets] == [("0001", "A", [])]
    written = write_999(
        [ack], envelope=Envelope(sender_id="HUB", receiver_id="ACME"), control=ControlNumbers(interchange=7, group=7)
    )
    assert read_999(written.data) == [msgspec.structs.replace(ack, received=1, included=1, accepted_count=1)]


def test_problems_become_a_rejecting_999_with_positions_in_the_set() -> None:
    bad = FULL.replace("CAS*CO*45*60.00", "CAS*CO*45*60.001").replace("ST*835*0001", "ST*835*0002")
    bad = bad.replace("SE*61*0001", "SE*61*0002")
    warned = FULL.replace("NM1*QC*1*ROE*RICHARD", "NM1*QC*1*ROE")
    group = FULL[: FULL.index("GE*")] + bad[bad.index("ST*835") : bad.index("GE*")]
    group += warned[warned.index("ST*835") : warned.index("GE*")].replace("0001", "0003")
    text = group + "GE*3*501~\nIEA*1*000000501~\n"
    reads = read_835(text.encode())
    (ack,) = acknowledge(reads)
    assert [s.status for s in ack.sets] == ["A", "R", "E"]
    assert (ack.status, ack.accepted_count, ack.received) == ("P", 2, 3)
    (issue,) = ack.sets[1].issues
    assert (issue.segment_id, issue.position, issue.element, issue.code) == ("CAS", 30, 3, "6")
    (warning,) = ack.sets[2].issues
    assert (warning.segment_id, warning.position, warning.element) == ("NM1", 44, 4)
    written = write_999(
        [ack], envelope=Envelope(sender_id="HUB", receiver_id="ACME"), control=ControlNumbers(interchange=8, group=8)
    )
    assert read_999(written.data)[0].sets[1].issues[0].position == 30


def test_group_errors_reject_every_set() -> None:
    events = list(iter_835(FULL.replace("GE*1*501", "GE*1*502").encode()))
    items = [e for e in events if isinstance(e, (RemittanceTrailer, GroupEnd))]
    (ack,) = acknowledge(items)
    assert (ack.status, ack.group_errors, [s.status for s in ack.sets]) == ("R", ["4"], ["R"])


def test_decimal_values_are_decimal_not_float() -> None:
    remittance = one(FULL).remittance
    assert remittance is not None
    values = [remittance.payment.amount, *(c.paid for c in remittance.claims)]
    assert all(isinstance(v, Decimal) and not isinstance(v, float) for v in values)
    assert str(remittance.claims[2].paid) == "0.00"


# -- property: any canonical remittance, written as an 835 by a tiny test-side writer, reads back ----

cents = st.integers(min_value=-500_000, max_value=500_000).map(lambda c: Money(Decimal(c) / 100))
quantities = st.none() | st.integers(min_value=0, max_value=99_999).map(lambda q: Quantity(Decimal(q) / 10))
text = st.from_regex(r"[A-Z][A-Z0-9 ]{0,20}[A-Z0-9]", fullmatch=True)
name_parts = st.from_regex(r"[A-Z][A-Z'-]{0,15}", fullmatch=True)
adjustments = st.builds(
    Adjustment,
    group=st.sampled_from(["CO", "PR", "OA", "PI"]),
    reason=st.sampled_from(["1", "2", "3", "45", "97", "B7", "16", "253", "P12"]),
    amount=cents,
    quantity=quantities,
)
remarks = st.lists(st.sampled_from(["N130", "M15", "MA01", "N381", "MA130"]), max_size=5)
service_payments = st.builds(
    ServicePayment,
    qualifier=st.sampled_from(["HC", "AD", "NU"]),
    procedure=st.from_regex(r"[A-Z0-9]{5}", fullmatch=True),
    modifiers=st.lists(st.sampled_from(["25", "59", "LT", "RT", "GT"]), max_size=4),
    charge=cents,
    paid=cents,
    units=quantities,
    service_date=st.none() | st.dates(min_value=date(2020, 1, 1), max_value=date(2025, 12, 31)),
    control_number=st.none() | st.from_regex(r"[A-Z0-9]{1,30}", fullmatch=True),
    adjustments=st.lists(adjustments, max_size=3),
    remark_codes=st.lists(st.sampled_from(["N130", "M15"]), max_size=2),
)
claim_payments = st.builds(
    ClaimPayment,
    claim_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    status_code=st.sampled_from(["1", "2", "3", "4", "19", "20", "21", "22", "23", "25"]),
    billed=cents,
    paid=cents,
    patient_responsibility=st.none() | cents,
    payer_claim_number=st.none() | st.from_regex(r"[A-Z0-9-]{1,30}", fullmatch=True),
    patient_name=st.none()
    | st.builds(
        PersonName,
        family=name_parts,
        given=name_parts,
        middle=st.none() | name_parts,
        suffix=st.none() | st.sampled_from(["JR", "SR", "III"]),
    ),
    adjustments=st.lists(adjustments, max_size=4),
    service_lines=st.lists(service_payments, max_size=4),
    remark_codes=remarks,
)
parties = st.builds(Party, name=text) | st.builds(
    Party, name=text, identifier=st.from_regex(r"[0-9]{5,10}", fullmatch=True), identifier_qualifier=st.just("XV")
)
remittances = st.builds(
    Remittance,
    payer=parties,
    payee=parties,
    payment=st.builds(
        Payment,
        method=st.sampled_from(["ACH", "CHK", "BOP", "FWT", "NON"]),
        credit_debit=st.just("C"),
        amount=st.integers(min_value=0, max_value=10_000_000).map(lambda c: Amount(Decimal(c) / 100)),
        date=st.dates(min_value=date(2020, 1, 1), max_value=date(2025, 12, 31)),
        trace_number=st.from_regex(r"[A-Z0-9]{1,30}", fullmatch=True),
    ),
    claims=st.lists(claim_payments, min_size=1, max_size=5),
    provider_adjustments=st.lists(
        st.builds(
            ProviderAdjustment,
            reason=st.sampled_from(["L6", "WO", "FB", "CS", "72", "90"]),
            reference=st.none() | st.from_regex(r"[A-Z0-9-]{1,20}", fullmatch=True),
            amount=cents,
        ),
        max_size=8,
    ),
)


def write_835(remittance: Remittance) -> str:
    """A minimal 835 writer for the property test (the hub itself never writes 835s)."""

    def party(entity: str, found: Party) -> str:
        if found.identifier is None:
            return f"N1*{entity}*{found.name}"
        return f"N1*{entity}*{found.name}*{found.identifier_qualifier}*{found.identifier}"

    def cas(adjustment: Adjustment) -> str:
        quantity = "" if adjustment.quantity is None else f"*{adjustment.quantity}"
        return f"CAS*{adjustment.group}*{adjustment.reason}*{adjustment.amount}{quantity}"

    payment = remittance.payment
    body = [
        f"BPR*I*{payment.amount}*C*{payment.method}************{payment.date:%Y%m%d}",
        f"TRN*1*{payment.trace_number}*1512345678",
        party("PR", remittance.payer),
        party("PE", remittance.payee),
        "LX*1",
    ]
    for claim in remittance.claims:
        responsibility = "" if claim.patient_responsibility is None else claim.patient_responsibility
        body.append(
            f"CLP*{claim.claim_id}*{claim.status_code}*{claim.billed}*{claim.paid}*{responsibility}*12*"
            + (claim.payer_claim_number or "")
        )
        body += [cas(a) for a in claim.adjustments]
        if claim.patient_name is not None:
            name = claim.patient_name
            body.append(f"NM1*QC*1*{name.family}*{name.given}*{name.middle or ''}**{name.suffix or ''}")
        if claim.remark_codes:
            body.append("MOA**" + "".join(f"*{code}" for code in claim.remark_codes))
        for line in claim.service_lines:
            units = "" if line.units is None else f"**{line.units}"
            procedure = ":".join([line.qualifier, line.procedure, *line.modifiers])
            body.append(f"SVC*{procedure}*{line.charge}*{line.paid}{units}")
            if line.service_date is not None:
                body.append(f"DTM*472*{line.service_date:%Y%m%d}")
            body += [cas(a) for a in line.adjustments]
            if line.control_number is not None:
                body.append(f"REF*6R*{line.control_number}")
            body += [f"LQ*HE*{code}" for code in line.remark_codes]
    plbs = remittance.provider_adjustments
    for start in range(0, len(plbs), 6):
        pairs = "".join(
            f"*{p.reason}{':' + p.reference if p.reference else ''}*{p.amount}" for p in plbs[start : start + 6]
        )
        body.append(f"PLB*1234567893*20251231{pairs}")
    segments = [
        "ISA*00*          *00*          *ZZ*PAYER          *ZZ*HUB            *240101*1200*^*00501*000000001*0*P*:",
        "GS*HP*PAYER*HUB*20240101*1200*1*X*005010X221A1",
        "ST*835*0001*005010X221A1",
        *body,
        f"SE*{len(body) + 2}*0001",
        "GE*1*1",
        "IEA*1*000000001",
    ]
    return "~\n".join(segments) + "~\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(remittance=remittances, chunk_size=st.sampled_from([106, 333, 65536]))
def test_any_remittance_reads_back_with_check_balancing_findings(remittance: Remittance, chunk_size: int) -> None:
    read = one(write_835(remittance), chunk_size=chunk_size)
    assert read.issues == []
    assert read.remittance == remittance
    assert read.findings == check_balancing(remittance)
    trailer = next(e for e in iter_835(write_835(remittance).encode()) if isinstance(e, RemittanceTrailer))
    assert trailer.findings == read.findings
    assert trailer.total_paid == sum((c.paid for c in remittance.claims), Decimal(0))


@settings(max_examples=400, deadline=None)
@given(
    st.from_regex(r"-?[0-9]{0,14}(\.[0-9]{0,3})?", fullmatch=True)
    | st.sampled_from(["", "-", ".", "1e5", " 1.00", "1_0.00", "NaN", "+5", "\u0662", "--1.00", "1.2.3"])
)
def test_the_amount_fast_path_is_money_or_a_located_error(text: str) -> None:
    try:
        expected: Money | None = Money(text)
    except (ValueError, TypeError):
        expected = None
    x12_decimal = text.lstrip("-").replace(".", "", 1)
    plain = x12_decimal.isdigit() and x12_decimal.isascii() and text.count("-") <= 1
    if expected is not None and plain:
        found = money(text, 4)
        assert (type(found), str(found)) == (Money, str(expected))
    else:  # not money, or money Decimal would take but X12 decimal text is not (1e5, " 1.00", +5)
        with pytest.raises(ReadError) as caught:
            money(text, 4)
        assert (caught.value.element, caught.value.code) == (4, "6")


def test_a_file_cut_inside_a_claim_streams_what_was_whole_then_refuses() -> None:
    cut = FULL[: FULL.index("CLP*CLM-1002")] + "CLP*CLM-1002*4*250.00*0"
    events = iter_835(cut.encode())
    claims = [next(e for e in events if isinstance(e, ClaimPayment)).claim_id for _ in range(2)]
    assert claims == ["CLM-1001", "CLM-0999"]
    with pytest.raises(X12Error, match="truncated") as caught:
        list(events)  # CLM-1002 never closed: it is not yielded
    assert (caught.value.issue.segment_id, caught.value.issue.position) == ("SE", 49)
    with pytest.raises(X12Error):
        read_835(cut.encode())


def test_quantities_may_suppress_the_leading_zero() -> None:
    # X12 R values may omit the leading zero, as money() already allows: ".5" is half a unit.
    text = FULL.replace("SVC*HC:99213:25*300.00*200.00**1~", "SVC*HC:99213:25*300.00*200.00**.5~")
    text = text.replace("CAS*PR*2*40.00~", "CAS*PR*2*40.00*-.25~")
    read = one(text)
    assert [(i.segment_id, i.element, i.message) for i in read.issues] == []
    assert read.remittance is not None
    line = read.remittance.claims[0].service_lines[0]
    assert (str(line.units), str(line.adjustments[1].quantity)) == ("0.5", "-0.25")  # canonical JSON form


@pytest.mark.parametrize("zero", ["-0", "-00", "-0.0", "-0.00", "-.00"])
def test_a_negative_zero_amount_is_read_as_zero(zero: str) -> None:
    read = one(FULL.replace("CAS*CO*45*-40.00~", f"CAS*CO*45*{zero}~"))
    assert read.remittance is not None
    (adjustment,) = read.remittance.claims[1].adjustments
    assert b'"amount":"0.00"' in encode(adjustment)  # never "-0.00" in the API's JSON
    assert not adjustment.amount.is_signed()


@pytest.mark.parametrize(
    ("old", "new", "position", "element", "component", "code"),
    [
        ("SVC*HC:99213:25*", "SVC*HC:99213::25*", 30, 1, 3, "1"),  # modifier 2 without modifier 1
        ("SVC*HC:99213:25*", "SVC*HC:99213:25::59*", 30, 1, 4, "1"),
        ("SVC*HC:99213:25*", "SVC*HC:99213:25:59:XE:GT:DESC:ID:MORE*", 30, 1, 9, "13"),  # C003 has 8
        ("**2*HC:87881~", "**2*HC:87881::25~", 37, 6, 3, "1"),  # SVC06 is a C003 as well
    ],
)
def test_procedure_modifiers_keep_their_positions_and_c003_its_eight_components(
    old: str, new: str, position: int, element: int, component: int, code: str
) -> None:
    read = one(FULL.replace(old, new, 1))
    assert read.remittance is None
    (issue,) = read.issues
    assert (issue.segment_id, issue.position, issue.element, issue.component, issue.code) == (
        "SVC", position, element, component, code,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("composite", "modifiers"),
    [
        ("HC:99213:25:59:XE:GT:DESC:ID", ["25", "59", "XE", "GT"]),  # 7 description, 8 product/service id
        ("HC:99213:25:::", ["25"]),  # empty trailing components move nothing
        ("HC:99213:::::DESC", []),
    ],
)
def test_a_full_c003_and_trailing_empty_modifiers_are_read(composite: str, modifiers: list[str]) -> None:
    read = one(FULL.replace("SVC*HC:99213:25*", f"SVC*{composite}*", 1))
    assert read.remittance is not None
    assert read.remittance.claims[0].service_lines[0].modifiers == modifiers


@pytest.mark.parametrize("cas", ["CAS*CR*45*60.00", "CAS*CR*45*30.00**45*30.00"])
def test_cas_group_cr_dropped_in_5010_is_refused(cas: str) -> None:
    read = one(FULL.replace("CAS*CO*45*60.00", cas, 1))
    assert read.remittance is None
    (issue,) = read.issues
    assert (issue.segment_id, issue.position, issue.element, issue.code) == ("CAS", 32, 1, "7")


@pytest.mark.parametrize("claim_id", ["001/18573", "001 18573", "#001-18573"])
def test_a_clp01_is_any_printable_text_and_is_kept_as_sent(claim_id: str) -> None:
    """CLP01 echoes the patient control number the provider sent, not only a claim the hub sent:
    such a claim is money received all the same (it rejected the whole payment before)."""
    read = one(FULL.replace("CLP*CLM-1001*", f"CLP*{claim_id}*", 1))
    assert [(i.segment_id, i.element, i.message) for i in read.issues] == []
    assert read.remittance is not None
    assert claim_id in [c.claim_id for c in read.remittance.claims]


@pytest.mark.parametrize("clp01", ["", " LEADING", "X" * 39, "CTRL\x07"])
def test_a_clp01_that_is_no_patient_control_number_rejects_the_set(clp01: str) -> None:
    read = one(FULL.replace("CLP*CLM-1001*", f"CLP*{clp01}*", 1))
    assert read.remittance is None
    assert [(i.segment_id, i.element) for i in read.issues] == [("CLP", 1)]


@pytest.mark.parametrize(
    ("old", "new", "segment_id"),
    [
        ("N1*PR*ACME HEALTH PLAN~", "N1*PR*   ~", "N1"),
        ("N1*PR*ACME HEALTH PLAN~", "N1*PR*ACME\tHEALTH~", "N1"),
        ("NM1*QC*1*DOE*JANE*", "NM1*QC*1*   *JANE*", "NM1"),
        ("NM1*QC*1*DOE*JANE*", "NM1*QC*1*DOE*JA\tNE*", "NM1"),
    ],
)
def test_a_name_the_canonical_model_would_refuse_rejects_its_set(old: str, new: str, segment_id: str) -> None:
    """The reader builds its Structs directly, which msgspec does not hold to their patterns: a blank
    name, or one with a control character, was accepted here and then failed to decode on every read."""
    read = one(FULL.replace(old, new, 1))
    assert read.remittance is None
    assert [i.segment_id for i in read.issues] == [segment_id]
    assert "blank or holds a control character" in read.issues[0].message
