"""An independent check: every 837P the hub writes passes pyx12's 005010X222A1 validator.

pyx12 is only worth trusting if it fails broken files, so the same claims are also written with one
deliberate defect each (counts kept consistent, so the defect is the only error) and pyx12 must
reject every one of them.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from factories import CONTROL, CREATED, ENVELOPE, RECEIVER, SUBMITTER, claims, sample_claim
from hypothesis import HealthCheck, given, settings
from pyx12_check import validate

from connectors.clearinghouse.x12._write837 import IMPLEMENTATION_837P, claim_transaction, write_837p
from connectors.clearinghouse.x12._writer import (
    FunctionalGroup,
    Segment,
    TransactionSet,
    build_interchange,
    seg,
)

replace = msgspec.structs.replace


def written(*batch: object) -> str:
    return write_837p(
        list(batch),  # type: ignore[arg-type]
        submitter=SUBMITTER,
        receiver=RECEIVER,
        envelope=ENVELOPE,
        control=CONTROL,
        created=CREATED,
    ).text


def test_sample_claims_pass_pyx12():
    text = written(sample_claim(), sample_claim(dependent=True, claim_id="PCN-0002"))
    result = validate(text)
    assert result.valid, result.summary()
    assert "IK5*A" in result.ack  # pyx12's own 999 accepts both sets
    assert "AK9*A*2*2*2" in result.ack


def test_a_mixed_batch_passes_pyx12():
    claim = sample_claim()
    plain = replace(claim, rendering_provider=None, prior_authorization=None, claim_id="PLAIN-1")
    spouse = sample_claim(dependent=True, claim_id="SPOUSE-1")
    spouse = replace(spouse, subscriber=replace(spouse.subscriber, relationship_to_patient="spouse"))
    result = validate(written(claim, plain, spouse))
    assert result.valid, result.summary()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=claims())
def test_any_valid_canonical_claim_passes_pyx12(claim):
    text = written(claim)
    result = validate(text)
    assert result.valid, f"{result.summary()}\n{text}"


# -- pyx12 must catch defects ---------------------------------------------------------------------


def _drop(tag: str, qualifier: str | None = None) -> Callable[[list[Segment]], list[Segment]]:
    def edit(body: list[Segment]) -> list[Segment]:
        index = next(
            i for i, s in enumerate(body) if s.tag == tag and (qualifier is None or s.elements[0] == qualifier)
        )
        return body[:index] + body[index + 1 :]

    return edit


def _swap(tag: str, qualifier: str, new: Segment) -> Callable[[list[Segment]], list[Segment]]:
    def edit(body: list[Segment]) -> list[Segment]:
        return [new if s.tag == tag and s.elements[0] == qualifier else s for s in body]

    return edit


def _map(tag: str, change: Callable[[Segment], Segment]) -> Callable[[list[Segment]], list[Segment]]:
    def edit(body: list[Segment]) -> list[Segment]:
        return [change(s) if s.tag == tag else s for s in body]

    return edit


DEFECTS: dict[str, Callable[[list[Segment]], list[Segment]]] = {
    "billing provider tax id missing": _drop("REF", "EI"),
    "payer loop missing": _drop("NM1", "PR"),
    "HI missing": _drop("HI"),
    "service line SV1 missing": _drop("SV1"),
    "HL parent points nowhere": _swap("HL", "2", seg("HL", "2", "9", "22", "0")),
    "ABF before ABK": _map("HI", lambda s: seg("HI", ("ABF", "J029"), ("ABK", "R509"))),
    "claim frequency missing": _map("CLM", lambda s: seg("CLM", *s.elements[:4], ("11", "B"), *s.elements[5:])),
    "invalid birth date": _map("DMG", lambda s: seg("DMG", "D8", "19801315", "M")),
    "diagnosis pointer 13": _map("SV1", lambda s: seg("SV1", *s.elements[:6], ("13",))),
    "place of service 98": _map("CLM", lambda s: seg("CLM", *s.elements[:4], ("98", "B", "1"), *s.elements[5:])),
    "unknown NM102": _swap("NM1", "85", seg("NM1", "85", "9", "ACME", None, None, None, None, "XX", "1234567893")),
    "service line numbers out of order": _map("LX", lambda s: seg("LX", str(int(str(s.elements[0])) + 1))),
}


def _with_defect(edit: Callable[[list[Segment]], list[Segment]]) -> str:
    body = list(claim_transaction(sample_claim(), submitter=SUBMITTER, receiver=RECEIVER, created=CREATED).body)
    tset = TransactionSet("837", IMPLEMENTATION_837P, edit(body))
    group = FunctionalGroup("HC", IMPLEMENTATION_837P, [tset])
    return build_interchange([group], envelope=ENVELOPE, control=CONTROL, created=CREATED).text


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_pyx12_rejects_a_broken_837p(defect):
    text = _with_defect(DEFECTS[defect])
    assert text != written(sample_claim())
    result = validate(text)
    assert not result.valid, f"pyx12 accepted an 837P with: {defect}"
    assert result.errors


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SE*30*0001~", "SE*31*0001~"),  # wrong segment count
        ("SE*30*0001~", "SE*30*0002~"),  # ST02/SE02 mismatch
        ("GE*1*101~", "GE*2*101~"),  # wrong set count
        ("GE*1*101~", "GE*1*102~"),  # GS06/GE02 mismatch
        ("IEA*1*000000101~", "IEA*1*000000102~"),  # ISA13/IEA02 mismatch
    ],
)
def test_pyx12_rejects_broken_envelopes(old, new):
    text = written(sample_claim())
    assert old in text
    result = validate(text.replace(old, new))
    assert not result.valid
