"""``/health`` (the process is alive) and ``/ready`` (store and every connector answer)."""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec
from litestar import Controller, Response, get

from gateway.api._common import HubDep

__all__ = ["HealthController"]


class Liveness(msgspec.Struct, frozen=True):
    status: Literal["ok"] = "ok"


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    detail: str = ""
    latency_ms: float | None = None


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
        responses=None,
    )
    async def ready(self, hub: HubDep) -> Response[Readiness]:
        try:
            store_ok = await hub.store.ping()
        except Exception:  # the store being down is what this endpoint reports, not a 500
            store_ok = False
        names = list(hub.connectors)
        checks = await asyncio.gather(*(hub.connectors[n].check() for n in names))
        connectors = {
            name: ComponentHealth(ok=c.ok, detail=c.detail, latency_ms=c.latency_ms)
            for name, c in zip(names, checks, strict=True)
        }
        ready = store_ok and all(c.ok for c in connectors.values())
        body = Readiness(
            status="ready" if ready else "degraded",
            store=ComponentHealth(ok=store_ok, detail="" if store_ok else "store unreachable"),
            connectors=connectors,
        )
        return Response(body, status_code=200 if ready else 503)
