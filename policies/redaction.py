"""PHI redaction derived from the marks on the canonical types, never from a hand-kept list.

``phi_tree(type)`` (in ``canonical``) is every PHI field reachable from a type, as a tree built once
per type; this module uses it three ways:

- ``redact`` returns builtins with every PHI value replaced by ``"[redacted]"`` (a PHI struct such
  as a name or an address becomes the one string; a list of PHI items becomes a list of it). A
  missing or ``null`` PHI field stays as it is: absence reveals nothing.
- ``phi_values`` (``canonical``'s, re-exported) lists the PHI leaf values of an object, for sentinel
  tests and the log filter.
- ``phi_hash`` gives a keyed short tag (``phi:`` + 12 hex) so two log lines or audit entries can be
  correlated ("same member id") without the value. Keyed (HMAC), because a plain hash of a member id
  or a birth date is reversed by trying every candidate.

``PhiScrubbingFilter`` is a last line of defence for logs, not the main one (the main one is that
code logs ids, never payloads). Its limits, on purpose:

- it only knows the strings it was given (``add``/``add_phi``) and matches them literally
  (case-insensitively); a value that was re-encoded (JSON-escaped, URL-encoded, split, reformatted
  date) slips through;
- values shorter than ``min_length`` (4) are not scrubbed: a state code "IL" or a sex "F" would
  otherwise blank out half of every message;
- it rewrites the formatted message, the exception text and the stack text; ``extra=`` fields and
  anything a custom formatter reads from elsewhere are not touched;
- it holds at most ``max_values`` strings (oldest dropped first): it is meant for a bounded set
  (test sentinels, the PHI of recent requests), not for every value ever seen;
- attach it to *handlers*: a filter on a logger does not see records propagated from child loggers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Iterable
from typing import Any

from canonical import PHI_ITEMS, PhiTree, phi_tree, phi_values, to_builtins

__all__ = [
    "REDACTED",
    "PhiHasher",
    "PhiScrubbingFilter",
    "phi_hash",
    "phi_values",
    "redact",
]

REDACTED = "[redacted]"


def redact(value: Any, type_: type[Any]) -> Any:
    """``value`` (a canonical Struct or its builtins form) as fresh builtins with PHI replaced."""
    return _redact(to_builtins(value), phi_tree(type_))


def _redact(value: Any, tree: PhiTree) -> Any:
    if isinstance(value, dict):
        out = dict(value)
        for key, sub in tree.items():
            if key != PHI_ITEMS and out.get(key) is not None:
                out[key] = REDACTED if sub is None else _redact(out[key], sub)
        return out
    if isinstance(value, list) and PHI_ITEMS in tree:
        sub = tree[PHI_ITEMS]
        return [item if item is None else REDACTED if sub is None else _redact(item, sub) for item in value]
    return value


class PhiHasher:
    """``phi:`` + the first 12 hex of HMAC-SHA256(key, value): stable for one key, opaque without it.

    Give every hub instance the same key (from settings) to correlate across instances and restarts;
    48 bits are plenty to tell values apart in a log, and too few to serve as a lookup table.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a PHI hash key needs at least 16 bytes")
        self._key = key

    def __call__(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"phi:{digest[:12]}"


# Per-process key for callers that have not been handed one: correlation within one process only.
_PROCESS_HASHER = PhiHasher(secrets.token_bytes(32))


def phi_hash(value: str, *, hasher: PhiHasher | None = None) -> str:
    return (hasher or _PROCESS_HASHER)(value)


class PhiScrubbingFilter(logging.Filter):
    """Replaces known PHI strings in log records; see the module docstring for what it cannot do."""

    def __init__(
        self,
        values: Iterable[str] = (),
        *,
        min_length: int = 4,
        max_values: int = 10_000,
        replacement: str = REDACTED,
    ) -> None:
        super().__init__()
        self.min_length = min_length
        self.max_values = max_values
        self.replacement = replacement
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}  # insertion-ordered set: the oldest is dropped first
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str) -> None:
        with self._lock:
            for value in values:
                if len(value) >= self.min_length and value not in self._values:
                    self._values[value] = None
                    self._pattern = None
            while len(self._values) > self.max_values:
                del self._values[next(iter(self._values))]

    def add_phi(self, obj: Any, type_: type[Any]) -> None:
        self.add(*phi_values(obj, type_))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def scrub(self, text: str) -> str:
        pattern = self._compiled()
        return text if pattern is None else pattern.sub(self.replacement, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the caller's log call
            message = str(record.msg)
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a full name wins over a part of it that is registered too.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)
            return self._pattern
