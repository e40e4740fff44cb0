"""999 acknowledgements to FunctionalAck values, and back through the 999 writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.clearinghouse.x12._model import Delimiters, FunctionalAck, SegmentIssue, SetAck, X12Error
from connectors.clearinghouse.x12._read999 import read_999
from connectors.clearinghouse.x12._write999 import functional_ack, write_999
from connectors.clearinghouse.x12._writer import ControlNumbers, Envelope

FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"
MIXED = (FIXTURES / "999_mixed.x12").read_text()
ENVELOPE = Envelope(sender_id="ACMECH", receiver_id="HUBSENDER")


def issue(segment: str, position: int, code: str, **extra: object) -> SegmentIssue:
    return SegmentIssue(segment_id=segment, position=position, code=code, message="", **extra)  # type: ignore[arg-type]


def shape(ack: FunctionalAck) -> tuple[object, ...]:
    """Everything but the human messages, issues in a stable order."""

    def issues(found: list[SegmentIssue]) -> list[tuple[object, ...]]:
        keys = [(i.segment_id, i.position, i.element or 0, i.component or 0, i.code, i.loop_id or "") for i in found]
        return sorted(keys)

    sets = [(s.transaction_code, s.control_number, s.implementation, s.status, issues(s.issues)) for s in ack.sets]
    counts = (ack.included, ack.received, ack.accepted_count)
    return (ack.functional_id, ack.group_control_number, ack.version, ack.status, sets, counts, ack.group_errors)


def test_mixed_999_fixture() -> None:
    (ack,) = read_999(MIXED.encode())
    assert (ack.functional_id, ack.group_control_number, ack.version) == ("HC", "101", "005010X222A1")
    assert (ack.status, ack.included, ack.received, ack.accepted_count, ack.group_errors) == ("P", 3, 3, 1, [])
    accepted, rejected, miscounted = ack.sets
    assert (accepted.control_number, accepted.status, accepted.issues) == ("0001", "A", [])
    assert rejected.status == "R"
    assert [(i.segment_id, i.position, i.element, i.component, i.code, i.loop_id) for i in rejected.issues] == [
        ("NM1", 8, 9, None, "I12", "2010"),
        ("NM1", 8, 3, 1, "7", "2010"),
        ("HI", 21, None, None, "2", "2300"),
    ]  # IK3 code 8 is implied by its IK4s; IK5 code 5 by the IK3s
    assert {i.control_number for i in rejected.issues} == {"0002"}
    assert [(i.segment_id, i.code) for i in miscounted.issues] == [("SE", "4")]
    assert rejected.issues[0].message == "implementation pattern match failure"


def test_component_positions_use_the_interchange_separator() -> None:
    text = MIXED.replace("IK4*3:1", "IK4*3>1").replace("*T*:~", "*T*>~").replace("CTX*CLM01:", "CTX*CLM01>")
    (ack,) = read_999(text.encode())
    assert (ack.sets[1].issues[1].element, ack.sets[1].issues[1].component) == (3, 1)


def test_group_errors_come_from_ak905_onwards() -> None:
    text = MIXED.replace("AK9*P*3*3*1", "AK9*R*3*3*0*4*5")
    text = text.replace("IK5*A~", "IK5*R*5~")
    (ack,) = read_999(text.encode())
    assert (ack.status, ack.group_errors) == ("R", ["4", "5"])
    assert [(i.segment_id, i.code) for i in ack.sets[0].issues] == [("SE", "5")]  # kept: no IK3 says which


codes = st.sampled_from(["1", "2", "3", "7", "8", "I4"])
element_codes = st.sampled_from(["1", "4", "6", "7", "8", "I12"])
segment_issues = st.builds(
    issue,
    segment=st.sampled_from(["NM1", "CLM", "HI", "SV1"]),
    position=st.integers(min_value=2, max_value=500),
    code=codes,
    loop_id=st.none() | st.sampled_from(["2010", "2300", "2400"]),
)
element_issues = st.builds(
    issue,
    segment=st.sampled_from(["NM1", "CLM"]),
    position=st.integers(min_value=2, max_value=500),
    code=element_codes,
    element=st.integers(min_value=1, max_value=12),
    component=st.none() | st.integers(min_value=1, max_value=4),
)
set_codes = st.lists(st.sampled_from(["2", "3", "4"]), max_size=2, unique=True)


@st.composite
def set_acks(draw: st.DrawFn, number: int) -> SetAck:
    found = draw(st.lists(segment_issues | element_issues, max_size=4))
    found += [issue("SE", 1, code) for code in draw(set_codes)]
    status: Literal["A", "E", "R"] = "R" if found else draw(st.sampled_from(["A", "E"]))
    return SetAck(
        transaction_code="837",
        control_number=f"{number:04d}",
        implementation="005010X222A1",
        status=status,
        issues=found,
    )


@settings(max_examples=int(os.environ.get("X12_PROPERTY_EXAMPLES", "60")), deadline=None)
@given(
    data=st.data(),
    delimiters=st.sampled_from([None, Delimiters(element="|", repetition="^", component=">", segment="\n")]),
)
def test_any_functional_ack_survives_the_999_writer(data: st.DataObject, delimiters: Delimiters | None) -> None:
    sets = [data.draw(set_acks(n)) for n in range(1, data.draw(st.integers(min_value=1, max_value=4)) + 1)]
    # issues on one segment position are written as one IK3: keep positions distinct per set
    sets = [
        s for s in sets if len({(i.segment_id, i.position) for i in s.issues}) == len({i.position for i in s.issues})
    ]
    if not sets:
        return
    ack = functional_ack("HC", "77", "005010X222A1", sets)
    expected = functional_ack("HC", "77", "005010X222A1", [_as_999_says(s) for s in sets])
    options = {"delimiters": delimiters} if delimiters else {}
    written = write_999([ack], envelope=ENVELOPE, control=ControlNumbers(interchange=5, group=5), **options)  # type: ignore[arg-type]
    assert [shape(found) for found in read_999(written.data)] == [shape(expected)]


def _as_999_says(found: SetAck) -> SetAck:
    """IK304 ``8`` means "segment has data element errors": beside element issues in the same IK3
    group (segment, position, loop) it is the IK3 their IK4s need, and reads back as those issues
    alone (hypothesis found such pairs). A second ``8`` in the group is an IK3 of its own."""
    with_elements = {(i.segment_id, i.position, i.loop_id) for i in found.issues if i.element is not None}
    kept, absorbed = [], set()
    for i in found.issues:
        group = (i.segment_id, i.position, i.loop_id)
        if i.element is None and i.code == "8" and group in with_elements and group not in absorbed:
            absorbed.add(group)
            continue
        kept.append(i)
    return msgspec.structs.replace(found, issues=kept)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("AK9*P*3*3*1~\nSE*15", "SE*14", "no AK9"),
        ("IK3*NM1*8*2010*8~\n", "", "out of place"),
        ("AK1*HC*101*005010X222A1~\n", "", "starts with AK1"),
        ("IK5*A~", "IK5*Q~", "IK501"),
        ("AK9*P*3*3*1", "AK9*P*3*x*1", "AK903"),
        ("SE*15*0001", "SE*14*0001", "SE01"),
        ("ST*999*0001*005010X231A1", "ST*835*0001*005010X221A1", "not an 999"),
    ],
)
def test_a_broken_999_is_refused(old: str, new: str, message: str) -> None:
    with pytest.raises(X12Error, match=message):
        read_999(MIXED.replace(old, new).encode())
