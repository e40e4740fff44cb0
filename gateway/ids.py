"""Sortable identifiers: a millisecond timestamp then randomness, so ids sort by creation time."""

from __future__ import annotations

import os
import time

__all__ = ["new_id", "new_id_off_loop"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_CHARS = 16  # 80 bits: 5 of them per character
_POOL_IDS = 256
_MS_MASK = (1 << 50) - 1  # the 10 characters of the millisecond hold its low 50 bits

# Every 10-bit value as its two characters: a millisecond is 5 table look-ups, not 10 divisions.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
# A random byte's low 5 bits as their character: 256 is a multiple of 32, so each character is
# equally likely and 16 bytes give the 80 random bits in one C call (``bytes.translate``) instead of
# shifting a 130-bit integer 13 times (1.66 vs 0.45 µs an id, three ids per accepted write).
_CHARACTER_OF_BYTE = bytes(ord(_ALPHABET[byte & 31]) for byte in range(256))


def _millisecond_text(ms: int) -> str:
    """The 10 characters of ``ms``'s low 50 bits, most significant first."""
    v, p = ms & _MS_MASK, _PAIRS
    return p[v >> 40] + p[v >> 30 & 1023] + p[v >> 20 & 1023] + p[v >> 10 & 1023] + p[v & 1023]


class _Clock:
    """The current millisecond as its text, written out once per millisecond: ids made within one
    millisecond share it. ``last`` is one tuple, replaced whole, so a worker thread never reads one
    millisecond's number with another's text."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[int, str] = (-1, "")

    def now_text(self) -> str:
        ms = time.time_ns() // 1_000_000
        last = self.last
        if last[0] != ms:
            last = self.last = (ms, _millisecond_text(ms))
        return last[1]


_CLOCK = _Clock()


def _random_text(random: bytes) -> str:
    return random.translate(_CHARACTER_OF_BYTE).decode("ascii")


class _RandomPool:
    """Operating-system randomness fetched for 256 ids at a time, already as characters: one
    ``getrandom`` call per id was 5% of an accepted write's CPU (py-spy). Same source as ``secrets``,
    so ids stay unguessable."""

    def __init__(self) -> None:
        self._pool, self._at = "", 0

    def take(self) -> str:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = _random_text(os.urandom(_RANDOM_CHARS * _POOL_IDS)), 0
        self._at = at + _RANDOM_CHARS
        return self._pool[at : at + _RANDOM_CHARS]


_RANDOM = _RandomPool()


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 chars (80 bits) of randomness."""
    return f"{prefix}_{_CLOCK.now_text()}{_RANDOM.take()}"


def new_id_off_loop(prefix: str) -> str:
    """``new_id`` for a worker thread: the pool is the event loop's alone (two threads taking from it
    at once could be handed the same randomness), so this asks the operating system each time."""
    return f"{prefix}_{_CLOCK.now_text()}{_random_text(os.urandom(_RANDOM_CHARS))}"
