"""Interchange control numbers (ISA13) that never repeat toward one trading partner.

A clearinghouse refuses an interchange whose control number it has seen from the same sender
(TA1 code 025, duplicate interchange control number). A counter in memory repeats numbers after a
restart, and two hub processes would hand out the same ones; seeding it from the clock only moves
the collision (a process that sent more interchanges than seconds passed before its restart reuses
its own numbers). So the hub draws them from a named sequence in its store, which survives
restarts and is shared by every instance; the numbers go from 1 to 999999999 and wrap.

``ClockSeededNumbers`` remains for a connector used on its own (tools, tests), outside a hub.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from connectors.clearinghouse.x12 import ControlCounter, ControlNumbers
from connectors.clearinghouse.x12._writer import MAX_CONTROL_NUMBER

__all__ = [
    "ClockSeededNumbers",
    "InterchangeNumbers",
    "NextNumber",
    "NumbersInterchanges",
    "SequenceNumbers",
    "clock_seed",
]

# (name, ceiling, first) -> the sequence's next value: first if it is new, then +1, after ceiling 1.
NextNumber = Callable[[str, int, int], Awaitable[int]]


def clock_seed() -> int:
    """Where a counter without history starts (what the hub did before it kept sequences, so a
    sequence created on upgrade starts where a restart would have)."""
    return int(time.time()) % MAX_CONTROL_NUMBER + 1


class InterchangeNumbers(Protocol):
    async def next(self) -> ControlNumbers:
        """The numbers of the next interchange: ISA13, and the same for its first group."""
        ...


class ClockSeededNumbers:
    def __init__(self) -> None:
        self._counter = ControlCounter(start=clock_seed())

    async def next(self) -> ControlNumbers:
        return self._counter.next()


class SequenceNumbers:
    def __init__(self, next_number: NextNumber, name: str) -> None:
        self._next_number, self.name = next_number, name

    async def next(self) -> ControlNumbers:
        number = await self._next_number(self.name, MAX_CONTROL_NUMBER, clock_seed())
        return ControlNumbers(interchange=number, group=number)


@runtime_checkable
class NumbersInterchanges(Protocol):
    """A connector that writes interchanges and takes its control numbers from its host."""

    numbers: InterchangeNumbers
