"""277 (005010X212) answers and 277CA (005010X214) claim acknowledgements.

pyx12 validates the 277CA (its X214 map is indexed and works). Its X212 277 map is not indexed and
mis-nested (see pyx12_check), so the 277 answer is pinned by exact segments here.
"""

from __future__ import annotations

from datetime import date

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
    sample_inquiry,
    sample_status,
    set_bodies,
    split,
    with_check_digit,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyx12_check import validate

from canonical import Money
from canonical.v1 import Claim, ClaimStatus
from connectors.clearinghouse.x12._write277 import write_277, write_277ca

replace = msgspec.structs.replace
REPLY = ENVELOPE.reply()

ANSWER = """\
ST*277*0001*005010X212~
BHT*0010*08*TRACE-0001*20240305*1430*DG~
HL*1**20*1~
NM1*PR*2*AETNA*****PI*60054~
HL*2*1*21*1~
NM1*41*2*BILLING HUB*****46*HUB001~
HL*3*2*19*1~
NM1*1P*2*RIVERSIDE FAMILY PRACTICE*****XX*1234567893~
HL*4*3*22*0~
NM1*IL*1*DOE*JOHN*Q***MI*XYZ123456789~
TRN*2*TRACE-0001~
STC*A1:20:1P*20240304**165.50*0.00~
REF*1K*PYR555~
REF*EJ*PCN-0001~
DTP*472*RD8*20240301-20240302~
SE*16*0001~
"""


def answer(pairs: list[tuple[object, ClaimStatus]], **kwargs: object) -> str:
    options: dict[str, object] = {
        "receiver": SUBMITTER,
        "envelope": REPLY,
        "control": CONTROL,
        "created": CREATED,
    }
    options.update(kwargs)
    return write_277(pairs, **options).text  # type: ignore[arg-type]


def test_exact_277_answer():
    lines = answer([(sample_inquiry(), sample_status())], newline=True).splitlines(keepends=True)
    assert "".join(lines[2:-2]) == ANSWER
    assert lines[1] == "GS*HN*CLEARINGHOUSE*HUBSENDER*20240305*1430*101*X*005010X212~\n"


def test_277_answer_for_a_dependent():
    status = replace(sample_status(category="F1", status="65"), paid_amount=Money("120.00"), entity_code=None)
    (body,) = set_bodies(answer([(sample_inquiry(dependent=True), status)]))
    hls = [s for s in body if s[0] == "HL"]
    assert hls[-2:] == [["HL", "4", "3", "22", "1"], ["HL", "5", "4", "23"]]
    dependent = body.index(["HL", "5", "4", "23"])
    assert body[dependent + 1] == ["NM1", "QC", "1", "DOE", "JANE"]
    assert body[dependent + 2] == ["TRN", "2", "TRACE-0001"]  # loop 2200E under the dependent
    assert ["STC", "F1:65", "20240304", "", "165.50", "120.00"] in body


def test_277_defaults_billed_from_the_inquiry_and_paid_to_zero():
    status = replace(sample_status(), billed_amount=None, paid_amount=None, payer_claim_number=None)
    (body,) = set_bodies(answer([(sample_inquiry(), status)]))
    assert ["STC", "A1:20:1P", "20240304", "", "165.50", "0.00"] in body
    assert not any(s[:2] == ["REF", "1K"] for s in body)


def test_277_one_set_per_answer():
    second = replace(sample_inquiry(), claim_id="PCN-0002", trace_number="TRACE-0002")
    pairs = [(sample_inquiry(), sample_status()), (second, replace(sample_status(), claim_id="PCN-0002"))]
    written = write_277(pairs, receiver=SUBMITTER, envelope=REPLY, control=CONTROL, created=CREATED)
    assert written.set_keys == {"0001": "PCN-0001", "0002": "PCN-0002"}
    assert [s[2] for s in split(written.text) if s[0] == "TRN"] == ["TRACE-0001", "TRACE-0002"]


def test_277_refuses_a_status_for_another_claim():
    with pytest.raises(ValueError, match="claim ids differ"):
        answer([(sample_inquiry(), replace(sample_status(), claim_id="OTHER"))])
    with pytest.raises(ValueError, match="at least one"):
        answer([])


# -- 277CA ---------------------------------------------------------------------------------------


def ack_status(claim: Claim, category: str = "A1", status: str = "20", **changes: object) -> ClaimStatus:
    base = ClaimStatus(
        claim_id=claim.claim_id,
        category_code=category,
        status_code=status,
        effective_date=date(2024, 3, 5),
        source="277CA",
    )
    return replace(base, **changes)


def acknowledge(pairs: list[tuple[Claim, ClaimStatus]], **kwargs: object) -> str:
    options: dict[str, object] = {
        "source": RECEIVER,
        "receiver": SUBMITTER,
        "batch_reference": "000000101",
        "received": date(2024, 3, 5),
        "envelope": REPLY,
        "control": CONTROL,
        "created": CREATED,
    }
    options.update(kwargs)
    return write_277ca(pairs, **options).text  # type: ignore[arg-type]


def test_277ca_structure_counts_and_actions():
    first = sample_claim()
    second = sample_claim(dependent=True, claim_id="PCN-0002")
    other_provider = replace(
        sample_claim(claim_id="PCN-0003"),
        billing_provider=replace(billing_provider(), npi=with_check_digit("111111111")),
    )
    pairs = [
        (first, ack_status(first, payer_claim_number="PYR1")),
        (second, ack_status(second, "A7", "562", entity_code="85")),
        (other_provider, ack_status(other_provider)),
    ]
    text = acknowledge(pairs)
    (body,) = set_bodies(text)
    assert body[0] == ["ST", "277", "0001", "005010X214"]
    assert body[1] == ["BHT", "0085", "08", "000000101", "20240305", "1430", "TH"]
    hls = [s for s in body if s[0] == "HL"]
    assert hls == [
        ["HL", "1", "", "20", "1"],
        ["HL", "2", "1", "21", "1"],
        ["HL", "3", "2", "19", "1"],
        ["HL", "4", "3", "PT"],
        ["HL", "5", "3", "PT"],
        ["HL", "6", "2", "19", "1"],
        ["HL", "7", "6", "PT"],
    ]
    stc = [s for s in body if s[0] == "STC"]
    assert stc[0] == ["STC", "A1:19:AY", "20240305", "WQ", "496.50"]  # receiver: the whole batch
    assert stc[1] == ["STC", "A1:19:85", "", "WQ", "331.00"]  # first provider
    assert stc[2] == ["STC", "A1:20", "20240305", "WQ", "165.50"]
    assert stc[3] == ["STC", "A7:562:85", "20240305", "U", "165.50"]
    assert [s[2] for s in body if s[0] == "TRN" and s[1] == "2"] == [
        "000000101",
        "PCN-0001",
        "PCN-0002",
        "PCN-0003",
    ]
    assert ["QTY", "90", "2"] in body
    assert ["QTY", "AA", "1"] in body
    assert ["AMT", "YU", "331.00"] in body
    assert ["AMT", "YY", "165.50"] in body
    assert ["QTY", "QA", "1"] in body
    assert ["QTY", "QC", "1"] in body
    assert ["REF", "1K", "PYR1"] in body
    assert [
        "NM1",
        "QC",
        "1",
        "DOE",
        "JANE",
        "",
        "",
        "",
        "MI",
        "XYZ123456789",
    ] in body  # the patient, member id
    assert body[-1] == ["SE", str(len(body)), "0001"]
    result = validate(text)
    assert result.valid, result.summary()


def test_277ca_all_rejected():
    claim = sample_claim()
    (body,) = set_bodies(acknowledge([(claim, ack_status(claim, "A3", "21"))]))
    assert ["STC", "A3:19:AY", "20240305", "U", "165.50"] in body
    assert not any(s[0] == "QTY" and s[1] in ("90", "QA") for s in body)


def test_277ca_refuses_mismatched_pairs():
    with pytest.raises(ValueError, match="claim ids differ"):
        acknowledge([(sample_claim(), ack_status(sample_claim(claim_id="X")))])
    with pytest.raises(ValueError, match="at least one"):
        acknowledge([])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(claims(), min_size=1, max_size=4, unique_by=lambda c: c.claim_id), data=st.data())
def test_277ca_for_random_batches_passes_pyx12(batch, data):
    pairs = [
        (
            claim,
            ack_status(claim, *data.draw(st.sampled_from([("A1", "20"), ("A2", "20"), ("A7", "21"), ("A3", "562")]))),
        )
        for claim in batch
    ]
    text = acknowledge(pairs)
    result = validate(text)
    assert result.valid, f"{result.summary()}\n{text}"


def test_pyx12_rejects_a_broken_277ca():
    claim = sample_claim()
    text = acknowledge([(claim, ack_status(claim))])
    broken = text.replace("HL*4*3*PT~", "HL*4*3*22~")
    assert broken != text
    assert not validate(broken).valid
