"""Sortable identifiers: a millisecond timestamp then randomness, so ids sort by creation time."""

from __future__ import annotations

import os
import time

__all__ = ["new_id", "new_id_off_loop"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


# Every 10-bit value as its two characters: an id is 13 table look-ups, not 26 divisions.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_POOL_IDS = 256


def _base32(value: int, width: int) -> str:
    """``value`` as ``width`` (even) characters of the alphabet, most significant first."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(5 * width - 10, -10, -10)])


class _RandomPool:
    """Operating-system randomness fetched for 256 ids at a time: one ``getrandom`` call per id was
    5% of an accepted write's CPU (py-spy). Same source as ``secrets``, so ids stay unguessable."""

    def __init__(self) -> None:
        self._pool, self._at = b"", 0

    def take80(self) -> int:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(10 * _POOL_IDS), 0
        chunk = self._pool[self._at : self._at + 10]
        self._at += 10
        return int.from_bytes(chunk, "big")


_RANDOM = _RandomPool()


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 chars (80 bits) of randomness."""
    return _formatted(prefix, _RANDOM.take80())


def new_id_off_loop(prefix: str) -> str:
    """``new_id`` for a worker thread: the pool is the event loop's alone (two threads taking from it
    at once could be handed the same randomness), so this asks the operating system each time."""
    return _formatted(prefix, int.from_bytes(os.urandom(10), "big"))


def _formatted(prefix: str, random80: int) -> str:
    return f"{prefix}_{_base32(time.time_ns() // 1_000_000, 10)}{_base32(random80, 16)}"
