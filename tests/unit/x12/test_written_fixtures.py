"""Golden files: what the writers produce for the sample objects, kept under tests/fixtures/x12/.

The files are synthetic (no real people) and are what the readers, the clearinghouse stub and a
human reviewer can open. A writer change that alters them fails here; after checking the diff,
regenerate with ``X12_REGENERATE=1 python -m pytest tests/unit/x12/test_written_fixtures.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path

import msgspec
import pytest
from factories import (
    CONTROL,
    CREATED,
    ENVELOPE,
    RECEIVER,
    SUBMITTER,
    sample_claim,
    sample_inquiry,
    sample_status,
)

from connectors.clearinghouse.x12._model import SegmentIssue, SetAck
from connectors.clearinghouse.x12._write276 import write_276
from connectors.clearinghouse.x12._write277 import write_277, write_277ca
from connectors.clearinghouse.x12._write837 import write_837p
from connectors.clearinghouse.x12._write999 import functional_ack, write_999

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"
REPLY = ENVELOPE.reply()


def _837p() -> str:
    claims = [sample_claim(), sample_claim(dependent=True, claim_id="PCN-0002")]
    return write_837p(
        claims,
        submitter=SUBMITTER,
        receiver=RECEIVER,
        envelope=ENVELOPE,
        control=CONTROL,
        created=CREATED,
        newline=True,
    ).text


def _276() -> str:
    inquiries = [
        sample_inquiry(),
        msgspec.structs.replace(sample_inquiry(dependent=True), claim_id="PCN-0002"),
    ]
    return write_276(
        inquiries, receiver=SUBMITTER, envelope=ENVELOPE, control=CONTROL, created=CREATED, newline=True
    ).text


def _277() -> str:
    return write_277(
        [(sample_inquiry(), sample_status())],
        receiver=SUBMITTER,
        envelope=REPLY,
        control=CONTROL,
        created=CREATED,
        newline=True,
    ).text


def _277ca() -> str:
    first, second = sample_claim(), sample_claim(dependent=True, claim_id="PCN-0002")
    accepted = msgspec.structs.replace(sample_status(source="277CA"), effective_date=date(2024, 3, 5))
    rejected = msgspec.structs.replace(
        sample_status(category="A7", status="562", source="277CA"),
        claim_id="PCN-0002",
        entity_code="85",
        payer_claim_number=None,
        effective_date=date(2024, 3, 5),
    )
    return write_277ca(
        [(first, accepted), (second, rejected)],
        source=RECEIVER,
        receiver=SUBMITTER,
        batch_reference="000000101",
        received=date(2024, 3, 5),
        envelope=REPLY,
        control=CONTROL,
        created=CREATED,
        newline=True,
    ).text


def _999() -> str:
    issues = [
        SegmentIssue(segment_id="DMG", position=17, element=2, code="8", message="invalid date"),
        SegmentIssue(segment_id="NM1", position=9, code="3", message="mandatory segment missing"),
    ]
    sets = [
        SetAck(transaction_code="837", control_number="0001", implementation="005010X222A1", status="A"),
        SetAck(
            transaction_code="837",
            control_number="0002",
            implementation="005010X222A1",
            status="R",
            issues=issues,
        ),
    ]
    ack = functional_ack("HC", "101", "005010X222A1", sets)
    return write_999([ack], envelope=REPLY, control=CONTROL, created=CREATED, newline=True).text


GOLDEN: dict[str, Callable[[], str]] = {
    "written_837p_two_claims.x12": _837p,
    "written_276_two_inquiries.x12": _276,
    "written_277_answer.x12": _277,
    "written_277ca_one_accepted_one_rejected.x12": _277ca,
    "written_999_one_set_rejected.x12": _999,
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_file(name):
    path = FIXTURES / name
    text = GOLDEN[name]()
    if os.environ.get("X12_REGENERATE") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="ascii")
    assert path.read_text(encoding="ascii") == text
