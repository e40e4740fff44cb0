"""Server spans for requests that arrive without trace context, cheap when they are not sampled.

Why: with a 10 % sampler, nine requests in ten make a span that records nothing, yet the SDK's
``Tracer.start_span`` still runs its general path for them (parent lookup, id generation, sampler,
trace flags, span context, its own metrics hook), and that was most of what tracing at 10 % added
to a read request (``make bench``'s tracing goal: <= 10 % at 10 % sampling).

Here the sampler's decision is made first, the way ``TraceIdRatioBased`` makes it (the trace id's
low 64 bits against the bound for its rate), on a trace id drawn as the SDK draws them. A request it
drops gets a ``NonRecordingSpan`` with that trace id, a fresh span id and the flags the SDK would
give it (not sampled; random trace id), so whatever the request starts or stores (child spans, the
outbox's traceparent) continues the same unsampled trace. A request it keeps goes through
``start_span`` with the same trace id (``PresetIds`` hands it over), so the SDK decides the same way
and builds the real span. That holds only for samplers whose root decision is a function of the
trace id (ratio, always on or off, and ParentBased over those); with any other sampler every request
takes ``start_span``, as before.
"""

from __future__ import annotations

import random
import re
import threading

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

__all__ = ["PresetIds", "RootSpans"]

# The samplers' own descriptions (a public method); for a root span only the root sampler counts.
_DECIDES_BY_TRACE_ID = re.compile(
    r"^(?:ParentBased\{root:)?(?:TraceIdRatioBased\{(?P<rate>[0-9.e+-]+)\}|Always(?P<always>On|Off)Sampler)"
)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)  # what the SDK gives a dropped root


class PresetIds(IdGenerator):
    """The SDK's random ids, except that the next trace id of this thread can be set beforehand."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._next = threading.local()

    def preset(self, trace_id: int) -> None:
        self._next.trace_id = trace_id

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        preset: int | None = getattr(self._next, "trace_id", None)
        if preset is None:
            return self._random.generate_trace_id()
        self._next.trace_id = None
        return preset

    def is_trace_id_random(self) -> bool:
        return True


class RootSpans:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        # The ids and the sampler of the very tracer that builds the kept spans (an SDK Tracer's
        # attributes), so that its decision and this one agree.
        ids, sampler = getattr(tracer, "id_generator", None), getattr(tracer, "sampler", None)
        bound = _root_bound(sampler.get_description()) if isinstance(sampler, Sampler) else None
        self._ids: PresetIds | None = ids if isinstance(ids, PresetIds) and bound is not None else None
        self._bound = bound or 0

    @property
    def fast(self) -> bool:
        """Whether dropped requests skip the SDK (the sampler decides by the trace id)."""
        return self._ids is not None

    def start(self, name: str) -> trace.Span:
        """A SERVER span with no parent: non-recording without the SDK when the sampler drops it."""
        ids = self._ids
        if ids is None:
            return self._tracer.start_span(name, kind=SpanKind.SERVER)
        trace_id = _random_id(128)
        if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT >= self._bound:  # TraceIdRatioBased's own test
            return NonRecordingSpan(SpanContext(trace_id, _random_id(64), is_remote=False, trace_flags=_UNSAMPLED))
        ids.preset(trace_id)
        return self._tracer.start_span(name, kind=SpanKind.SERVER)


def _root_bound(description: str) -> int | None:
    """The trace-id bound below which the sampler keeps a root span, from its description; ``None``
    for a sampler that does not decide by the trace id alone."""
    found = _DECIDES_BY_TRACE_ID.match(description)
    if found is None:
        return None
    if found.group("rate") is not None:
        return TraceIdRatioBased.get_bound_for_rate(float(found.group("rate")))
    return TraceIdRatioBased.TRACE_ID_LIMIT + 1 if found.group("always") == "On" else 0


def _random_id(bits: int) -> int:
    """As the SDK's RandomIdGenerator draws ids: random bits, never the invalid id 0."""
    while not (drawn := random.getrandbits(bits)):
        pass
    return drawn
