"""277 (X212) and 277CA (X214) to canonical ClaimStatus values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest
from factories import CONTROL, CREATED, ENVELOPE, RECEIVER, SUBMITTER, sample_claim, sample_inquiry, sample_status

from canonical import Money
from canonical.v1 import ClaimStatus
from connectors.clearinghouse.x12._ack import acknowledge
from connectors.clearinghouse.x12._model import Delimiters, X12Error
from connectors.clearinghouse.x12._read277 import Read277, read_277
from connectors.clearinghouse.x12._write277 import write_277, write_277ca

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"
STATUS_277 = (FIXTURES / "277_status.x12").read_text()
ACK_277CA = (FIXTURES / "277ca_mixed.x12").read_text()
replace = msgspec.structs.replace


def one(text: str) -> Read277:
    (read,) = read_277(text.encode())
    return read


def test_277_claim_loops_with_every_status_composite() -> None:
    read = one(STATUS_277)
    assert (read.source, read.issues, read.warnings) == ("277", [], [])
    first = ClaimStatus(
        claim_id="PCN-0001",  # REF*EJ, not the TRN02 trace number
        category_code="F1",
        status_code="65",
        payer_claim_number="PYR555",
        billed_amount=Money("165.50"),
        paid_amount=Money("120.00"),
        effective_date=date(2024, 4, 3),
        source="277",
    )
    assert read.statuses == [
        first,
        replace(first, status_code="3", entity_code="QC"),  # STC10
        replace(first, status_code="107"),  # STC11
        ClaimStatus(
            claim_id="PCN-0002",
            category_code="P1",
            status_code="20",
            entity_code="PR",
            billed_amount=Money("40.50"),
            effective_date=date(2024, 4, 2),
            source="277",
        ),
    ]  # the service line's STC after SVC is not a claim status
    assert read.trace_numbers == ["TRACE-0001", "TRACE-0001", "TRACE-0001", "TRACE-0002"]


def test_277ca_claim_level_statuses_only() -> None:
    read = one(ACK_277CA)
    assert read.source == "277CA"
    assert [(s.claim_id, s.category_code, s.status_code, s.entity_code) for s in read.statuses] == [
        ("PCN-0001", "A2", "20", None),
        ("PCN-0002", "A7", "562", "85"),
        ("PCN-0002", "A7", "21", "IL"),
    ]  # the receiver's and the provider's A1:19 summaries are not claims
    assert read.statuses[0].payer_claim_number == "CH-0001"
    assert read.statuses[1].billed_amount == Money("200.00")
    assert {s.source for s in read.statuses} == {"277CA"}
    assert {s.effective_date for s in read.statuses} == {date(2024, 3, 6)}


def test_the_277_writer_output_reads_back() -> None:
    status = sample_status()
    written = write_277(
        [(sample_inquiry(), status), (sample_inquiry(dependent=True), replace(status, category_code="F2"))],
        receiver=SUBMITTER,
        envelope=ENVELOPE.reply(),
        control=CONTROL,
        created=CREATED,
        delimiters=Delimiters(element="|", repetition="^", component=">", segment="\n"),
    )
    reads = read_277(written.data)
    assert [r.statuses for r in reads] == [[status], [replace(status, category_code="F2")]]
    assert [r.trace_numbers for r in reads] == [["TRACE-0001"], ["TRACE-0001"]]


def test_the_277ca_writer_output_reads_back() -> None:
    accepted = replace(sample_status(source="277CA"), paid_amount=None)
    rejected = replace(accepted, claim_id="PCN-0002", category_code="A7", status_code="562", entity_code="85")
    written = write_277ca(
        [(sample_claim(), accepted), (sample_claim(dependent=True, claim_id="PCN-0002"), rejected)],
        source=RECEIVER,
        receiver=SUBMITTER,
        batch_reference="BATCH-1",
        received=date(2024, 3, 5),
        envelope=ENVELOPE.reply(),
        control=CONTROL,
        created=CREATED,
    )
    (read,) = read_277(written.data)
    assert read.statuses == [accepted, rejected]
    assert read.trace_numbers == ["PCN-0001", "PCN-0002"]


def test_every_category_the_canonical_model_knows_is_read() -> None:
    read = one(STATUS_277.replace("STC*P1:20:PR", "STC*D0:35:PR"))  # D0: data search unsuccessful
    assert [(i.segment_id, i.element, i.message) for i in read.issues] == []
    assert [(s.claim_id, s.category_code, s.status_code) for s in read.statuses][3:] == [("PCN-0002", "D0", "35")]


def test_a_status_the_canonical_model_cannot_hold_is_an_issue() -> None:
    read = one(STATUS_277.replace("STC*P1:20:PR", "STC*X0:20:PR"))  # X0: supplemental, retired in 2003
    assert [s.claim_id for s in read.statuses] == ["PCN-0001"] * 3
    (issue,) = read.issues
    assert (issue.segment_id, issue.position, issue.element, issue.component, issue.code) == ("STC", 23, 1, 1, "7")


def test_missing_effective_date_and_bad_amount() -> None:
    read = one(STATUS_277.replace("STC*P1:20:PR*20240402**40.50", "STC*P1:20:PR***40.5.0"))
    assert [(i.segment_id, i.element, i.code) for i in read.issues] == [("STC", 2, "1")]
    read = one(STATUS_277.replace("STC*P1:20:PR*20240402**40.50", "STC*P1:20:PR*20240402**40.5.0"))
    assert [(i.segment_id, i.element, i.code) for i in read.issues] == [("STC", 4, "6")]


def test_neither_x212_nor_x214_is_an_issue() -> None:
    read = one(STATUS_277.replace("005010X212", "004010X093A1"))
    assert (read.source, read.statuses) == (None, [])
    assert [(i.segment_id, i.element, i.code) for i in read.issues] == [("ST", 3, "7")]


def test_an_835_given_to_the_277_reader() -> None:
    with pytest.raises(X12Error, match="not an 277"):
        read_277((FIXTURES / "835_full.x12").read_bytes())


def test_an_unknown_segment_is_an_issue_with_its_position() -> None:
    read = one(STATUS_277.replace("DTP*472*D8*20240305~\nSVC", "XYZ*1~\nSVC"))
    assert [(i.segment_id, i.position, i.code) for i in read.issues] == [("XYZ", 25, "6")]


def test_acknowledged_as_accepted() -> None:
    (ack,) = acknowledge(read_277(STATUS_277.encode()))
    assert (ack.functional_id, ack.status, [s.status for s in ack.sets]) == ("HN", "A", ["A"])
