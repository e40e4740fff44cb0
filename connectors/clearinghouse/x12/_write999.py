"""Functional acknowledgements to one 999 (005010X231A1) interchange.

One transaction set per acknowledged functional group (AK1 ... AK9), one AK2 ... IK5 loop per
acknowledged transaction set. Issues become:

- ``IK3`` (segment id, position in the set, loop id when known and it fits IK303's four characters,
  IK304 code) for a segment problem; a segment "id" that has no segment id's form is input text (a
  delimiter inside a value split it there) and is not repeated: IK301 (mandatory) says ``UNK``;
  an issue with an ``element`` becomes an ``IK4`` (position ``element:component``, IK403 code)
  under an IK3 with IK304 ``8`` (segment has data element errors). Issues about one segment share
  one IK3.
- issues on the ``ST``/``SE`` envelope segments without an element are transaction-set errors:
  their codes go to ``IK502``-``IK506`` (the reader reports SE count and control mismatches so).

IK402 (data element reference number) and IK404 (copy of the bad element) are left empty: the
second is the value itself and may be PHI, and a 999 is routinely logged and forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

from connectors.clearinghouse.x12._model import (
    DEFAULT_DELIMITERS,
    Delimiters,
    FunctionalAck,
    SegmentIssue,
    SetAck,
)
from connectors.clearinghouse.x12._writer import (
    ControlCounter,
    ControlNumbers,
    Envelope,
    FunctionalGroup,
    Segment,
    TransactionSet,
    WrittenInterchange,
    build_interchange,
    is_segment_id,
    seg,
)

__all__ = ["IMPLEMENTATION_999", "ack_transaction", "functional_ack", "write_999"]

IMPLEMENTATION_999 = "005010X231A1"
_ENVELOPE_SEGMENTS = ("ST", "SE")
_MAX_CODES = 5  # IK502-IK506 and AK905-AK909
# IK301 for a segment whose "id" is input text: a segment id's form (so the 999 stays valid) that
# names no X12 segment.
UNKNOWN_SEGMENT_ID = "UNK"
_MAX_LOOP_ID = 4  # IK303 is element 447, AN 1-4: "2300" fits, "2010BA" does not and is left out


def functional_ack(
    functional_id: str,
    group_control_number: str,
    version: str,
    sets: Sequence[SetAck],
    *,
    included: int | None = None,
    group_errors: Sequence[str] = (),
) -> FunctionalAck:
    """A ``FunctionalAck`` with AK901 and the AK902-AK904 counts worked out from ``sets``.

    ``included`` is the acknowledged group's GE01 when it differs from the sets actually received.
    ``group_errors`` (AK905 codes) reject the whole group: AK904 is then 0.
    """
    accepted = [ack for ack in sets if ack.accepted]
    status: Literal["A", "E", "P", "R"]
    if group_errors or not accepted:
        status = "R"
    elif len(accepted) < len(sets):
        status = "P"
    elif all(ack.status == "A" for ack in sets):
        status = "A"
    else:
        status = "E"
    return FunctionalAck(
        functional_id=functional_id,
        group_control_number=group_control_number,
        version=version,
        status=status,
        sets=list(sets),
        included=len(sets) if included is None else included,
        received=len(sets),
        accepted_count=0 if group_errors else len(accepted),
        group_errors=list(group_errors),
    )


def _counts(ack: FunctionalAck) -> tuple[int, int, int]:
    """AK902-AK904; computed from the sets when there are any, and checked against the ack."""
    if ack.group_errors and ack.status != "R":
        raise ValueError("a group with AK905 syntax errors must be rejected (AK901 R)")
    if not ack.sets:
        return ack.included, ack.received, ack.accepted_count
    received = len(ack.sets)
    # A group rejected for a group-level error (AK905) accepts none of its sets, whatever their IK5.
    accepted = 0 if ack.group_errors else sum(1 for s in ack.sets if s.accepted)
    if ack.received not in (0, received):
        raise ValueError(f"AK903 says {ack.received} sets received but {received} set acks are given")
    if ack.accepted_count not in (0, accepted):
        raise ValueError(f"AK904 says {ack.accepted_count} sets accepted but {accepted} set acks accept")
    if ack.status in ("A", "E") and accepted < received:
        raise ValueError(f"AK901 {ack.status} but {received - accepted} transaction sets were not accepted")
    if ack.status == "R" and accepted:
        raise ValueError("AK901 R (group rejected) but some transaction sets were accepted")
    return ack.included or received, received, accepted


def _segment_loops(issues: Iterable[SegmentIssue]) -> list[Segment]:
    """IK3 (and its IK4s) per segment in error, in the order the segments were first reported."""
    grouped: dict[tuple[str, int, str | None], list[SegmentIssue]] = {}
    for issue in issues:
        grouped.setdefault((issue.segment_id, issue.position, issue.loop_id), []).append(issue)
    segments: list[Segment] = []
    for (tag, position, found_loop), found in grouped.items():
        # The reader takes a segment's id from the input: where a delimiter turned up inside a value
        # (a segment terminator in a patient's name), the "id" is that value's text, which is not
        # repeated. IK301 is mandatory, so it says UNKNOWN_SEGMENT_ID then; IK302 and IK304 still say
        # where and what.
        segment_id = tag if is_segment_id(tag) else UNKNOWN_SEGMENT_ID
        loop_id = found_loop if found_loop and len(found_loop) <= _MAX_LOOP_ID else None
        segment_codes = [issue.code for issue in found if issue.element is None]
        element_issues = [issue for issue in found if issue.element is not None]
        # The IK3 over IK4s says "8" (segment has data element errors) when that is among its codes:
        # another code there would stand for the element errors and leave "8" an IK3 of its own.
        if element_issues and "8" in segment_codes:
            segment_codes.remove("8")
            first_code = "8"
        else:
            first_code = segment_codes.pop(0) if segment_codes else "8"
        segments.append(seg("IK3", segment_id, str(position), loop_id, first_code))
        for issue in element_issues:
            where = (str(issue.element), str(issue.component) if issue.component else "")
            segments.append(seg("IK4", where, None, issue.code))  # IK402/IK404 stay empty: no PHI
        segments += [seg("IK3", segment_id, str(position), loop_id, code) for code in segment_codes]
    return segments


def _set_loop(ack: SetAck) -> list[Segment]:
    envelope_codes = [
        issue.code for issue in ack.issues if issue.segment_id in _ENVELOPE_SEGMENTS and issue.element is None
    ]
    inner = [issue for issue in ack.issues if not (issue.segment_id in _ENVELOPE_SEGMENTS and issue.element is None)]
    codes = list(dict.fromkeys(envelope_codes))
    if inner and ack.status != "A" and "5" not in codes:
        codes.append("5")  # one or more segments in error
    return [
        seg("AK2", ack.transaction_code, ack.control_number, ack.implementation),
        *_segment_loops(inner),
        seg("IK5", ack.status, *codes[:_MAX_CODES]),
    ]


def ack_transaction(ack: FunctionalAck) -> TransactionSet:
    """The body of one 999 transaction set: AK1, an AK2 loop per set, AK9."""
    included, received, accepted = _counts(ack)
    body = [seg("AK1", ack.functional_id, ack.group_control_number, ack.version)]
    for set_ack in ack.sets:
        body += _set_loop(set_ack)
    body.append(seg("AK9", ack.status, str(included), str(received), str(accepted), *ack.group_errors[:_MAX_CODES]))
    return TransactionSet("999", IMPLEMENTATION_999, body, key=ack.group_control_number)


def write_999(
    acks: Sequence[FunctionalAck],
    *,
    envelope: Envelope,
    control: ControlNumbers | ControlCounter,
    created: datetime | None = None,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    newline: bool = False,
    interchange_acks: Sequence[Segment] = (),
) -> WrittenInterchange:
    """One 999 interchange (GS01 ``FA``): a transaction set per acknowledged functional group.

    ``envelope`` is the acknowledgement's own (usually ``received_envelope.reply()``);
    ``interchange_acks`` are TA1s for received interchanges that asked for one (ISA14 ``1``).
    """
    if not acks:
        raise ValueError("a 999 needs at least one functional group to acknowledge")
    numbers = control.next() if isinstance(control, ControlCounter) else control
    sets = [ack_transaction(ack) for ack in acks]
    return build_interchange(
        [FunctionalGroup("FA", IMPLEMENTATION_999, sets)],
        envelope=envelope,
        control=numbers,
        created=(created or datetime.now(UTC)),
        delimiters=delimiters,
        newline=newline,
        interchange_acks=interchange_acks,
    )
