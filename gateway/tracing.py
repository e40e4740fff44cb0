"""The trace id of the request being served, for problem bodies, stored transactions and audit.

With tracing on it is the server span's trace id; with tracing off it is taken from an incoming W3C
``traceparent`` when present, otherwise fresh — so there is always one id to find the work by.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

from opentelemetry import trace

__all__ = ["current_span_id", "current_trace_id", "current_traceparent", "set_trace_id", "trace_id_from_traceparent"]

_TRACE_ID: ContextVar[str | None] = ContextVar("billing_hub_trace_id", default=None)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_from_traceparent(header: str | None) -> str:
    match = _TRACEPARENT.match(header.strip().lower()) if header else None
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return f"{random.getrandbits(128):032x}"  # as the OTel SDK makes ids: unique, not secret


def set_trace_id(trace_id: str) -> None:
    _TRACE_ID.set(trace_id)


def current_trace_id() -> str | None:
    return _TRACE_ID.get()


def current_span_id() -> str | None:
    """The active span's id (16 hex), when tracing is on and a span is recording."""
    context = trace.get_current_span().get_span_context()
    return format(context.span_id, "016x") if context.is_valid else None


def current_traceparent() -> str | None:
    """The active span as a W3C traceparent, for work that continues the trace later."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
