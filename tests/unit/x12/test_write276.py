"""276 (005010X212) writer and the StatusInquiry it writes.

pyx12 4.0 has no 276 005010X212 map, so these exact-segment tests are the check.
"""

from __future__ import annotations

from datetime import date

import msgspec
import pytest
from factories import BILLING_NPI, CONTROL, CREATED, ENVELOPE, SUBMITTER, sample_inquiry, set_bodies, split

from canonical import decode, encode, phi_paths
from canonical.v1 import PersonName
from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._model import Delimiters
from connectors.clearinghouse.x12._write276 import write_276

replace = msgspec.structs.replace


def write(inquiries: list[StatusInquiry], **kwargs: object) -> str:
    options: dict[str, object] = {
        "receiver": SUBMITTER,
        "envelope": ENVELOPE,
        "control": CONTROL,
        "created": CREATED,
    }
    options.update(kwargs)
    return write_276(inquiries, **options).text  # type: ignore[arg-type]


SUBSCRIBER_INQUIRY = """\
ST*276*0001*005010X212~
BHT*0010*13*TRACE-0001*20240305*1430~
HL*1**20*1~
NM1*PR*2*AETNA*****PI*60054~
HL*2*1*21*1~
NM1*41*2*BILLING HUB*****46*HUB001~
HL*3*2*19*1~
NM1*1P*2*RIVERSIDE FAMILY PRACTICE*****XX*1234567893~
HL*4*3*22*0~
DMG*D8*19800115~
NM1*IL*1*DOE*JOHN*Q***MI*XYZ123456789~
TRN*1*TRACE-0001~
REF*EJ*PCN-0001~
AMT*T3*165.50~
DTP*472*RD8*20240301-20240302~
SE*16*0001~
"""

DEPENDENT_INQUIRY = """\
ST*276*0001*005010X212~
BHT*0010*13*TRACE-0001*20240305*1430~
HL*1**20*1~
NM1*PR*2*AETNA*****PI*60054~
HL*2*1*21*1~
NM1*41*2*BILLING HUB*****46*HUB001~
HL*3*2*19*1~
NM1*1P*2*RIVERSIDE FAMILY PRACTICE*****XX*1234567893~
HL*4*3*22*1~
NM1*IL*1*DOE*JOHN*Q***MI*XYZ123456789~
HL*5*4*23~
DMG*D8*20120601~
NM1*QC*1*DOE*JANE~
TRN*1*TRACE-0001~
REF*1K*PYR555~
REF*EJ*PCN-0001~
AMT*T3*165.50~
DTP*472*RD8*20240301-20240302~
SE*19*0001~
"""


@pytest.mark.parametrize(
    ("inquiry", "expected"),
    [(sample_inquiry(), SUBSCRIBER_INQUIRY), (sample_inquiry(dependent=True), DEPENDENT_INQUIRY)],
    ids=["subscriber", "dependent"],
)
def test_exact_276(inquiry, expected):
    lines = write([inquiry], newline=True).splitlines(keepends=True)
    assert "".join(lines[2:-2]) == expected
    assert lines[1] == "GS*HR*HUBSENDER*CLEARINGHOUSE*20240305*1430*101*X*005010X212~\n"
    assert lines[-2:] == ["GE*1*101~\n", "IEA*1*000000101~\n"]


def test_one_set_per_inquiry_with_matching_control_numbers():
    inquiries = [sample_inquiry(), replace(sample_inquiry(dependent=True), claim_id="PCN-0002")]
    written = write_276(inquiries, receiver=SUBMITTER, envelope=ENVELOPE, control=CONTROL, created=CREATED)
    assert written.set_keys == {"0001": "PCN-0001", "0002": "PCN-0002"}
    for body in set_bodies(written.text):
        assert body[0][2] == body[-1][2]
        assert body[-1][1] == str(len(body))
    assert split(written.text)[-2] == ["GE", "2", "101"]


def test_custom_delimiters():
    delimiters = Delimiters(element="|", repetition="!", component=">", segment="\n")
    text = write([sample_inquiry()], delimiters=delimiters)
    assert "DTP|472|RD8|20240301-20240302" in text.splitlines()


def test_values_with_delimiters_are_refused():
    inquiry = replace(sample_inquiry(), subscriber_name=PersonName(family="DOE~SMITH", given="JOHN"))
    with pytest.raises(ValueError, match="segment terminator") as caught:
        write([inquiry])
    assert "DOE" not in str(caught.value)


def test_at_least_one_inquiry():
    with pytest.raises(ValueError, match="at least one"):
        write([])


# -- the StatusInquiry Struct --------------------------------------------------------------------


def test_phi_fields_are_marked():
    assert phi_paths(StatusInquiry) == {
        "subscriber_member_id",
        "subscriber_name",
        "subscriber_birth_date",
        "patient_name",
        "patient_birth_date",
    }


def test_json_round_trip_and_strictness():
    inquiry = sample_inquiry(dependent=True)
    assert decode(encode(inquiry), StatusInquiry) == inquiry
    raw = msgspec.json.decode(encode(inquiry))
    with pytest.raises(msgspec.ValidationError, match="money must be a JSON string"):
        decode(msgspec.json.encode({**raw, "billed_amount": 165.5}), StatusInquiry)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        decode(msgspec.json.encode({**raw, "tracenumber": "X"}), StatusInquiry)
    with pytest.raises(msgspec.ValidationError, match="trace_number"):
        decode(msgspec.json.encode({**raw, "trace_number": "BAD*TRACE"}), StatusInquiry)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"provider_npi": BILLING_NPI[:-1] + str((int(BILLING_NPI[-1]) + 1) % 10)}, "check digit"),
        ({"service_date_to": date(2024, 2, 1)}, "before service_date_from"),
        ({"patient_name": PersonName(family="DOE", given="JANE")}, "go together"),
        ({"patient_birth_date": date(2012, 1, 1)}, "go together"),
    ],
)
def test_inquiry_rules(changes, message):
    raw = msgspec.json.decode(encode(sample_inquiry()))
    raw.update(msgspec.json.decode(encode(changes)))
    with pytest.raises(msgspec.ValidationError, match=message):
        decode(msgspec.json.encode(raw), StatusInquiry)


def test_patient_is_subscriber():
    assert sample_inquiry().patient_is_subscriber
    assert not sample_inquiry(dependent=True).patient_is_subscriber
