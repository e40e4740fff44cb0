"""276 (X212) claim status inquiries back to StatusInquiry values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest
from factories import CONTROL, CREATED, ENVELOPE, SUBMITTER, sample_inquiry

from canonical import Amount
from canonical.v1 import Payer, PersonName
from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._model import Delimiters, X12Error
from connectors.clearinghouse.x12._read276 import read_276
from connectors.clearinghouse.x12._write276 import write_276

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"
WRITTEN = (FIXTURES / "written_276_two_inquiries.x12").read_text()
replace = msgspec.structs.replace

INQUIRY = """\
ISA*00*          *00*          *ZZ*HUBSENDER      *ZZ*ACMEPAYER      *240305*1430*^*00501*000000276*0*T*:~
GS*HR*HUBSENDER*ACMEPAYER*20240305*1430*276*X*005010X212~
ST*276*0001*005010X212~
BHT*0010*13*TRACE-9*20240305*1430~
HL*1**20*1~
NM1*PR*2*ACME HEALTH PLAN*****PI*60054~
HL*2*1*21*1~
NM1*41*2*BILLING HUB*****46*HUB001~
HL*3*2*19*1~
NM1*1P*2*RIVERSIDE FAMILY PRACTICE*****XX*1234567893~
HL*4*3*22*0~
DMG*D8*19800115*M~
NM1*IL*1*DOE*JOHN****MI*XYZ123456789~
TRN*1*TRACE-9~
REF*1K*PYR555~
REF*EJ*PCN-0009~
AMT*T3*99.5~
DTP*472*D8*20240301~
SVC*HC:99213*99.50*****1~
REF*FJ*LINE1~
DTP*472*D8*20240301~
SE*20*0001~
GE*1*276~
IEA*1*000000276~
"""


def test_a_subscriber_inquiry_maps_every_field() -> None:
    (read,) = read_276(INQUIRY.encode())
    assert (read.issues, read.warnings) == ([], [])
    assert read.inquiries == [
        StatusInquiry(
            claim_id="PCN-0009",
            payer=Payer(payer_id="60054", name="ACME HEALTH PLAN"),
            provider_npi="1234567893",
            provider_name="RIVERSIDE FAMILY PRACTICE",
            subscriber_member_id="XYZ123456789",
            subscriber_name=PersonName(family="DOE", given="JOHN"),
            subscriber_birth_date=date(1980, 1, 15),
            service_date_from=date(2024, 3, 1),
            service_date_to=date(2024, 3, 1),  # D8: one day
            billed_amount=Amount("99.50"),
            payer_claim_number="PYR555",
            trace_number="TRACE-9",
        )
    ]


def test_the_276_writer_output_reads_back() -> None:
    written = write_276(
        [sample_inquiry()],
        receiver=SUBMITTER,
        envelope=ENVELOPE,
        control=CONTROL,
        created=CREATED,
        delimiters=Delimiters(element="|", repetition="^", component=">", segment="\n"),
    )
    (read,) = read_276(written.data)
    assert read.inquiries == [sample_inquiry()]


def test_a_dependents_inquiry_reads_without_the_subscriber_birth_date() -> None:
    first, dependent = read_276(WRITTEN.encode())
    assert first.inquiries == [sample_inquiry()]
    assert dependent.issues == []
    (inquiry,) = dependent.inquiries
    assert inquiry.subscriber_birth_date is None  # not in a 276 for a dependent
    assert inquiry.patient_birth_date is not None


@pytest.mark.parametrize(
    ("old", "new", "segment_id", "element", "code"),
    [
        ("XX*1234567893", "XX*1234567890", "NM1", 9, "I12"),
        ("AMT*T3*99.5", "AMT*T3*-99.5", "AMT", 2, "6"),
        ("DTP*472*D8*20240301~\nSVC", "DTP*472*D9*20240301~\nSVC", "DTP", 2, "7"),
        ("REF*EJ*PCN-0009~\n", "", "REF", None, "3"),
        ("NM1*IL*1*DOE*JOHN****MI*", "NM1*IL*1*DOE*JOHN****ZZ*", "NM1", 8, "7"),
    ],
)
def test_problems_drop_the_inquiry_and_say_where(
    old: str, new: str, segment_id: str, element: int | None, code: str
) -> None:
    text = INQUIRY.replace(old, new)
    if not new:
        text = text.replace("SE*20", "SE*19")
    (read,) = read_276(text.encode())
    assert read.inquiries == []
    first, *consequences = read.issues
    assert (first.segment_id, first.element, first.code) == (segment_id, element, code)
    # a bad level also names the inquiry it spoils, at the inquiry's TRN (position 14)
    assert [(i.code, i.position) for i in consequences] in ([], [("3", 14)])


def test_an_837_given_to_the_276_reader() -> None:
    with pytest.raises(X12Error, match="not an 276"):
        read_276((FIXTURES / "837p_mixed.x12").read_bytes())
