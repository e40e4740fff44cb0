"""999 (005010X231A1) writer: acknowledging received 835 and 837 groups, accepted or rejected."""

from __future__ import annotations

import pytest
from factories import CONTROL, CREATED, ENVELOPE, set_bodies, split
from pyx12_check import validate

from connectors.clearinghouse.x12._model import FunctionalAck, SegmentIssue, SetAck
from connectors.clearinghouse.x12._write999 import functional_ack, write_999

REPLY = ENVELOPE.reply()
PHI_VALUE = "19801315"  # what was in the bad element: must never be copied into the 999


def set_ack(number: str, status: str = "A", issues: list[SegmentIssue] | None = None, code: str = "837") -> SetAck:
    version = "005010X222A1" if code == "837" else "005010X221A1"
    return SetAck(
        transaction_code=code,
        control_number=number,
        implementation=version,
        status=status,
        issues=issues or [],
    )  # type: ignore[arg-type]


def issue(segment: str, position: int, code: str, element: int | None = None, **extra: object) -> SegmentIssue:
    return SegmentIssue(
        segment_id=segment,
        position=position,
        element=element,
        code=code,
        message=f"problem with value {PHI_VALUE}",
        **extra,  # type: ignore[arg-type]
    )


def write(acks: list[FunctionalAck], **kwargs: object) -> str:
    options: dict[str, object] = {"envelope": REPLY, "control": CONTROL, "created": CREATED}
    options.update(kwargs)
    return write_999(acks, **options).text  # type: ignore[arg-type]


ACCEPTED_835 = """\
ST*999*0001*005010X231A1~
AK1*HP*7001*005010X221A1~
AK2*835*0001*005010X221A1~
IK5*A~
AK9*A*1*1*1~
SE*6*0001~
"""

REJECTED_837 = """\
ST*999*0001*005010X231A1~
AK1*HC*101*005010X222A1~
AK2*837*0001*005010X222A1~
IK5*A~
AK2*837*0002*005010X222A1~
IK3*DMG*17*2300*8~
IK4*2**8~
IK4*3**7~
IK3*NM1*9**3~
IK3*REF*12**I6~
IK3*REF*12**2~
IK5*R*4*5~
AK9*P*2*2*1~
SE*14*0001~
"""


def test_exact_999_accepting_an_835():
    ack = functional_ack("HP", "7001", "005010X221A1", [set_ack("0001", code="835")])
    lines = write([ack], newline=True).splitlines(keepends=True)
    assert "".join(lines[2:-2]) == ACCEPTED_835
    assert lines[1] == "GS*FA*CLEARINGHOUSE*HUBSENDER*20240305*1430*101*X*005010X231A1~\n"


def test_exact_999_rejecting_one_837_set_with_segment_and_element_errors():
    issues = [
        issue("DMG", 17, "8", element=2, loop_id="2300"),
        issue("NM1", 9, "3"),
        issue("DMG", 17, "7", element=3, loop_id="2300"),
        issue("REF", 12, "I6"),
        issue("REF", 12, "2"),
        issue("SE", 31, "4"),  # an SE count mismatch is a transaction-set error: IK502
    ]
    ack = functional_ack("HC", "101", "005010X222A1", [set_ack("0001"), set_ack("0002", "R", issues)])
    text = write([ack], newline=True)
    assert "".join(text.splitlines(keepends=True)[2:-2]) == REJECTED_837
    assert PHI_VALUE not in text
    assert "problem with value" not in text
    result = validate(text)
    assert result.valid, result.summary()


def test_ik4_never_copies_the_bad_value():
    ack = functional_ack(
        "HC", "101", "005010X222A1", [set_ack("0001", "R", [issue("NM1", 5, "6", element=9, component=2)])]
    )
    ik4 = next(s for s in split(write([ack])) if s[0] == "IK4")
    assert ik4 == ["IK4", "9:2", "", "6"]  # IK402 and IK404 empty


def test_long_loop_ids_are_left_out_of_ik303():
    ack = functional_ack(
        "HC",
        "101",
        "005010X222A1",
        [set_ack("0001", "R", [issue("NM1", 9, "8", element=9, loop_id="2010BA")])],
    )
    ik3 = next(s for s in split(write([ack])) if s[0] == "IK3")
    assert ik3 == ["IK3", "NM1", "9", "", "8"]


@pytest.mark.parametrize(
    ("statuses", "group_errors", "expected"),
    [
        (["A", "A"], (), ("A", 2, 2, 2)),
        (["A", "E"], (), ("E", 2, 2, 2)),
        (["A", "R"], (), ("P", 2, 2, 1)),
        (["R", "R"], (), ("R", 2, 2, 0)),
        (["A"], ("5",), ("R", 1, 1, 0)),
        ([], ("2",), ("R", 0, 0, 0)),
    ],
)
def test_functional_ack_works_out_status_and_counts(statuses, group_errors, expected):
    sets = [set_ack(f"{n:04d}", s) for n, s in enumerate(statuses, start=1)]
    ack = functional_ack("HC", "101", "005010X222A1", sets, group_errors=group_errors)
    assert (ack.status, ack.included, ack.received, ack.accepted_count) == expected


def test_ak9_reports_what_ge01_claimed_and_group_errors():
    ack = functional_ack("HC", "101", "005010X222A1", [set_ack("0001")], included=3, group_errors=["5"])
    ak9 = next(s for s in split(write([ack])) if s[0] == "AK9")
    assert ak9 == ["AK9", "R", "3", "1", "0", "5"]


def test_a_group_rejected_without_set_acks():
    ack = FunctionalAck(
        functional_id="HP", group_control_number="9", version="005010X221A1", status="R", group_errors=["2"]
    )
    body = set_bodies(write([ack]))[0]
    assert [s[0] for s in body] == ["ST", "AK1", "AK9", "SE"]
    assert body[2] == ["AK9", "R", "0", "0", "0", "2"]
    assert validate(write([ack])).valid


def test_one_999_set_per_acknowledged_group():
    acks = [
        functional_ack("HC", "101", "005010X222A1", [set_ack("0001")]),
        functional_ack("HP", "7001", "005010X221A1", [set_ack("0001", code="835")]),
    ]
    written = write_999(acks, envelope=REPLY, control=CONTROL, created=CREATED)
    assert written.set_keys == {"0001": "101", "0002": "7001"}
    bodies = set_bodies(written.text)
    assert [b[1][1:3] for b in bodies] == [["HC", "101"], ["HP", "7001"]]
    assert validate(written.text).valid


@pytest.mark.parametrize(
    ("ack", "message"),
    [
        (
            FunctionalAck(
                functional_id="HC",
                group_control_number="1",
                version="V",
                status="A",
                sets=[set_ack("0001", "R")],
            ),
            "not accepted",
        ),
        (
            FunctionalAck(
                functional_id="HC", group_control_number="1", version="V", status="R", sets=[set_ack("0001")]
            ),
            "some transaction sets were accepted",
        ),
        (
            FunctionalAck(
                functional_id="HC",
                group_control_number="1",
                version="V",
                status="A",
                sets=[set_ack("0001")],
                received=2,
            ),
            "AK903",
        ),
        (
            FunctionalAck(
                functional_id="HC",
                group_control_number="1",
                version="V",
                status="P",
                sets=[set_ack("0001"), set_ack("0002", "R")],
                accepted_count=2,
            ),
            "AK904",
        ),
        (
            FunctionalAck(
                functional_id="HC",
                group_control_number="1",
                version="V",
                status="A",
                sets=[set_ack("0001")],
                group_errors=["5"],
            ),
            "must be rejected",
        ),
    ],
)
def test_inconsistent_acks_are_refused(ack, message):
    with pytest.raises(ValueError, match=message):
        write([ack])


def test_at_least_one_group():
    with pytest.raises(ValueError, match="at least one"):
        write([])


def test_pyx12_rejects_a_broken_999():
    ack = functional_ack("HC", "101", "005010X222A1", [set_ack("0001")])
    text = write([ack])
    assert validate(text).valid
    assert not validate(text.replace("IK5*A~", "IK5*Q~")).valid
    assert not validate(text.replace("AK9*A*1*1*1~", "AK9*A*1*1~")).valid


@pytest.mark.parametrize("tag", ["Doerivera", "qvf", "9QV", "JANE DOE"])
def test_a_segment_id_that_is_no_segment_id_is_not_repeated(tag):
    """Where a delimiter turned up inside a value (a segment terminator in a patient's name), the
    reader's "segment id" is that value's text: the 999 says where (IK302) and what (IK304), not it."""
    ack = functional_ack("HP", "7001", "005010X221A1", [set_ack("0001", "R", [issue(tag, 21, "6")], code="835")])
    text = write([ack])
    assert tag not in text
    ik3 = next(s for s in split(text) if s[0] == "IK3")
    assert ik3 == ["IK3", "UNK", "21", "", "6"]
    assert validate(text).valid  # IK301 is mandatory: an empty one made the 999 invalid
