"""The one place connectors get their HTTP client: explicit timeouts, a chosen transport.

The transport is chosen by measurement (``make bench-hop``): on this 2-core box one ERP hop cost
1.30 ms of client CPU through httpx's own transport and 0.79 ms through httpx-aiohttp's transport
(0.35 ms with raw aiohttp), so the default is the aiohttp transport behind the httpx API.
``BILLING_HUB_HTTP_TRANSPORT=httpx`` selects httpx's.
"""

from __future__ import annotations

from typing import Literal

import httpx

__all__ = ["ConnectorClient", "TransportKind", "make_client"]

TransportKind = Literal["aiohttp", "httpx"]


def _transport(kind: TransportKind, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
        return transport
    return httpx.AsyncHTTPTransport(limits=limits, retries=0)


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing and sends nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NO_COOKIES = _NoCookies()


class ConnectorClient(httpx.AsyncClient):
    """httpx's client without a cookie jar. Connectors authenticate with headers; one client serves
    every hub client's deliveries, so a jar would carry whatever session cookie a target set into
    later requests made for someone else. Extracting cookies from every response was also ~6% of a
    dispatcher's CPU (py-spy)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise ValueError("connector clients keep no cookies")


def make_client(
    base_url: str,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    transport: TransportKind = "aiohttp",
    max_connections: int = 100,
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return ConnectorClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        transport=_transport(transport, limits),
        limits=limits,
        follow_redirects=False,
    )
