"""What the readers found, as the ``FunctionalAck`` values a 999 is written from.

Any per-set result with ``envelope``, ``issues`` (errors: the set is rejected, IK5 ``R``) and
``warnings`` (noted: accepted with errors, IK5 ``E``) can be acknowledged: a ``Read835``, a
``RemittanceTrailer`` from the stream, a ``Read277``, ``Read837`` or ``Read276``. Group checks come
from ``GroupEnd`` items (streamed) or the ``group`` a collected result carries; their codes become
AK905 ``group_errors`` and reject the group with every set in it, since AK904 counts no accepted
set in a rejected group.

Positions are turned from input ordinals into what IK302 counts: the position within the set, ST
being 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

import msgspec

from connectors.clearinghouse.x12._envelope import GroupEnd, GroupHeader, SetEnvelope
from connectors.clearinghouse.x12._model import FunctionalAck, SegmentIssue, SetAck
from connectors.clearinghouse.x12._write999 import functional_ack

__all__ = ["SetOutcome", "acknowledge", "set_ack"]


class SetOutcome(Protocol):
    """Any reader's result for one transaction set."""

    @property
    def envelope(self) -> SetEnvelope: ...

    @property
    def issues(self) -> list[SegmentIssue]: ...

    @property
    def warnings(self) -> list[SegmentIssue]: ...


def _in_set(issue: SegmentIssue, envelope: SetEnvelope) -> SegmentIssue:
    return msgspec.structs.replace(
        issue,
        position=max(issue.position - envelope.position + 1, 1),
        control_number=envelope.control_number,
    )


def set_ack(outcome: SetOutcome, *, rejected: bool = False) -> SetAck:
    """IK5 ``R`` when the set has issues (or ``rejected``), ``E`` with only warnings, else ``A``."""
    envelope = outcome.envelope
    status: Literal["A", "E", "R"] = "R" if outcome.issues or rejected else "E" if outcome.warnings else "A"
    return SetAck(
        transaction_code=envelope.transaction_code,
        control_number=envelope.control_number,
        implementation=envelope.implementation,
        status=status,
        issues=[_in_set(issue, envelope) for issue in (*outcome.issues, *outcome.warnings)],
    )


class _Group:
    __slots__ = ("end", "header", "sets")

    def __init__(self, header: GroupHeader) -> None:
        self.header = header
        self.sets: list[SetOutcome] = []
        self.end: GroupEnd | None = None


def acknowledge(items: Iterable[SetOutcome | GroupEnd]) -> list[FunctionalAck]:
    """One ``FunctionalAck`` per functional group met in ``items``, in input order."""
    groups: dict[tuple[str, int], _Group] = {}

    def group_of(header: GroupHeader) -> _Group:
        key = (header.interchange.control_number, header.position)
        if key not in groups:
            groups[key] = _Group(header)
        return groups[key]

    for item in items:
        if isinstance(item, GroupEnd):
            group_of(item.group).end = item
            continue
        group = group_of(item.envelope.group)
        group.sets.append(item)
        end = getattr(item, "group", None)
        if isinstance(end, GroupEnd):
            group.end = end
    acks = []
    for group in groups.values():
        errors = list(dict.fromkeys(issue.code for issue in group.end.issues)) if group.end else []
        sets = [set_ack(outcome, rejected=bool(errors)) for outcome in group.sets]
        declared = group.end.declared_count if group.end else None
        acks.append(
            functional_ack(
                group.header.functional_id,
                group.header.control_number,
                group.header.version,
                sets,
                included=declared,
                group_errors=errors,
            )
        )
    return acks
