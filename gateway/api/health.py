"""``/health`` (the process is alive) and ``/ready`` (store and every connector answer)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec

from gateway.api._common import hub_of

__all__ = ["HealthController"]


class Liveness(msgspec.Struct, frozen=True):
    status: Literal["ok"] = "ok"


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    detail: str = ""
    latency_ms: float | None = None
    circuit: str | None = None  # the connector's circuit breaker: closed, half_open or open


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ready", "degraded"]
    store: ComponentHealth
    connectors: dict[str, ComponentHealth]


class HealthController(Controller):
    tags = ["operations"]

    @get("/health", operation_id="getHealth", summary="Liveness")
    async def health(self) -> Liveness:
        return Liveness()

    @get(
        "/ready",
        operation_id="getReady",
        summary="Readiness: the store and each connector's check()",
        responses={503: ResponseSpec(Readiness, description="Degraded: the store or a connector is down")},
    )
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Readiness]:
        hub = hub_of(request)
        try:
            store_ok = await hub.store.ping()
        except Exception:  # the store being down is what this endpoint reports, not a 500
            store_ok = False
        names = list(hub.connectors)
        checks = await asyncio.gather(*(hub.connectors[n].check() for n in names))
        breakers = hub.dispatcher.breakers
        connectors = {
            name: ComponentHealth(
                # An open circuit means deliveries are deferred: not ready, whatever one probe says.
                ok=c.ok and (name not in breakers or breakers[name].state != "open"),
                detail=c.detail,
                latency_ms=c.latency_ms,
                circuit=breakers[name].state if name in breakers else None,
            )
            for name, c in zip(names, checks, strict=True)
        }
        ready = store_ok and all(c.ok for c in connectors.values())
        body = Readiness(
            status="ready" if ready else "degraded",
            store=ComponentHealth(ok=store_ok, detail="" if store_ok else "store unreachable"),
            connectors=connectors,
        )
        return Response(body, status_code=200 if ready else 503)
