"""The application factory: the ASGI app, its lifespan, error handling and OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from litestar import Litestar

from canonical import Money, Quantity
from gateway.api._common import SECURITY_COMPONENTS
from gateway.api.health import HealthController
from gateway.api.metrics import MetricsController
from gateway.api.v1 import v1_router
from gateway.governance import takes_idempotency_key
from gateway.governance_state import Governance
from gateway.head import head_as_get
from gateway.hub import Hub
from gateway.openapi import (
    MoneySchemaPlugin,
    close_canonical_schemas,
    document_idempotency_keys,
    openapi_config,
    state_the_bounds,
)
from gateway.problems import exception_handlers
from gateway.runtime import Runtime, open_runtime
from gateway.settings import Settings, load_settings
from gateway.store import Store
from gateway.telemetry import Telemetry, server_middleware, setup_telemetry
from policies.config import MAX_BODY_CEILING

__all__ = ["create_app"]


def _v1_handlers(app: Litestar) -> Iterator[Any]:
    for route in app.routes:
        if route.path.startswith("/v1/"):
            for handler in getattr(route, "route_handlers", []):
                if handler.operation_id is not None:  # Litestar's implicit OPTIONS handlers have none
                    yield handler


def v1_operations(app: Litestar) -> frozenset[str]:
    """Every operationId under /v1: the policy file must say what each one requires."""
    return frozenset(str(handler.operation_id) for handler in _v1_handlers(app))


def keyed_operations(app: Litestar) -> frozenset[str]:
    """The /v1 operationIds that take an Idempotency-Key: only there can a policy require one."""
    return frozenset(
        str(handler.operation_id)
        for handler in _v1_handlers(app)
        if any(takes_idempotency_key(method, handler) for method in handler.http_methods)
    )


def _reload_on_sighup(governance: Governance) -> None:
    # Not possible off the main thread (test clients) or without signals; the admin call still reloads.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, governance.holder.reload)


def _is_wire_decimal(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, Money | Quantity)


def _decode_wire_decimal(type_: type[Money] | type[Quantity], value: Any) -> Money | Quantity:
    return type_.from_wire(value)


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    hub: Hub | None = None,
    telemetry: Telemetry | None = None,
) -> Litestar:
    settings = settings or load_settings()
    owns_telemetry = telemetry is None
    telemetry = telemetry or setup_telemetry(settings.trace_exporter)

    async def on_startup(app: Litestar) -> None:
        runtime = await open_runtime(
            settings, v1_operations(app), telemetry, hub=hub, store=store, keyed=keyed_operations(app)
        )
        runtime.governance.forget_in_flight()  # this is the serving process
        app.state.runtime = runtime
        app.state.governance = runtime.governance
        app.state.hub = runtime.hub
        _reload_on_sighup(runtime.governance)

    async def on_shutdown(app: Litestar) -> None:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        if runtime is not None:
            await runtime.close()
        if owns_telemetry:
            telemetry.shutdown()  # flushes spans, unregisters the Prometheus collector

    config = openapi_config("1.0.0")
    config.components = [SECURITY_COMPONENTS]
    app = Litestar(
        route_handlers=[HealthController, MetricsController, v1_router()],
        exception_handlers=exception_handlers,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=config,
        plugins=[MoneySchemaPlugin()],
        type_decoders=[(_is_wire_decimal, _decode_wire_decimal)],
        type_encoders={Money: str, Quantity: str, Decimal: str},
        # The policy's per-route limits (413) are enforced by the governance middleware before a
        # handler reads a body; Litestar's own cap is only the ceiling no policy may exceed.
        request_max_body_size=MAX_BODY_CEILING,
        debug=False,
        # Logging is configured by the CLI: Litestar's default would put the root logger (and httpx,
        # which logs every URL, query strings included) at INFO.
        logging_config=None,
    )
    close_canonical_schemas(app)
    state_the_bounds(app)
    document_idempotency_keys(app, keyed_operations(app))
    app.state.telemetry = telemetry
    # Outermost, so that routing (and its 404s) happens inside the server span and the timer.
    app.asgi_handler = server_middleware(head_as_get(app.asgi_handler), telemetry)
    return app
