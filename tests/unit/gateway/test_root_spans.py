"""Root server spans decided without the SDK when dropped: same decisions, same rate, same trace."""

from __future__ import annotations

import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, TraceFlags

from gateway.root_spans import PresetIds, RootSpans


def _spans(sampler: Sampler) -> tuple[RootSpans, trace.Tracer, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=PresetIds())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")
    return RootSpans(tracer), tracer, exported


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("parent_based", [False, True])
def test_the_kept_share_is_the_samplers_and_each_decision_is_the_sdks(rate: float, parent_based: bool) -> None:
    ratio = TraceIdRatioBased(rate)
    spans, _, exported = _spans(ParentBased(ratio) if parent_based else ratio)
    assert spans.fast
    random.seed(20261128)
    started = [spans.start("GET") for _ in range(4000)]
    kept = [s for s in started if s.is_recording()]
    for span in started:
        context = span.get_span_context()
        # The SDK's own sampler, asked about the same trace id, decides the same way.
        expected = ratio.should_sample(None, context.trace_id, "GET").decision is Decision.RECORD_AND_SAMPLE
        assert span.is_recording() is expected
        assert context.trace_flags.sampled is expected
        assert context.trace_flags & TraceFlags.RANDOM_TRACE_ID  # as the SDK flags a random trace id
    assert abs(len(kept) / 4000 - rate) < 0.03
    for span in kept:
        span.end()
    assert len(exported.get_finished_spans()) == len(kept)  # kept spans are real SDK spans


def test_a_dropped_request_keeps_its_trace_for_what_it_starts() -> None:
    spans, tracer, exported = _spans(ParentBased(ALWAYS_OFF))
    dropped = spans.start("POST")
    assert not dropped.is_recording()
    child = tracer.start_span("deliver", context=trace.set_span_in_context(dropped), kind=SpanKind.CLIENT)
    assert child.get_span_context().trace_id == dropped.get_span_context().trace_id
    assert not child.is_recording()
    assert exported.get_finished_spans() == ()


def test_always_on_keeps_every_span_through_the_sdk() -> None:
    spans, _, exported = _spans(ALWAYS_ON)
    for _ in range(5):
        spans.start("GET").end()
    assert len(exported.get_finished_spans()) == 5


class _Coin(Sampler):
    """A sampler that does not decide by the trace id: asking it twice may not agree."""

    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if random.random() < 0.5 else Decision.DROP)

    def get_description(self) -> str:
        return "Coin"


def test_any_other_sampler_leaves_every_decision_to_the_sdk() -> None:
    spans, _, exported = _spans(_Coin())
    assert not spans.fast
    started = [spans.start("GET") for _ in range(200)]
    recording = sum(s.is_recording() for s in started)
    for span in started:
        span.end()
    assert 0 < len(exported.get_finished_spans()) == recording < 200


def test_without_preset_ids_every_decision_is_the_sdks() -> None:
    provider = TracerProvider(sampler=TraceIdRatioBased(0.5))  # the SDK's own id generator
    assert not RootSpans(provider.get_tracer("test")).fast
