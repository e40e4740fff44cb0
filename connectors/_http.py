"""The one place connectors get their HTTP client: explicit timeouts, a chosen transport.

The transport is chosen by measurement (``make bench-hop``): on this 2-core box one ERP hop cost
1.30 ms of client CPU through httpx's own transport and 0.79 ms through httpx-aiohttp's transport
(0.35 ms with raw aiohttp), so the default is the aiohttp transport behind the httpx API.
``BILLING_HUB_HTTP_TRANSPORT=httpx`` selects httpx's.
"""

from __future__ import annotations

from typing import Literal

import httpx

__all__ = ["TransportKind", "make_client"]

TransportKind = Literal["aiohttp", "httpx"]


def _transport(kind: TransportKind, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
        return transport
    return httpx.AsyncHTTPTransport(limits=limits, retries=0)


def make_client(
    base_url: str,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    transport: TransportKind = "aiohttp",
    max_connections: int = 100,
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        transport=_transport(transport, limits),
        limits=limits,
        follow_redirects=False,
    )
