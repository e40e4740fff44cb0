"""Values shared by the X12 reader and writer: delimiters, positions, problems, acknowledgements.

The reader and the writer are separate modules; they meet here so that an acknowledgement read from
a 999 and one written for a received 835 are the same Struct, and a problem found while reading names
its place the way a 999 IK3/IK4 does (segment position within the transaction set, element position).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "DEFAULT_DELIMITERS",
    "Delimiters",
    "FunctionalAck",
    "SegmentIssue",
    "SetAck",
    "X12Error",
]


class Delimiters(msgspec.Struct, frozen=True, kw_only=True):
    """Read from each ISA (element at byte 3, ISA11 repetition, ISA16 component, then terminator)."""

    element: str
    repetition: str
    component: str
    segment: str


DEFAULT_DELIMITERS = Delimiters(element="*", repetition="^", component=":", segment="~")


class SegmentIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem, located as a 999 locates it. No element *values* here: they may be PHI."""

    segment_id: str
    position: int  # 1-based segment ordinal in the file (reader) or in the set (IK301 in a 999)
    element: int | None = None  # IK401 element position, 1-based
    component: int | None = None
    code: str  # IK304 segment syntax error code, or IK403 element error code
    message: str
    control_number: str | None = None  # ST02 of the transaction set it belongs to, when known
    loop_id: str | None = None  # IK303 loop identifier (e.g. "2010BA"), when the finder knows it


class X12Error(ValueError):
    """The input is not an X12 interchange we can read (broken envelope, truncated, wrong type).

    Always carries where: ``issue.position`` and ``issue.segment_id``. Never carries element values.
    """

    def __init__(self, issue: SegmentIssue) -> None:
        super().__init__(f"segment {issue.position} ({issue.segment_id}): {issue.message}")
        self.issue = issue


class SetAck(msgspec.Struct, frozen=True, kw_only=True):
    """AK2/IK2.../IK5 for one transaction set."""

    transaction_code: str  # ST01, e.g. "835"
    control_number: str  # ST02
    implementation: str | None = None  # ST03, e.g. "005010X221A1"
    status: Literal["A", "E", "M", "R", "W", "X"]  # IK501: accepted, accepted w/ errors, rejected...
    issues: list[SegmentIssue] = []

    @property
    def accepted(self) -> bool:
        return self.status in ("A", "E")


class FunctionalAck(msgspec.Struct, frozen=True, kw_only=True):
    """AK1...AK9 for one functional group: what a 999 says about a group we sent or received."""

    functional_id: str  # GS01 of the acknowledged group, e.g. "HP" for 835, "HC" for 837
    group_control_number: str  # GS06 of the acknowledged group
    version: str  # GS08, e.g. "005010X221A1"
    status: Literal["A", "E", "P", "R", "M", "W", "X"]  # AK901
    sets: list[SetAck] = []
    included: int = 0  # AK902
    received: int = 0  # AK903
    accepted_count: int = 0  # AK904
    group_errors: list[str] = []  # AK905-AK909 functional group syntax error codes (at most five)
