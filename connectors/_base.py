"""Shared plumbing for HTTP connectors: send, map the answer to an outcome, decode the body.

Each connector states its operations; this base turns transport errors and status codes into the
error tree so no connector writes its own if-chain over statuses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

import httpx
import msgspec
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from connectors._errors import ConnectorError, RejectedError
from connectors._outcomes import Outcome, error_for_response, error_for_transport, outcome_for_status
from connectors._protocol import ConnectorConfig, Health, Operation

__all__ = ["ATTEMPT", "HttpConnector", "decode_body"]

_tracer = trace.get_tracer("billing_hub.connectors")
# The delivery attempt being made (1 = first): a retry's client spans carry http.request.resend_count.
ATTEMPT: ContextVar[int] = ContextVar("billing_hub_attempt", default=1)


def _describe(span: trace.Span, connector: HttpConnector, method: str) -> None:
    """HTTP client semantic conventions, minus the path and query: both can carry an account number
    or a FHIR identifier search, so ``url.full`` holds the origin only."""
    base = connector.client.base_url
    span.set_attributes(
        {
            "http.request.method": method,
            "server.address": base.host,
            "server.port": base.port or (443 if base.scheme == "https" else 80),
            "url.full": f"{base.scheme}://{base.netloc.decode('ascii')}",
            "billing_hub.connector": connector.kind,
        }
    )
    resend = ATTEMPT.get() - 1
    if resend > 0:
        span.set_attribute("http.request.resend_count", resend)


T = TypeVar("T")
_URL_CACHE = 256
# Not "//...": that is a network-path reference (host and all) to httpx, not a path to join.
_PLAIN_PATH = re.compile(r"(?!//)[A-Za-z0-9/_.~-]*")


class HttpConnector:
    """Base for connectors that talk HTTP through an injected ``httpx.AsyncClient``."""

    kind: ClassVar[str] = "http"
    config_type: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    health_path: ClassVar[str] = "/"

    def __init__(self, config: ConnectorConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        self._operations: dict[str, Operation] = {}
        self._urls: dict[str, httpx.URL] = {}

    @property
    def operations(self) -> Mapping[str, Operation]:
        return self._operations

    def _absolute(self, path: str) -> httpx.URL | str:
        """The client's base URL + ``path``, built once per path: httpx re-parses and re-joins a
        relative URL on every request (8% of a dispatcher's CPU). Same rule as httpx's own merge
        (the base path, then the path without its leading slash), for plain paths only (letters,
        digits, ``/_.~-``); anything else goes to httpx as it is, as does every path once the cache
        holds _URL_CACHE of them."""
        url = self._urls.get(path)
        if url is not None:
            return url
        if not _PLAIN_PATH.fullmatch(path) or len(self._urls) >= _URL_CACHE:
            return path
        base = self.client.base_url
        url = base.copy_with(raw_path=base.raw_path + path.lstrip("/").encode("ascii"))
        self._urls[path] = url
        return url

    def offer(self, name: str, payload_type: type[Any], handler: Any) -> None:
        self._operations[name] = Operation(name=name, payload_type=payload_type, handler=handler)

    async def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        error_code: Any = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send one request; return a 2xx response or raise from the error tree."""
        body = content if content is not None else (msgspec.json.encode(json) if json is not None else None)
        merged = {"content-type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
        with _tracer.start_as_current_span(method, kind=SpanKind.CLIENT) as span:
            if span.is_recording():
                _describe(span, self, method)
            propagate.inject(merged)  # the target continues our trace (W3C traceparent/tracestate)
            try:
                response = await self.client.request(
                    method,
                    self._absolute(url),
                    content=body,
                    headers=merged,
                    params=params,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s,
                )
            except httpx.HTTPError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR))
                raise error_for_transport(self.kind, exc) from None
            span.set_attribute("http.response.status_code", response.status_code)
            if outcome_for_status(response.status_code) is not Outcome.SUCCESS:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
                code = error_code(response) if error_code is not None else None
                raise error_for_response(self.kind, response, code)
            return response

    async def check(self) -> Health:
        started = time.perf_counter()
        try:
            await self.send("GET", self.health_path)
        except ConnectorError as exc:
            return Health(ok=False, detail=exc.message)
        return Health(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))

    async def aclose(self) -> None:
        await self.client.aclose()


def decode_body(target: str, response: httpx.Response, type_: type[T]) -> T:
    """Decode a 2xx body; a body we cannot read is the target breaking its contract."""
    try:
        return msgspec.json.decode(response.content, type=type_)
    except msgspec.DecodeError:
        raise RejectedError(f"{target} answered with an unexpected body", status=response.status_code) from None
