"""OpenTelemetry for the hub: server spans, metrics, and the Prometheus endpoint.

Tracing is off unless an exporter is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``, or
``BILLING_HUB_TRACE_EXPORTER``): then no tracer provider is installed and the middleware does not
start spans at all, so tracing costs next to nothing. The standard ``OTEL_*`` variables (sampler,
service name, OTLP endpoint) configure the SDK as usual. Metrics are always collected and exposed at
``/metrics`` in Prometheus text format; with an OTLP endpoint the SDK's are exported there too (the
request-duration histogram is the hub's own, for speed: ``gateway.request_metrics``).

Span names and attributes carry route templates, methods, statuses and ids — never a concrete path
(it can hold an account number) and never a body.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.request_metrics import RequestDurations
from gateway.root_spans import PresetIds, RootSpans
from gateway.tracing import set_trace_id, trace_id_from_traceparent

__all__ = ["DiscardSpanExporter", "Telemetry", "setup_telemetry"]

SERVICE_NAME = "billing-hub"


class DiscardSpanExporter(SpanExporter):
    """Runs the whole SDK pipeline and drops the result: what tracing costs, without a collector."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@dataclass
class Telemetry:
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider
    tracer: trace.Tracer
    meter: Meter
    gauges: dict[str, Callable[[], Iterable[tuple[float, dict[str, str]]]]] = field(default_factory=dict)

    @property
    def tracing(self) -> bool:
        return self.tracer_provider is not None

    def __post_init__(self) -> None:
        self.root_spans = RootSpans(self.tracer) if self.tracer_provider else None
        m = self.meter
        self.request_durations = RequestDurations()
        self.attempt_duration = m.create_histogram(
            "billing_hub.connector.attempt.duration", unit="s", description="Duration of one delivery attempt"
        )
        self.attempts = m.create_counter("billing_hub.connector.attempts", description="Delivery attempts by outcome")
        self.retries = m.create_counter("billing_hub.connector.retries", description="Attempts that will be retried")
        for name, description in (
            ("billing_hub.circuit.state", "Circuit breaker state per connector: 0 closed, 1 half-open, 2 open"),
            ("billing_hub.outbox.depth", "Deliveries waiting or in flight"),
            ("billing_hub.outbox.oldest_age", "Age in seconds of the oldest waiting delivery"),
            ("billing_hub.dead_letters", "Dead-lettered deliveries"),
        ):
            m.create_observable_gauge(name, callbacks=[self._observer(name)], description=description)

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            source = self.gauges.get(name)
            return [Observation(value, attributes) for value, attributes in source()] if source else []

        return observe

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _span_exporter(kind: str) -> SpanExporter | None:
    if kind == "auto":
        env = os.environ
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        kind = "otlp" if endpoint else "off"
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "discard":
        return DiscardSpanExporter()
    return None


def _metric_readers() -> list[MetricReader]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    readers: list[MetricReader] = [PrometheusMetricReader()]
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return readers


def setup_telemetry(trace_exporter: str = "auto", processor: SpanProcessor | None = None) -> Telemetry:
    """Build the providers. ``processor`` (tests: an in-memory exporter's) replaces the exporter."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    tracer_provider = None
    exporter = _span_exporter(trace_exporter) if processor is None else None
    if processor is not None or exporter is not None:
        # The sampler comes from OTEL_TRACES_SAMPLER; the ids from PresetIds (see gateway.root_spans).
        tracer_provider = TracerProvider(resource=resource, id_generator=PresetIds())
        tracer_provider.add_span_processor(processor or BatchSpanProcessor(exporter))  # type: ignore[arg-type]
        # Global, so connectors, the dispatcher and in-process stubs all join the same traces. A
        # process keeps the first provider it sets (tests build it once per session).
        trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(resource=resource, metric_readers=_metric_readers())
    tracer = trace.get_tracer("billing_hub") if tracer_provider else trace.NoOpTracer()
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer,
        meter=meter_provider.get_meter("billing_hub"),
    )


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    wanted = (b"traceparent", b"tracestate")
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in wanted}


def server_middleware(app: Any, telemetry: Telemetry) -> Any:
    """Outermost ASGI wrapper: a SERVER span per request (when tracing), the request histogram, and
    the trace id in ``X-Trace-Id`` — routing happens inside, so unmatched paths are covered too."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        status = 500
        span = None
        token = None
        carrier = _headers(scope)
        if telemetry.tracing:
            # Most clients send no trace context: then there is nothing to extract (the propagators
            # cost ~2% of a read request for nothing).
            context = propagate.extract(carrier) if carrier else None
            if context is None and telemetry.root_spans is not None:
                span = telemetry.root_spans.start(method)
            else:
                span = telemetry.tracer.start_span(method, context=context, kind=SpanKind.SERVER)
            token = otel_context.attach(trace.set_span_in_context(span, context))
            trace_id = format(span.get_span_context().trace_id, "032x")
            if not span.get_span_context().is_valid or trace_id == "0" * 32:
                trace_id = trace_id_from_traceparent(carrier.get("traceparent"))
        else:
            trace_id = trace_id_from_traceparent(carrier.get("traceparent"))
        set_trace_id(trace_id)

        async def sender(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-trace-id", trace_id.encode())]
            await send(message)

        try:
            await app(scope, receive, sender)
        finally:
            route = str(scope.get("path_template") or "").replace(":str}", "}") or None
            telemetry.request_durations.record(method, status, route or "", time.perf_counter() - started)
            if span is not None and span.is_recording():  # a dropped span has nothing to be told
                attributes: dict[str, Any] = {"http.request.method": method, "http.response.status_code": status}
                if route:
                    attributes["http.route"] = route
                span.update_name(f"{method} {route}" if route else method)
                span.set_attributes(attributes)
                # The concrete path can carry an account number: only templated or param-free paths.
                span.set_attribute("url.path", route or "unmatched")
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))
                span.end()
            if token is not None:
                otel_context.detach(token)

    return middleware
