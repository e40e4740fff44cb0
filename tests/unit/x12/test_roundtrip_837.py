"""Canonical claim -> write_837p -> read_837 -> the same canonical claim.

An 837P cannot carry everything a canonical ``Claim`` holds, so the expected value is the claim as
an 837P can express it (``as_837p_carries``), each difference named:

- ``account_number``: no 837P element; the reader returns CLM01 (the claim id) there.
- diagnosis codes are sent without their dot and come back dotted after the third character.
- a service line's place of service equal to the claim's is not repeated in SV105.
- the rendering provider is sent only when it is not the billing provider, with NPI, name and
  taxonomy (2310B has no tax id or address).

A dependent patient's claim round-trips too: 2010BA DMG (the subscriber's birth date and sex) is
sent only when the subscriber is the patient ("if not required, do not send"), and the canonical
``Subscriber`` leaves both optional for a dependent, so the reader builds it without them.
"""

from __future__ import annotations

import msgspec
from factories import CONTROL, CREATED, ENVELOPE, RECEIVER, SUBMITTER, claims, sample_claim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical.v1 import Claim, Provider
from connectors.clearinghouse.x12._model import DEFAULT_DELIMITERS, Delimiters
from connectors.clearinghouse.x12._read837 import read_837
from connectors.clearinghouse.x12._write837 import write_837p

replace = msgspec.structs.replace
DELIMITER_SETS = [
    DEFAULT_DELIMITERS,
    Delimiters(element="|", repetition="!", component=">", segment="~"),
    Delimiters(element="^", repetition="{", component="\\", segment="#"),
]


def as_837p_carries(claim: Claim) -> Claim:
    def dotted(code: str) -> str:
        bare = code.replace(".", "")
        return bare if len(bare) == 3 else f"{bare[:3]}.{bare[3:]}"

    rendering = claim.rendering_provider
    if rendering is not None:
        same = rendering.npi == claim.billing_provider.npi
        rendering = None if same else Provider(npi=rendering.npi, name=rendering.name, taxonomy=rendering.taxonomy)
    lines = [
        replace(line, place_of_service=None) if line.place_of_service == claim.place_of_service else line
        for line in claim.service_lines
    ]
    subscriber = claim.subscriber
    if subscriber.relationship_to_patient != "self":  # 2010BA DMG is not sent for a dependent
        subscriber = replace(subscriber, birth_date=None, sex=None)
    return replace(
        claim,
        subscriber=subscriber,
        account_number=claim.claim_id,
        diagnoses=[dotted(code) for code in claim.diagnoses],
        service_lines=lines,
        rendering_provider=rendering,
    )


def round_trip(batch: list[Claim], delimiters: Delimiters = DEFAULT_DELIMITERS) -> list[Claim | None]:
    written = write_837p(
        batch,
        submitter=SUBMITTER,
        receiver=RECEIVER,
        envelope=ENVELOPE,
        control=CONTROL,
        created=CREATED,
        delimiters=delimiters,
    )
    sets = read_837(written.data)
    assert [s.envelope.control_number for s in sets] == list(written.set_control_numbers)
    for read in sets:
        assert read.issues == [], read.issues
    return [claim_read.claim for read in sets for claim_read in read.claims]


def test_sample_claim_round_trips():
    claim = sample_claim()
    assert round_trip([claim]) == [as_837p_carries(claim)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    batch=st.lists(
        claims().filter(lambda c: c.patient is None), min_size=1, max_size=3, unique_by=lambda c: c.claim_id
    ),
    delimiters=st.sampled_from(DELIMITER_SETS),
)
def test_any_claim_whose_patient_is_the_subscriber_round_trips(batch, delimiters):
    assert round_trip(batch, delimiters) == [as_837p_carries(claim) for claim in batch]


def test_a_dependent_patients_claim_round_trips():
    claim = sample_claim(dependent=True)
    assert round_trip([claim]) == [as_837p_carries(claim)]
