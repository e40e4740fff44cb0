"""Clearinghouse connector (X12 5010 on the wire), its stub server, and the X12 codec (``x12``)."""

from connectors.clearinghouse._connector import ClaimStatusSource, X12ClearinghouseConfig, X12ClearinghouseConnector
from connectors.clearinghouse._numbers import (
    ClockSeededNumbers,
    InterchangeNumbers,
    NextNumber,
    NumbersInterchanges,
    SequenceNumbers,
)

__all__ = [
    "ClaimStatusSource",
    "ClockSeededNumbers",
    "InterchangeNumbers",
    "NextNumber",
    "NumbersInterchanges",
    "SequenceNumbers",
    "X12ClearinghouseConfig",
    "X12ClearinghouseConnector",
]
