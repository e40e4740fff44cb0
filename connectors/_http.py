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

        return _RefusalsAsConnectErrors(AiohttpTransport(limits=limits))
    return httpx.AsyncHTTPTransport(limits=limits, retries=0)


class _RefusalsAsConnectErrors(httpx.AsyncBaseTransport):
    """httpx-aiohttp raises ``ConnectTimeout`` for every aiohttp connection error, a refused connect
    included; here a refusal becomes the ``ConnectError`` httpx's own transport raises, so spans and
    recorded attempts say what happened (an operator chasing "timed out" looks at the wrong thing)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            if _refused(exc):
                raise httpx.ConnectError(str(exc), request=request) from exc
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def _refused(exc: BaseException) -> bool:
    """Whether an operating-system error other than a timeout caused ``exc`` (a refused or
    unreachable connect). Timeouts are OSErrors too, so they are excluded by class."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


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
