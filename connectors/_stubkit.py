"""Shared machinery for the stub servers that stand in for the EHR and the ERP.

Why: connector retries, timeouts, circuit breakers and exactly-once delivery can only be tested
against a target that misbehaves on request. Every stub therefore carries the same fault injection
(latency, hangs, error statuses, real dropped connections) and the same request journal, driven
through ``/_control/*`` routes, so integration tests and the demo can script failures and then
assert what the target actually received. State lives in memory; one process is one stub.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, Router, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.types import ASGIApp, ExceptionHandlersMap, Message, Receive, Scope, Send
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

__all__ = [
    "CONTROL_PREFIX",
    "ErrorRenderer",
    "FaultInjectionMiddleware",
    "FaultState",
    "Faults",
    "InjectedConnectionDrop",
    "RequestJournal",
    "RequestRecord",
    "StubState",
    "control_router",
    "create_stub_app",
    "install_fault_injection",
    "run_stub",
]

CONTROL_PREFIX = "/_control"
JOURNAL_SIZE = 1000
#: Statuses that tell the client when to come back; everything else carries no Retry-After.
RETRY_AFTER: dict[int, bytes] = {429: b"1", 503: b"1"}
#: Announced length of a dropped response; only a fragment of it is ever sent.
_DROP_ANNOUNCED_LENGTH = 4096
_DROP_FRAGMENT = b'{"dropped":'

#: Renders an injected error status into (body, content type) in the stub's own dialect.
ErrorRenderer = Callable[[int], tuple[bytes, str]]
Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class InjectedConnectionDrop(Exception):
    """Raised mid-response so the ASGI server aborts the connection (a real dropped connection)."""


class Faults(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fault plan set by ``PUT /_control/faults``; the defaults inject nothing.

    Per matching request, in order: sleep ``latency_ms`` + ``hang_seconds``; then maybe drop the
    connection (``drop_rate``); otherwise maybe answer ``error_status`` (``error_rate``); otherwise
    pass through. ``remaining`` counts matching requests whatever the dice said.
    """

    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] = 0
    error_status: Annotated[int, msgspec.Meta(ge=400, le=599)] | None = None
    #: Probability that a matching request gets ``error_status``; only meaningful when it is set.
    error_rate: Rate = 1.0
    hang_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)] = 0.0
    drop_rate: Rate = 0.0
    #: "before": the request never reaches the stub; "after": it is processed, the answer is lost.
    drop_phase: Literal["before", "after"] = "before"
    remaining: Annotated[int, msgspec.Meta(ge=1)] | None = None
    path_prefix: Annotated[str, msgspec.Meta(pattern="^/")] = "/"
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What the middleware does to one request."""

    delay_seconds: float = 0.0
    error_status: int | None = None
    drop: bool = False
    drop_after: bool = False


NO_FAULT = Decision()


class FaultState:
    """The active fault plan plus its seeded random source; decisions are made under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: Faults | None = None
        self._rng = random.Random(0)  # noqa: S311 - deterministic test randomness, not security

    def set(self, faults: Faults) -> Faults:
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)  # noqa: S311
            return faults

    def clear(self) -> None:
        with self._lock:
            self._faults = None

    def current(self) -> Faults:
        with self._lock:
            return self._faults or Faults()

    def decide(self, path: str) -> Decision:
        with self._lock:
            faults = self._faults
            if faults is None or not path.startswith(faults.path_prefix):
                return NO_FAULT
            self._count_down(faults)
            drop = self._roll(faults.drop_rate)
            error = None
            if not drop and faults.error_status is not None and self._roll(faults.error_rate):
                error = faults.error_status
            return Decision(
                delay_seconds=faults.latency_ms / 1000 + faults.hang_seconds,
                error_status=error,
                drop=drop,
                drop_after=faults.drop_phase == "after",
            )

    def _count_down(self, faults: Faults) -> None:
        if faults.remaining is None:
            return
        left = faults.remaining - 1
        self._faults = msgspec.structs.replace(faults, remaining=left) if left else None

    def _roll(self, rate: float) -> bool:
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)


class RequestRecord(msgspec.Struct, kw_only=True):
    """One journaled request; ``status`` is None while in flight or when dropped before answering."""

    method: str
    path: str
    query: str
    status: int | None = None
    traceparent: str | None = None
    idempotency: str | None = None
    fault: Literal["error", "drop"] | None = None


class RequestJournal:
    """The last ``JOURNAL_SIZE`` requests in arrival order."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=size)

    def open(self, scope: Scope) -> RequestRecord:
        record = RequestRecord(
            method=str(scope.get("method", "")),
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            traceparent=_header(scope, b"traceparent"),
            idempotency=_header(scope, b"x-external-reference"),
        )
        with self._lock:
            self._records.append(record)
        return record

    def snapshot(self) -> bytes:
        with self._lock:
            return msgspec.json.encode(list(self._records))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class StubState:
    """Everything ``/_control`` manipulates for one stub."""

    def __init__(self) -> None:
        self.faults = FaultState()
        self.journal = RequestJournal()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


class FaultInjectionMiddleware:
    """Raw ASGI middleware: journals every non-control HTTP request and applies the fault plan."""

    def __init__(self, app: ASGIApp, state: StubState, render_error: ErrorRenderer) -> None:
        self.app = app
        self.state = state
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or _is_control(scope["path"]):
            await self.app(scope, receive, send)
            return
        record = self.state.journal.open(scope)
        decision = self.state.faults.decide(scope["path"])
        if decision.delay_seconds:
            await asyncio.sleep(decision.delay_seconds)
        if decision.drop:
            record.fault = "drop"
            await self._drop(scope, receive, send, record, after=decision.drop_after)
        if decision.error_status is not None:
            record.fault = "error"
            record.status = decision.error_status
            await self._send_error(send, decision.error_status)
            return
        await self.app(scope, receive, _recording(send, record))

    async def _drop(
        self, scope: Scope, receive: Receive, send: Send, record: RequestRecord, *, after: bool
    ) -> NoReturn:
        status = 200
        if after:
            await self.app(scope, receive, _recording(_discard, record))
            status = record.status or status
        await _send_fragment(send, status)
        raise InjectedConnectionDrop

    async def _send_error(self, send: Send, status: int) -> None:
        body, content_type = self.render_error(status)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        if status in RETRY_AFTER:
            headers.append((b"retry-after", RETRY_AFTER[status]))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _recording(send: Send, record: RequestRecord) -> Send:
    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        await send(message)

    return recording_send


async def _discard(message: Message) -> None:
    """A send that loses the response: the work happened, the client never hears of it."""


async def _send_fragment(send: Send, status: int) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(_DROP_ANNOUNCED_LENGTH).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": _DROP_FRAGMENT, "more_body": True})


# --- /_control routes -------------------------------------------------------------------------

_JSON = "application/json"
Stub = NamedDependency[StubState]


@get("/faults", sync_to_thread=False)
def _show_faults(stub: Stub) -> Response[bytes]:
    return Response(msgspec.json.encode(stub.faults.current()), media_type=_JSON)


@put("/faults", status_code=200)
async def _set_faults(request: Request[Any, Any, Any], stub: Stub) -> Response[bytes]:
    try:
        faults = msgspec.json.decode(await request.body(), type=Faults)
    except msgspec.DecodeError as exc:
        return Response(msgspec.json.encode({"detail": str(exc)}), status_code=400, media_type=_JSON)
    return Response(msgspec.json.encode(stub.faults.set(faults)), media_type=_JSON)


@delete("/faults", sync_to_thread=False)
def _clear_faults(stub: Stub) -> None:
    stub.faults.clear()


@get("/requests", sync_to_thread=False)
def _show_requests(stub: Stub) -> Response[bytes]:
    return Response(stub.journal.snapshot(), media_type=_JSON)


@delete("/requests", sync_to_thread=False)
def _clear_requests(stub: Stub) -> None:
    stub.journal.clear()


def control_router(state: StubState) -> Router:
    """The ``/_control`` routes bound to one stub's state."""

    def provide_state() -> StubState:
        return state

    return Router(
        path=CONTROL_PREFIX,
        route_handlers=[_show_faults, _set_faults, _clear_faults, _show_requests, _clear_requests],
        dependencies={"stub": Provide(provide_state, sync_to_thread=False)},
        include_in_schema=False,
    )


def install_fault_injection(app: Litestar, state: StubState, render_error: ErrorRenderer) -> Litestar:
    """Wrap the app's outermost HTTP handler so unmatched routes are journaled and faulted too."""
    app.asgi_handler = _traced(FaultInjectionMiddleware(app.asgi_handler, state, render_error))
    return app


_tracer = trace.get_tracer("billing_hub.stub")


def _traced(app: ASGIApp) -> ASGIApp:
    """A SERVER span per request that continues the caller's W3C trace, as a real system would.

    It uses the process's global tracer provider: a no-op unless the process configured one.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or _is_control(scope["path"]):
            await app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = 500

        async def sender(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with _tracer.start_as_current_span(
            scope["method"], context=propagate.extract(carrier), kind=SpanKind.SERVER
        ) as span:
            try:
                await app(scope, receive, sender)
            finally:
                route = str(scope.get("path_template") or "").replace(":str}", "}") or "unmatched"
                span.update_name(f"{scope['method']} {route}")
                span.set_attributes(
                    {"http.request.method": scope["method"], "http.route": route, "http.response.status_code": status}
                )

    return middleware


def create_stub_app(
    route_handlers: Sequence[Any],
    render_error: ErrorRenderer,
    exception_handlers: ExceptionHandlersMap | None = None,
) -> Litestar:
    """A Litestar app with the stub's routes, ``/_control`` and fault injection installed.

    ``exception_handlers`` are app-wide so that unmatched routes answer in the stub's dialect too.
    """
    state = StubState()
    app = Litestar(
        route_handlers=[*route_handlers, control_router(state)],
        exception_handlers=exception_handlers or {},
        openapi_config=None,
    )
    app.state.stub = state
    return install_fault_injection(app, state, render_error)


# --- running as a process -----------------------------------------------------------------------


class _HideInjectedDrops(logging.Filter):
    """Injected drops are intended; keep their tracebacks out of the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedConnectionDrop))


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _trace_from_environment() -> None:
    """Stubs export spans the way the hub does: over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME", "billing-hub-stub")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def run_stub(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` with uvicorn until interrupted (SIGINT/SIGTERM)."""
    _trace_from_environment()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if _available("uvloop") else "asyncio",
        http="httptools" if _available("httptools") else "h11",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    logging.getLogger("uvicorn.error").addFilter(_HideInjectedDrops())
    uvicorn.Server(config).run()
