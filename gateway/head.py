"""HEAD on every resource that answers GET: the GET's status and header fields, without its content.

RFC 9110 section 9.3.2 (and 9.1: every general-purpose server MUST support GET and HEAD). Litestar
routes HEAD only to handlers that declare it, so every GET answered HEAD with a 405. Here a HEAD
is run as the GET it stands for, through routing, the policy chain (it is authenticated, rate
limited and audited as that GET: it costs the hub as much) and the handler; its content is dropped
on the way out, while the header fields stay the GET's, Content-Length included. The server sees the
request as the HEAD it is (the scope it hands over is not changed), so it never writes a body either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.types import ASGIApp

__all__ = ["allowed_methods", "head_as_get"]


def head_as_get(app: ASGIApp) -> ASGIApp:
    downstream: Any = app  # ASGI messages and scopes are plain dicts here, as in gateway/governance.py

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await downstream(scope, receive, send)
            return

        async def without_content(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # a streamed GET's chunks: none of them goes out
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await downstream({**scope, "method": "GET"}, receive, without_content)

    wrapped: ASGIApp = handler
    return wrapped


def allowed_methods(methods: Iterable[str]) -> str:
    """An ``Allow`` field value for a resource answering ``methods``: HEAD wherever GET is."""
    found = {method.strip().upper() for method in methods if method.strip()}
    if "GET" in found:
        found.add("HEAD")
    return ", ".join(sorted(found))
