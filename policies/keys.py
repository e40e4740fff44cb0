"""API keys: issued once, stored only as SHA-256 hashes, matched in constant time.

The policy file holds hashes, never keys, so a leaked file or log of it cannot be replayed. Keys
are 256 bits of randomness, so a plain (unsalted) SHA-256 is enough: there is no dictionary to
attack, and a fast hash keeps authentication cheap on every request.

``KeyRing.match`` compares the presented key's hash with *every* stored hash through
``hmac.compare_digest`` and never stops early, so its timing does not reveal which (or whether a)
stored hash shares a prefix with the presented one, nor at which position in the ring a match sits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

__all__ = ["KEY_PREFIX", "KeyRing", "hash_api_key", "new_api_key"]

KEY_PREFIX = "bh_"
_KEY_BYTES = 32  # 256 bits of entropy
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def new_api_key() -> tuple[str, str]:
    """A fresh key (``bh_`` + 43 URL-safe characters) and the SHA-256 hex to put in the policy file.

    The prefix lets secret scanners and people recognise a hub key in a paste or a commit.
    """
    key = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    return key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The known key hashes and the client each belongs to; holds no keys."""

    __slots__ = ("_entries",)

    def __init__(self, hashes: Mapping[str, str]) -> None:
        entries: list[tuple[bytes, str]] = []
        for digest, client_id in hashes.items():
            normalised = digest.strip().lower()
            if not _HEX_SHA256.match(normalised):
                # The message names the client, never the (possibly pasted-by-mistake) value.
                raise ValueError(f"key hash for client {client_id!r} is not a SHA-256 hex digest")
            entries.append((normalised.encode("ascii"), client_id))
        self._entries: tuple[tuple[bytes, str], ...] = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, presented: str) -> str | None:
        """The client id whose key hashes to the same value as ``presented``, else ``None``."""
        candidate = hash_api_key(presented).encode("ascii")
        found: str | None = None
        for digest, client_id in self._entries:
            # No break and no short-circuit: every entry is compared whatever happened before.
            if hmac.compare_digest(candidate, digest):
                found = client_id
        return found
