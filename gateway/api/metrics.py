"""``/metrics``: the hub's metrics in Prometheus text format (labels never carry PHI)."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from gateway.api._common import hub_of
from gateway.telemetry import Telemetry

__all__ = ["MetricsController"]

# Litestar adds "; charset=utf-8" to a text/ media type itself: the exposition format's own
# charset parameter made the header say it twice.
_MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


class MetricsController(Controller):
    tags = ["operations"]

    @get("/metrics", operation_id="getMetrics", media_type=_MEDIA_TYPE, summary="Prometheus metrics")
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        hub = hub_of(request)
        telemetry: Telemetry = request.app.state.telemetry
        # Store reads are async, gauge callbacks are not: read once per scrape, then let them report.
        depth, oldest, dead = await hub.store.outbox_stats(time.time())
        telemetry.gauges["billing_hub.outbox.depth"] = lambda: [(depth, {})]
        telemetry.gauges["billing_hub.outbox.oldest_age"] = lambda: [(oldest or 0.0, {})]
        telemetry.gauges["billing_hub.dead_letters"] = lambda: [(dead, {})]
        own = generate_latest(telemetry.request_durations.registry)
        return Response(generate_latest(REGISTRY) + own, media_type=_MEDIA_TYPE)
