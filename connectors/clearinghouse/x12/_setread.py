"""What every transaction-set reader shares: collecting problems, and results per functional group.

Readers report a ``ReadError`` against the segment it was found in; ``Problems`` turns it into a
``SegmentIssue`` with the segment's position in the input and the set's control number. Errors go
to ``issues`` (the set is rejected), notes to ``warnings`` (accepted with errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from connectors.clearinghouse.x12._envelope import EnvelopeReader, GroupEnd, TransactionSet
from connectors.clearinghouse.x12._lexer import Source
from connectors.clearinghouse.x12._model import SegmentIssue
from connectors.clearinghouse.x12._values import ReadError

__all__ = ["Problems", "collect_sets"]

T = TypeVar("T")


class Problems:
    """The issues and warnings of one transaction set."""

    def __init__(self, tset: TransactionSet) -> None:
        self.tset = tset
        self.issues: list[SegmentIssue] = []
        self.warnings: list[SegmentIssue] = []

    def report(self, fault: ReadError, segment: list[str], *, warning: bool = False) -> None:
        self.add(
            segment[0],
            self.tset.locate(segment),
            fault.code,
            fault.message,
            element=fault.element,
            component=fault.component,
            warning=warning,
        )

    def short(self, segment: list[str]) -> None:
        """An ``IndexError`` while reading ``segment``: a required element is missing."""
        self.report(ReadError(len(segment), "1", f"{segment[0]} has too few elements"), segment)

    def add(
        self,
        segment_id: str,
        position: int,
        code: str,
        message: str,
        *,
        element: int | None = None,
        component: int | None = None,
        warning: bool = False,
    ) -> None:
        issue = SegmentIssue(
            segment_id=segment_id,
            position=position,
            element=element,
            component=component,
            code=code,
            message=message,
            control_number=self.tset.envelope.control_number,
        )
        (self.warnings if warning else self.issues).append(issue)

    def all_issues(self) -> list[SegmentIssue]:
        """Reader issues, then the envelope's SE checks."""
        return [*self.issues, *self.tset.issues]


def collect_sets(
    source: Source, chunk_size: int, read_set: Callable[[TransactionSet], Callable[[GroupEnd], T]]
) -> list[T]:
    """Read every set with ``read_set``; each result is completed once its group's GE is known."""
    results: list[T] = []
    waiting: list[Callable[[GroupEnd], T]] = []
    for item in EnvelopeReader(source, chunk_size):
        if isinstance(item, GroupEnd):
            results.extend(finish(item) for finish in waiting)
            waiting = []
        else:
            waiting.append(read_set(item))
    return results
