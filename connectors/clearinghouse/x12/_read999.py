"""999 implementation acknowledgements (005010X231A1) to ``FunctionalAck`` values.

One ``FunctionalAck`` per AK1..AK9 (one per 999 transaction set), with a ``SetAck`` per AK2..IK5.
Problems map back the way the 999 writer maps them out:

- IK3 alone: a segment issue (``element`` None, IK304 code, IK303 loop id).
- IK4 under an IK3: an element issue on that segment (IK401 position ``element:component``, IK403
  code); the IK3 is then implied unless its IK304 says something other than ``8``.
- IK502..IK506: set-level codes, as issues without a position in the set (``position`` 1, on ST
  for codes about the header, on SE for trailer and count codes); ``5``/``I5`` ("segments in
  error") is left out when IK3s already say which.
- AK905..AK909: ``FunctionalAck.group_errors``.

A 999 is machine-written; one with a broken envelope or out-of-order loops is refused with
``X12Error`` rather than half-read.
"""

from __future__ import annotations

from typing import Literal, cast

from connectors.clearinghouse.x12._envelope import EnvelopeReader, GroupEnd, TransactionSet, wrong_transaction
from connectors.clearinghouse.x12._lexer import CHUNK_SIZE, Source
from connectors.clearinghouse.x12._model import FunctionalAck, SegmentIssue, SetAck, X12Error

__all__ = ["read_999"]

_SET_STATUSES = frozenset({"A", "E", "M", "R", "W", "X"})
_GROUP_STATUSES = frozenset({"A", "E", "P", "R", "M", "W", "X"})
_HEADER_CODES = frozenset({"1", "6", "7", "23", "I6"})
_DERIVED = frozenset({"5", "I5"})
_SEGMENT_CODES = {
    "1": "unrecognized segment id",
    "2": "unexpected segment",
    "3": "required segment missing",
    "4": "loop occurs over maximum times",
    "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set",
    "7": "segment not in proper sequence",
    "8": "segment has data element errors",
    "I4": "implementation 'not used' segment present",
    "I6": "implementation dependent segment missing",
    "I7": "implementation loop occurs under minimum times",
    "I8": "implementation segment below minimum use",
    "I9": "implementation dependent 'not used' segment present",
}
_ELEMENT_CODES = {
    "1": "required data element missing",
    "2": "conditional required data element missing",
    "3": "too many data elements",
    "4": "data element too short",
    "5": "data element too long",
    "6": "invalid character in data element",
    "7": "invalid code value",
    "8": "invalid date",
    "9": "invalid time",
    "10": "exclusion condition violated",
    "12": "too many repetitions",
    "13": "too many components",
    "I6": "code value not used in implementation",
    "I9": "implementation dependent data element missing",
    "I10": "implementation 'not used' data element present",
    "I11": "implementation too few repetitions",
    "I12": "implementation pattern match failure",
    "I13": "implementation dependent 'not used' data element present",
}


def _field(segment: list[str], index: int) -> str:
    return segment[index] if index < len(segment) else ""


def _count(segment: list[str], index: int, tset: TransactionSet) -> int:
    text = _field(segment, index)
    if not (text.isdigit() and text.isascii()):
        raise _refuse(tset, segment, f"{segment[0]}{index:02d} must be a number", index)
    return int(text)


def _refuse(tset: TransactionSet, segment: list[str], message: str, element: int | None = None) -> X12Error:
    return X12Error(
        SegmentIssue(
            segment_id=segment[0],
            position=tset.locate(segment),
            element=element,
            code="7" if element else "2",
            message=message,
            control_number=tset.envelope.control_number,
        )
    )


class _SetLoop:
    """AK2 .. IK5 being read."""

    def __init__(self, ak2: list[str], separator: str) -> None:
        self.ak2 = ak2
        self.separator = separator
        self.issues: list[SegmentIssue] = []
        self.ik3: list[str] | None = None
        self.ik3_has_ik4 = False

    def close_ik3(self) -> None:
        ik3 = self.ik3
        if ik3 is not None and (not self.ik3_has_ik4 or _field(ik3, 4) != "8"):
            code = _field(ik3, 4)
            self.issues.append(
                SegmentIssue(
                    segment_id=_field(ik3, 1),
                    position=int(_field(ik3, 2)) if _field(ik3, 2).isdigit() else 0,
                    code=code,
                    message=_SEGMENT_CODES.get(code, f"segment error {code}"),
                    control_number=_field(self.ak2, 2),
                    loop_id=_field(ik3, 3) or None,
                )
            )
        self.ik3, self.ik3_has_ik4 = None, False

    def ik4(self, ik4: list[str]) -> None:
        assert self.ik3 is not None
        where = _field(ik4, 1).split(self.separator)
        code = _field(ik4, 3)
        self.issues.append(
            SegmentIssue(
                segment_id=_field(self.ik3, 1),
                position=int(_field(self.ik3, 2)) if _field(self.ik3, 2).isdigit() else 0,
                element=int(where[0]) if where[0].isdigit() else None,
                component=int(where[1]) if len(where) > 1 and where[1].isdigit() else None,
                code=code,
                message=_ELEMENT_CODES.get(code, f"data element error {code}"),
                control_number=_field(self.ak2, 2),
                loop_id=_field(self.ik3, 3) or None,
            )
        )
        self.ik3_has_ik4 = True

    def finish(self, ik5: list[str]) -> SetAck:
        self.close_ik3()
        codes = [code for code in ik5[2:7] if code]
        if self.issues:
            codes = [code for code in codes if code not in _DERIVED]
        for code in codes:
            self.issues.append(
                SegmentIssue(
                    segment_id="ST" if code in _HEADER_CODES else "SE",
                    position=1,
                    code=code,
                    message=f"transaction set syntax error {code}",
                    control_number=_field(self.ak2, 2),
                )
            )
        return SetAck(
            transaction_code=_field(self.ak2, 1),
            control_number=_field(self.ak2, 2),
            implementation=_field(self.ak2, 3) or None,
            status=cast(Literal["A", "E", "M", "R", "W", "X"], ik5[1]),
            issues=self.issues,
        )


def _read_set(tset: TransactionSet) -> FunctionalAck:  # noqa: PLR0912 - one branch per 999 segment
    if tset.envelope.transaction_code != "999":
        raise wrong_transaction(tset.envelope, "999")
    ak1: list[str] | None = None
    loop: _SetLoop | None = None
    sets: list[SetAck] = []
    ack: FunctionalAck | None = None
    for segment in tset:
        tag = segment[0]
        if ack is not None:
            raise _refuse(tset, segment, "nothing may follow AK9 in a 999")
        if tag == "AK1":
            if ak1 is not None or len(segment) < 3:
                raise _refuse(tset, segment, "a 999 has one AK1 with AK101 and AK102")
            ak1 = segment
        elif ak1 is None:
            raise _refuse(tset, segment, "a 999 starts with AK1")
        elif tag == "AK2":
            if loop is not None:
                raise _refuse(tset, segment, "AK2 before the IK5 of the previous set")
            loop = _SetLoop(segment, tset.envelope.group.interchange.delimiters.component)
        elif tag == "IK3" and loop is not None:
            loop.close_ik3()
            loop.ik3 = segment
        elif tag == "IK4" and loop is not None and loop.ik3 is not None:
            loop.ik4(segment)
        elif tag == "CTX":
            pass
        elif tag == "IK5" and loop is not None:
            if _field(segment, 1) not in _SET_STATUSES:
                raise _refuse(tset, segment, "IK501 is not an acknowledgement code", 1)
            sets.append(loop.finish(segment))
            loop = None
        elif tag == "AK9" and loop is None:
            if _field(segment, 1) not in _GROUP_STATUSES:
                raise _refuse(tset, segment, "AK901 is not an acknowledgement code", 1)
            ack = FunctionalAck(
                functional_id=ak1[1],
                group_control_number=ak1[2],
                version=_field(ak1, 3),
                status=cast(Literal["A", "E", "P", "R", "M", "W", "X"], segment[1]),
                sets=sets,
                included=_count(segment, 2, tset),
                received=_count(segment, 3, tset),
                accepted_count=_count(segment, 4, tset),
                group_errors=[code for code in segment[5:10] if code],
            )
        else:
            raise _refuse(tset, segment, f"{tag} is out of place in a 999")
    if tset.issues:
        raise X12Error(tset.issues[0])
    if ack is None:
        raise X12Error(
            SegmentIssue(
                segment_id="AK9",
                position=tset.envelope.position + tset.segment_count - 1,
                code="3",
                message="the 999 has no AK9",
                control_number=tset.envelope.control_number,
            )
        )
    return ack


def read_999(source: Source, *, chunk_size: int = CHUNK_SIZE) -> list[FunctionalAck]:
    """The functional acknowledgements in a 999 interchange, in order."""
    acks: list[FunctionalAck] = []
    for item in EnvelopeReader(source, chunk_size):
        if isinstance(item, GroupEnd):
            if item.issues:
                raise X12Error(item.issues[0])
        else:
            acks.append(_read_set(item))
    return acks
