"""837P (X222A1) back to canonical claims: mapping, what cannot be mapped, and where it is."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest
from factories import sample_claim

from canonical import Amount
from canonical.v1 import Address, Claim, Payer, PersonName, Provider, ServiceLine, Subscriber
from connectors.clearinghouse.x12._ack import acknowledge
from connectors.clearinghouse.x12._model import X12Error
from connectors.clearinghouse.x12._read837 import ClaimRead, read_837

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"
MIXED = (FIXTURES / "837p_mixed.x12").read_text()
replace = msgspec.structs.replace


def claims(text: str) -> list[ClaimRead]:
    return [claim for read in read_837(text.encode()) for claim in read.claims]


def test_a_complete_claim_maps_to_the_canonical_claim() -> None:
    first = claims(MIXED)[0]
    assert (first.claim_id, first.position, first.issues) == ("CLM-A", 21, [])
    assert first.claim == Claim(
        claim_id="CLM-A",
        account_number="CLM-A",
        billing_provider=Provider(
            npi="1234567893",
            name="RIVERSIDE FAMILY PRACTICE",
            tax_id="123456789",
            taxonomy="207Q00000X",
            address=Address(
                line1="100 MAIN ST", line2="SUITE 2", city="SPRINGFIELD", state="IL", postal_code="627011234"
            ),
        ),
        rendering_provider=Provider(npi="1987654328", name="SMITH ANNA", taxonomy="207R00000X"),
        payer=Payer(payer_id="60054", name="AETNA"),
        subscriber=Subscriber(
            name=PersonName(family="DOE", given="JOHN", middle="Q"),
            birth_date=date(1980, 1, 15),
            sex="M",
            address=Address(line1="12 ELM ST", city="SPRINGFIELD", state="IL", postal_code="62704"),
            member_id="XYZ123456789",
            group_number="GRP100",
        ),
        diagnoses=["J02.9", "R50.9"],
        service_lines=[
            ServiceLine(
                procedure="99213",
                modifiers=["25"],
                charge=Amount("125.00"),
                service_date=date(2024, 3, 1),
                diagnosis_pointers=[1, 2],
            ),
            ServiceLine(
                procedure="87880",
                units=2,
                charge=Amount("40.50"),
                service_date=date(2024, 3, 1),
                diagnosis_pointers=[2],
                place_of_service="22",
            ),
        ],
        prior_authorization="AUTH-9",
        total_charge=Amount("165.50"),
    )


def test_each_problem_is_reported_at_its_segment_and_only_spoils_its_claim() -> None:
    found = {claim.claim_id: claim for claim in claims(MIXED)}
    assert [c for c, read in found.items() if read.claim is not None] == ["CLM-A", "CLM-F"]
    where = {
        claim_id: [(i.segment_id, i.position, i.element, i.component, i.code) for i in read.issues]
        for claim_id, read in found.items()
    }
    assert where == {
        "CLM-A": [],
        "CLM-B": [("HI", 33, 1, 1, "7")],  # ICD-9 (BK) in a 5010 claim
        "CLM-D": [("NM1", 39, 9, None, "I12")],  # rendering NPI check digit
        "CLM-E": [("CLM", 43, None, None, "8")],  # CLM02 is not the sum of SV102
        "CLM-F": [],
        "CLM-C": [("REF", 62, None, None, "3")],  # its billing provider has no REF*EI
    }
    assert "total_charge" in found["CLM-E"].issues[0].message


def test_a_service_period_keeps_its_first_day_with_a_warning() -> None:
    (read,) = read_837(MIXED.encode())
    claim = next(c.claim for c in read.claims if c.claim_id == "CLM-F")
    assert claim is not None
    assert claim.service_lines[0].service_date == date(2024, 3, 1)
    assert claim.diagnoses == ["S52.521A"]
    assert [(w.segment_id, w.position, w.element) for w in read.warnings] == [("DTP", 52, 3)]


def test_the_837p_writer_output_reads_back() -> None:
    first, dependent = claims((FIXTURES / "written_837p_two_claims.x12").read_text())
    assert first.issues == []
    assert first.claim == replace(sample_claim(), account_number="PCN-0001")  # no 837P element for it
    # 2010BA DMG is only sent when the subscriber is the patient: a dependent's subscriber has none
    assert dependent.issues == []
    assert dependent.claim is not None
    assert (dependent.claim.subscriber.birth_date, dependent.claim.subscriber.sex) == (None, None)
    assert dependent.claim.patient is not None


def test_sets_with_problems_are_rejected_in_the_999() -> None:
    (ack,) = acknowledge(read_837(MIXED.encode()))
    (set_ack,) = ack.sets
    assert (ack.status, set_ack.status) == ("R", "R")
    assert [(i.segment_id, i.position) for i in set_ack.issues][:2] == [("HI", 31), ("NM1", 37)]


def test_an_835_given_to_the_837_reader() -> None:
    with pytest.raises(X12Error, match="not an 837") as caught:
        read_837((FIXTURES / "835_full.x12").read_bytes())
    assert caught.value.issue.position == 3


@pytest.mark.parametrize(
    ("old", "new", "segment_id", "element", "code"),
    [
        ("CLM*CLM-A*165.5***11:B:1", "CLM*CLM-A*165.5***11:B:5", "CLM", 5, "7"),
        ("CLM*CLM-A*165.5***11:B:1", "CLM*CLM-A*165.5***1:B:1", "CLM", 5, "7"),
        ("SV1*HC:99213:25*125*UN*1***1:2", "SV1*HC:99213:25*125*UN*0***1:2", "SV1", 4, "6"),
        ("SV1*HC:99213:25*125*UN*1***1:2", "SV1*HC:99213:25*125*UN*1***1:13", "SV1", 7, "7"),
        ("DMG*D8*19800115*M", "DMG*D8*19800230*M", "DMG", 2, "8"),
        ("N4*SPRINGFIELD*IL*62704~", "N4*SPRINGFIELD*Illinois*62704~", "N4", 2, "7"),
        ("NM1*IL*1*DOE*JOHN*Q***MI*", "NM1*IL*2*DOE*JOHN*Q***MI*", "NM1", 2, "7"),
    ],
)
def test_element_problems(old: str, new: str, segment_id: str, element: int, code: str) -> None:
    (read,) = read_837(MIXED.replace(old, new, 1).encode())
    first = read.issues[0]
    assert (first.segment_id, first.element, first.code) == (segment_id, element, code)
    assert read.claims[0].claim is None
