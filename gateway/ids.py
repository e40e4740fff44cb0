"""Sortable identifiers: a millisecond timestamp then randomness, so ids sort by creation time."""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


# RFC 4648 base32 -> our alphabet, so 10 random bytes become 16 characters in one C call.
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
_POOL_IDS = 256


class _RandomPool:
    """Operating-system randomness fetched for 256 ids at a time: one ``getrandom`` call per id was
    5% of an accepted write's CPU (py-spy). Same source as ``secrets``, so ids stay unguessable."""

    def __init__(self) -> None:
        self._pool, self._at = b"", 0

    def take10(self) -> bytes:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(10 * _POOL_IDS), 0
        chunk = self._pool[self._at : self._at + 10]
        self._at += 10
        return chunk


_RANDOM = _RandomPool()


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 chars (80 bits) of randomness."""
    tail = base64.b32encode(_RANDOM.take10()).translate(_FROM_RFC4648).decode()
    return f"{prefix}_{_base32(time.time_ns() // 1_000_000, 10)}{tail}"
