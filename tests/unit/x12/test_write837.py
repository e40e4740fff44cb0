"""837P (005010X222A1) writer: exact segments, the HL hierarchy, batching and refusals."""

from __future__ import annotations

import msgspec
import pytest
from factories import (
    CONTROL,
    CREATED,
    ENVELOPE,
    RECEIVER,
    SUBMITTER,
    billing_provider,
    claims,
    sample_claim,
    set_bodies,
    split,
)
from hypothesis import HealthCheck, given, settings

from canonical import Amount
from canonical.v1 import Address, Claim, PersonName
from connectors.clearinghouse.x12._model import Delimiters
from connectors.clearinghouse.x12._write837 import Submitter, claim_transaction, write_837p
from connectors.clearinghouse.x12._writer import ControlCounter, render_segment

replace = msgspec.structs.replace


def write(claims_: list[Claim], **kwargs: object) -> str:
    options: dict[str, object] = {
        "submitter": SUBMITTER,
        "receiver": RECEIVER,
        "envelope": ENVELOPE,
        "control": CONTROL,
        "created": CREATED,
    }
    options.update(kwargs)
    return write_837p(claims_, **options).text  # type: ignore[arg-type]


SUBSCRIBER_IS_PATIENT = """\
ST*837*0001*005010X222A1~
BHT*0019*00*PCN-0001*20240305*1430*CH~
NM1*41*2*BILLING HUB*****46*HUB001~
PER*IC*EDI DESK*TE*8005551212~
NM1*40*2*ACME CLEARINGHOUSE*****46*ACMECH~
HL*1**20*1~
PRV*BI*PXC*207Q00000X~
NM1*85*2*RIVERSIDE FAMILY PRACTICE*****XX*1234567893~
N3*100 MAIN ST*SUITE 2~
N4*SPRINGFIELD*IL*627011234~
REF*EI*123456789~
HL*2*1*22*0~
SBR*P*18*GRP100******CI~
NM1*IL*1*DOE*JOHN*Q***MI*XYZ123456789~
N3*12 ELM ST~
N4*SPRINGFIELD*IL*62704~
DMG*D8*19800115*M~
NM1*PR*2*AETNA*****PI*60054~
CLM*PCN-0001*165.50***11:B:1*Y*A*Y*Y~
REF*G1*AUTH-9~
HI*ABK:J029*ABF:R509~
NM1*82*2*SMITH ANNA MD*****XX*1987654328~
PRV*PE*PXC*207R00000X~
LX*1~
SV1*HC:99213:25*125.00*UN*1***1:2~
DTP*472*D8*20240301~
LX*2~
SV1*HC:87880*40.50*UN*2*22**2~
DTP*472*D8*20240301~
SE*30*0001~
"""


def test_exact_837p_when_the_subscriber_is_the_patient():
    text = write([sample_claim()], newline=True)
    lines = text.splitlines(keepends=True)
    assert "".join(lines[2:-2]) == SUBSCRIBER_IS_PATIENT
    assert lines[0].startswith("ISA*00*")
    assert lines[1] == "GS*HC*HUBSENDER*CLEARINGHOUSE*20240305*1430*101*X*005010X222A1~\n"
    assert lines[-2:] == ["GE*1*101~\n", "IEA*1*000000101~\n"]


def test_dependent_patient_gets_loop_2000c_under_the_subscriber():
    (body,) = set_bodies(write([sample_claim(dependent=True)]))
    hls = [s for s in body if s[0] == "HL"]
    assert hls == [["HL", "1", "", "20", "1"], ["HL", "2", "1", "22", "1"], ["HL", "3", "2", "23", "0"]]
    tags = [s[0] for s in body]
    sbr = body[tags.index("SBR")]
    assert sbr[1:3] == ["P", ""]  # SBR02 only when the subscriber is the patient
    after_patient_hl = body[tags.index("HL", tags.index("SBR")) :]
    assert [s[0] for s in after_patient_hl[:6]] == ["HL", "PAT", "NM1", "N3", "N4", "DMG"]
    assert after_patient_hl[1] == ["PAT", "19"]
    assert after_patient_hl[2] == ["NM1", "QC", "1", "DOE", "JANE"]
    assert after_patient_hl[5] == ["DMG", "D8", "20120601", "F"]
    assert after_patient_hl[6][0] == "CLM"
    # the subscriber's demographics go only with the patient's loop when they are different people
    subscriber_loop = body[tags.index("SBR") : tags.index("HL", tags.index("SBR"))]
    assert "DMG" not in [s[0] for s in subscriber_loop]
    assert body[-1] == ["SE", str(len(body)), "0001"]


@pytest.mark.parametrize(("relationship", "pat01"), [("spouse", "01"), ("child", "19"), ("other", "G8")])
def test_patient_relationship_codes(relationship, pat01):
    claim = sample_claim(dependent=True)
    claim = replace(claim, subscriber=replace(claim.subscriber, relationship_to_patient=relationship))
    (body,) = set_bodies(write([claim]))
    assert ["PAT", pat01] in body


def test_one_transaction_set_per_claim_and_keys_name_the_claims():
    batch = [
        sample_claim(claim_id="A-1"),
        sample_claim(dependent=True, claim_id="B-2"),
        sample_claim(claim_id="C-3"),
    ]
    written = write_837p(
        batch, submitter=SUBMITTER, receiver=RECEIVER, envelope=ENVELOPE, control=CONTROL, created=CREATED
    )
    segments = split(written.text)
    assert [s[0] for s in segments].count("ST") == 3
    assert written.set_keys == {"0001": "A-1", "0002": "B-2", "0003": "C-3"}
    for body, number in zip(set_bodies(written.text), ("0001", "0002", "0003"), strict=True):
        assert body[0][2] == body[-1][2] == number
        assert body[-1][1] == str(len(body))
        assert next(s for s in body if s[0] == "HL") == ["HL", "1", "", "20", "1"]  # HL ids restart per set
    assert segments[-2] == ["GE", "3", "101"]


def test_claim_segments_composites_and_order():
    (body,) = set_bodies(write([sample_claim()]))
    clm = next(s for s in body if s[0] == "CLM")
    assert clm == ["CLM", "PCN-0001", "165.50", "", "", "11:B:1", "Y", "A", "Y", "Y"]
    hi = next(s for s in body if s[0] == "HI")
    assert hi == ["HI", "ABK:J029", "ABF:R509"]
    sv1 = [s for s in body if s[0] == "SV1"]
    assert sv1[0] == ["SV1", "HC:99213:25", "125.00", "UN", "1", "", "", "1:2"]
    assert sv1[1] == ["SV1", "HC:87880", "40.50", "UN", "2", "22", "", "2"]  # SV105 differs from CLM05-1
    assert [s for s in body if s[0] == "LX"] == [["LX", "1"], ["LX", "2"]]


def test_twelve_diagnoses_and_four_pointers_and_modifiers():
    claim = sample_claim()
    line = replace(claim.service_lines[0], modifiers=["25", "59", "XS", "GT"], diagnosis_pointers=[12, 1, 5, 3])
    diagnoses = [
        "A00",
        "B01.1",
        "C02.21",
        "D03.111",
        "E04",
        "F05",
        "G06.0",
        "H07",
        "I08",
        "J09",
        "K10",
        "L11",
    ]
    claim = replace(claim, diagnoses=diagnoses, service_lines=[line], total_charge=line.charge)
    (body,) = set_bodies(write([claim]))
    hi = next(s for s in body if s[0] == "HI")
    assert hi[1] == "ABK:A00"
    assert hi[2:] == [f"ABF:{code.replace('.', '')}" for code in diagnoses[1:]]
    sv1 = next(s for s in body if s[0] == "SV1")
    assert sv1[1] == "HC:99213:25:59:XS:GT"
    assert sv1[7] == "12:1:5:3"


def test_optional_parts_are_left_out():
    claim = sample_claim()
    provider = replace(claim.billing_provider, taxonomy=None)
    claim = replace(
        claim,
        billing_provider=provider,
        rendering_provider=replace(provider, tax_id=None),  # the same NPI: no 2310B
        prior_authorization=None,
        subscriber=replace(claim.subscriber, group_number=None, name=PersonName(family="DOE", given="JOHN")),
    )
    (body,) = set_bodies(write([claim]))
    tags = [s[0] for s in body]
    assert "PRV" not in tags
    assert not any(s[:2] == ["NM1", "82"] for s in body)
    assert not any(s[:2] == ["REF", "G1"] for s in body)
    assert ["SBR", "P", "18", "", "", "", "", "", "", "CI"] in body
    assert ["NM1", "IL", "1", "DOE", "JOHN", "", "", "", "MI", "XYZ123456789"] in body


def test_foreign_address_carries_a_country_code():
    claim = sample_claim()
    address = Address(line1="1 RUE X", city="PARIS", state="IL", postal_code="75001", country="FR")
    claim = replace(claim, subscriber=replace(claim.subscriber, address=address))
    (body,) = set_bodies(write([claim]))
    assert ["N4", "PARIS", "IL", "75001", "FR"] in body


def test_filing_indicator_and_custom_delimiters():
    delimiters = Delimiters(element="|", repetition="!", component=">", segment="\n")
    text = write([sample_claim()], filing_indicator="MB", delimiters=delimiters)
    lines = text.splitlines()
    assert "SBR|P|18|GRP100||||||MB" in lines
    assert "CLM|PCN-0001|165.50|||11>B>1|Y|A|Y|Y" in lines
    assert "SV1|HC>99213>25|125.00|UN|1|||1>2" in lines
    assert "*" not in text
    assert "~" not in text


def test_counter_supplies_control_numbers():
    counter = ControlCounter(42)
    first = write_837p([sample_claim()], submitter=SUBMITTER, receiver=RECEIVER, envelope=ENVELOPE, control=counter)
    second = write_837p([sample_claim()], submitter=SUBMITTER, receiver=RECEIVER, envelope=ENVELOPE, control=counter)
    assert (first.interchange_control_number, second.interchange_control_number) == ("000000042", "000000043")
    assert first.group_control_numbers == ("42",)


def test_submitter_contact_options():
    both = Submitter(name="HUB", identifier="HUB1", phone="8005551212", email="edi@example.org")
    body = claim_transaction(sample_claim(), submitter=both, receiver=RECEIVER, created=CREATED).body
    assert render_segment(body[2]) == "PER*IC**TE*8005551212*EM*edi@example.org~"
    with pytest.raises(ValueError, match="phone number or an email"):
        Submitter(name="HUB", identifier="HUB1")


def _dependent_without_address() -> Claim:
    claim = sample_claim(dependent=True)
    assert claim.patient is not None
    return replace(claim, patient=replace(claim.patient, address=None))


def _subscriber_without_address() -> Claim:
    claim = sample_claim()
    return replace(claim, subscriber=replace(claim.subscriber, address=None))


REFUSED = [
    (
        lambda: replace(sample_claim(), billing_provider=replace(billing_provider(), address=None)),
        "2010AA N3/N4",
    ),
    (
        lambda: replace(
            sample_claim(),
            billing_provider=replace(
                billing_provider(),
                address=Address(line1="1 MAIN ST", city="SPRINGFIELD", state="IL", postal_code="62701"),
            ),
        ),
        "nine digits",
    ),
    (_dependent_without_address, "patient's address"),
    (_subscriber_without_address, "subscriber's address"),
    (
        lambda: replace(
            sample_claim(),
            subscriber=replace(sample_claim().subscriber, name=PersonName(family="DOE", given="J" * 36)),
        ),
        "first name must be 1-35",
    ),
    (
        lambda: replace(sample_claim(), subscriber=replace(sample_claim().subscriber, member_id="7")),
        "identifier must be 2-80",
    ),
    (
        lambda: replace(sample_claim(), payer=replace(sample_claim().payer, name="P" * 61)),
        "name must be 1-60",
    ),
    (lambda: replace(sample_claim(), account_number="x", claim_id="PCN*1"), "element separator"),
]


@pytest.mark.parametrize(("make", "message"), REFUSED)
def test_claims_that_cannot_be_written_faithfully_are_refused(make, message):
    with pytest.raises(ValueError, match=message) as caught:
        write([make()])
    assert "XYZ123456789" not in str(caught.value)
    assert "DOE" not in str(caught.value)


def test_batch_level_refusals():
    with pytest.raises(ValueError, match="at least one claim"):
        write([])
    with pytest.raises(ValueError, match="unique"):
        write([sample_claim(), sample_claim()])


def test_amounts_are_written_exactly():
    claim = sample_claim()
    lines = [
        replace(line, charge=Amount(value))
        for line, value in zip(claim.service_lines, ("0.10", "1000000.00"), strict=True)
    ]
    claim = replace(claim, service_lines=lines, total_charge=Amount("1000000.10"))
    (body,) = set_bodies(write([claim]))
    assert next(s for s in body if s[0] == "CLM")[2] == "1000000.10"
    assert [s[2] for s in body if s[0] == "SV1"] == ["0.10", "1000000.00"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=claims())
def test_hierarchy_and_counts_for_any_valid_claim(claim):
    text = write([claim])
    (body,) = set_bodies(text)
    hls = [s for s in body if s[0] == "HL"]
    levels = [h[3] for h in hls]
    assert levels == (["20", "22"] if claim.patient is None else ["20", "22", "23"])
    ids = {h[1] for h in hls}
    for number, hl in enumerate(hls, start=1):
        assert hl[1] == str(number)
        assert hl[2] == ("" if number == 1 else str(number - 1))
        assert hl[2] == "" or hl[2] in ids
        assert hl[4] == ("0" if number == len(hls) else "1")
    assert body[-1] == ["SE", str(len(body)), "0001"]
    assert [s for s in body if s[0] == "LX"] == [["LX", str(n)] for n in range(1, len(claim.service_lines) + 1)]
    assert next(s for s in body if s[0] == "CLM")[2] == str(claim.total_charge)
    assert len(next(s for s in body if s[0] == "HI")) - 1 == len(claim.diagnoses)


@pytest.mark.parametrize("frequency", ["7", "8"])
def test_a_replacement_or_void_names_the_payers_claim_in_ref_f8(frequency: str) -> None:
    """837P 2300 REF*F8 is required when CLM05-3 is 7 or 8: the payer matches the correction by it."""
    claim = msgspec.structs.replace(sample_claim(), frequency_code=frequency, payer_claim_number="PCC-0042")
    (body,) = set_bodies(write([claim]))
    tags = [s[0] for s in body]
    clm = body[tags.index("CLM")]
    assert clm[5].split(":")[2] == frequency
    refs = [s for s in body[tags.index("CLM") : tags.index("HI")] if s[0] == "REF"]
    assert refs[-1] == ["REF", "F8", "PCC-0042"]  # after REF*G1, before HI


def test_an_original_claim_carries_no_ref_f8() -> None:
    (body,) = set_bodies(write([sample_claim()]))
    assert not [s for s in body if s[:2] == ["REF", "F8"]]
