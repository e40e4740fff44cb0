"""The application factory: the ASGI app, its lifespan, error handling and OpenAPI."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from canonical import Money, Quantity
from gateway.api._common import SECURITY_COMPONENTS
from gateway.api.health import HealthController
from gateway.api.v1 import v1_router
from gateway.hub import Hub
from gateway.openapi import MoneySchemaPlugin, close_canonical_schemas, openapi_config
from gateway.problems import exception_handlers
from gateway.settings import Settings, load_settings
from gateway.store import Store
from gateway.tracing import set_trace_id, trace_id_from_traceparent

__all__ = ["TRACE_ID_HEADER", "create_app"]

TRACE_ID_HEADER = "X-Trace-Id"
MAX_BODY_BYTES = 5 * 1024 * 1024


def _trace_middleware(app: ASGIApp) -> ASGIApp:
    """Give every request a trace id (from ``traceparent`` or fresh) and return it in a header."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        traceparent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), None)
        trace_id = trace_id_from_traceparent(traceparent)
        set_trace_id(trace_id)

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (TRACE_ID_HEADER.lower().encode(), trace_id.encode()),
                ]
            await send(message)

        await app(scope, receive, send_with_trace)

    return middleware


def _is_wire_decimal(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, Money | Quantity)


def _decode_wire_decimal(type_: type[Money] | type[Quantity], value: Any) -> Money | Quantity:
    return type_.from_wire(value)


def create_app(settings: Settings | None = None, *, store: Store | None = None, hub: Hub | None = None) -> Litestar:
    settings = settings or load_settings()

    async def on_startup(app: Litestar) -> None:
        running = hub or Hub.open(settings, store)
        await running.start()
        app.state.hub = running

    async def on_shutdown(app: Litestar) -> None:
        running: Hub | None = getattr(app.state, "hub", None)
        if running is not None:
            await running.close()

    def provide_hub(state: State) -> Hub:
        return state.hub  # type: ignore[no-any-return]

    config = openapi_config("1.0.0")
    config.components = [SECURITY_COMPONENTS]
    app = Litestar(
        route_handlers=[HealthController, v1_router()],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        exception_handlers=exception_handlers,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        middleware=[_trace_middleware],
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
    return app
