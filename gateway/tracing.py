"""The trace id of the request being served, for problem bodies and stored transactions.

Taken from an incoming W3C ``traceparent`` when present, otherwise fresh; the OpenTelemetry work
replaces the source with the active span's context without changing the callers.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

__all__ = ["current_trace_id", "set_trace_id", "trace_id_from_traceparent"]

_TRACE_ID: ContextVar[str | None] = ContextVar("billing_hub_trace_id", default=None)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_from_traceparent(header: str | None) -> str:
    match = _TRACEPARENT.match(header.strip().lower()) if header else None
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return secrets.token_hex(16)


def set_trace_id(trace_id: str) -> None:
    _TRACE_ID.set(trace_id)


def current_trace_id() -> str | None:
    return _TRACE_ID.get()
