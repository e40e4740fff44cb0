"""Raw X12 835 remittance files in: each accepted transaction set becomes a canonical Remittance;
a 999 acknowledges the interchange (accepted, or rejected with IK3/IK4 naming segment and element).

Problems name segment positions and codes only: an 835 is full of patient names.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from canonical.v1 import BalancingFinding
from connectors.clearinghouse.x12 import (
    ControlNumbers,
    Read835,
    SegmentIssue,
    X12Error,
    accepted_ta1,
    acknowledge,
    is_segment_id,
    read_835,
    reply_envelope,
    write_999,
)
from gateway.problems import FieldError, ProblemError

__all__ = ["X12_MEDIA_TYPE", "AckRecord", "IngestedSet", "RejectedSet", "X12Ingest", "ingest_835"]

X12_MEDIA_TYPE = "application/edi-x12"


class IngestedSet(msgspec.Struct, kw_only=True, frozen=True):
    control_number: str
    remittance_id: str
    href: str
    claims: int
    findings: list[BalancingFinding]


class RejectedSet(msgspec.Struct, kw_only=True, frozen=True):
    control_number: str
    issues: list[SegmentIssue]


class AckRecord(msgspec.Struct, kw_only=True, frozen=True):
    """What the hub keeps of a received interchange: the 999 it answered with, and the outcome."""

    id: str
    interchange_control_number: str
    ack_999: str
    accepted: list[IngestedSet]
    rejected: list[RejectedSet]


class X12Ingest(msgspec.Struct, kw_only=True):
    ack: AckRecord
    remittances: list[tuple[str, Read835]]  # (remittance id, the accepted set)
    refused: ProblemError | None = None  # no set could be accepted: the answer, beside the 999 rejecting them


_UNRECOGNISED = "unrecognised"


def _shown(issue: SegmentIssue) -> SegmentIssue:
    """An issue as the hub's answers may show it. Its segment id is taken from the input: where a
    delimiter turned up inside a value (a segment terminator in a patient's name), the "id" is that
    value's text, which can be PHI; anything that is not a segment id is not repeated."""
    tag = issue.segment_id
    if is_segment_id(tag):
        return issue
    message = issue.message.replace(tag, _UNRECOGNISED) if tag else issue.message
    return msgspec.structs.replace(issue, segment_id=_UNRECOGNISED, message=message)


def _issues_problem(reads: list[Read835]) -> ProblemError:
    issues = [_shown(i) for read in reads for i in (*read.issues, *read.group.issues)][:20]
    errors = [
        FieldError(path=f"segment {i.position} ({i.segment_id})", message=f"{i.code}: {i.message}") for i in issues
    ]
    return ProblemError(422, "rejected-x12", "no transaction set of the 835 could be accepted", errors=errors)


def ingest_835(body: bytes, new_id: Callable[[str], str], control: ControlNumbers) -> X12Ingest:
    """Read and acknowledge (the 999 with ``control``). Raises ProblemError for input no 999 can
    answer; input whose every set is rejected is acknowledged all the same (the 999 tells the
    payer), with the problem to answer in ``refused``."""
    try:
        reads = read_835(body)
    except X12Error as exc:
        issue = _shown(exc.issue)
        raise ProblemError(
            400,
            "malformed-x12",
            f"segment {issue.position} ({issue.segment_id}): {issue.message}",
            errors=[FieldError(path=f"segment {issue.position} ({issue.segment_id})", message=issue.message)],
        ) from None
    if not reads:
        raise ProblemError(400, "malformed-x12", "the interchange holds no 835 transaction set")
    isa = reads[0].envelope.group.interchange
    asked = {r.envelope.group.interchange.position: r.envelope.group.interchange for r in reads}
    try:
        ack_999 = write_999(
            acknowledge(reads),
            envelope=reply_envelope(reads[0].envelope.group),
            control=control,
            interchange_acks=[accepted_ta1(i) for i in asked.values() if i.acknowledgment_requested],
        ).text
    except ValueError:
        # The 999 echoes identifiers (sender and receiver, control numbers, the ids of bad segments);
        # one holding a character outside the X12 set, or one of the 999's delimiters, cannot be
        # written back: the interchange is not X12 enough to acknowledge.
        raise ProblemError(
            400,
            "malformed-x12",
            "the interchange holds an identifier with characters outside the X12 character set "
            "(or X12 delimiters), which no 999 can acknowledge",
        ) from None
    remittances: list[tuple[str, Read835]] = []
    accepted, rejected = [], []
    for read in reads:
        if not read.accepted or read.remittance is None:
            # A set rejected with its group (a GE that miscounts) has no issue of its own: the group's say why.
            issues = [_shown(i) for i in (*read.issues, *read.group.issues)]
            rejected.append(RejectedSet(control_number=read.envelope.control_number, issues=issues))
            continue
        remittance_id = new_id("rmt")
        remittances.append((remittance_id, read))
        accepted.append(
            IngestedSet(
                control_number=read.envelope.control_number,
                remittance_id=remittance_id,
                href=f"/v1/remittances/{remittance_id}",
                claims=len(read.remittance.claims),
                findings=read.findings,
            )
        )
    ack = AckRecord(
        id=new_id("ack"),
        interchange_control_number=isa.control_number,
        ack_999=ack_999,
        accepted=accepted,
        rejected=rejected,
    )
    return X12Ingest(ack=ack, remittances=remittances, refused=None if remittances else _issues_problem(reads))
