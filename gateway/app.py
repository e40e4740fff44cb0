"""The application factory: the ASGI app, its lifespan, error handling and OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from decimal import Decimal
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from canonical import Money, Quantity
from gateway.api._common import SECURITY_COMPONENTS
from gateway.api.health import HealthController
from gateway.api.metrics import MetricsController
from gateway.api.v1 import v1_router
from gateway.dispatcher import AttemptObserver
from gateway.governance_state import Governance
from gateway.hub import Hub
from gateway.openapi import MoneySchemaPlugin, close_canonical_schemas, openapi_config
from gateway.problems import exception_handlers
from gateway.settings import Settings, load_settings
from gateway.store import AttemptRecord, OutboxRecord, Store, TransactionRecord
from gateway.telemetry import Telemetry, server_middleware, setup_telemetry
from policies.audit import AuditEntry

__all__ = ["create_app"]

_CIRCUIT_LEVEL = {"closed": 0, "half_open": 1, "open": 2}
MAX_BODY_BYTES = 5 * 1024 * 1024


def v1_operations(app: Litestar) -> frozenset[str]:
    """Every operationId under /v1: the policy file must say what each one requires."""
    return frozenset(
        str(handler.operation_id)
        for route in app.routes
        if route.path.startswith("/v1/")
        for handler in getattr(route, "route_handlers", [])
        if handler.operation_id is not None  # Litestar's implicit OPTIONS handlers have none
    )


def _audit_deliveries(governance: Governance) -> AttemptObserver:
    async def observe(entry: OutboxRecord, attempt: AttemptRecord, transaction: TransactionRecord) -> None:
        await governance.audit(
            AuditEntry(
                client_id=transaction.client_id,
                operation=f"deliver:{entry.operation}",
                resource_id=entry.id,
                outcome={"success": "delivered", "retry": "retry"}.get(attempt.outcome, "failed"),
                status=attempt.status,
                trace_id=transaction.trace_id,
                at=attempt.started_at,
                target=entry.target,
                transaction_id=transaction.id,
            )
        )

    return observe


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
        running = hub or Hub.open(settings, store)
        governance = Governance.open(settings, v1_operations(app), running.store)
        governance.start()
        running.dispatcher.observers.append(_audit_deliveries(governance))
        running.dispatcher.telemetry = telemetry
        telemetry.gauges["billing_hub.circuit.state"] = lambda: [
            (_CIRCUIT_LEVEL[b.state], {"connector": name}) for name, b in running.dispatcher.breakers.items()
        ]
        await running.start()
        app.state.governance = governance
        app.state.hub = running
        _reload_on_sighup(governance)

    async def on_shutdown(app: Litestar) -> None:
        # Order matters: deliveries stop (and are audited), the audit queue drains into the store,
        # and only then does the store close.
        running: Hub | None = getattr(app.state, "hub", None)
        governance: Governance | None = getattr(app.state, "governance", None)
        if running is not None:
            await running.dispatcher.stop()
        if governance is not None:
            await governance.aclose()
        if running is not None:
            await running.close()
        if owns_telemetry:
            telemetry.shutdown()  # flushes spans, unregisters the Prometheus collector

    def provide_hub(state: State) -> Hub:
        return state.hub  # type: ignore[no-any-return]

    config = openapi_config("1.0.0")
    config.components = [SECURITY_COMPONENTS]
    app = Litestar(
        route_handlers=[HealthController, MetricsController, v1_router()],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        exception_handlers=exception_handlers,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=config,
        plugins=[MoneySchemaPlugin()],
        type_decoders=[(_is_wire_decimal, _decode_wire_decimal)],
        type_encoders={Money: str, Quantity: str, Decimal: str},
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
        # Logging is configured by the CLI: Litestar's default would put the root logger (and httpx,
        # which logs every URL, query strings included) at INFO.
        logging_config=None,
    )
    close_canonical_schemas(app)
    app.state.telemetry = telemetry
    # Outermost, so that routing (and its 404s) happens inside the server span and the timer.
    app.asgi_handler = server_middleware(app.asgi_handler, telemetry)
    return app
