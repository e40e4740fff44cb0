"""A JSON response sent as it is, for the routes every client calls most.

A handler returning a Struct (or a ``Response``) goes through Litestar's response pipeline: a
``Response``, its type-encoder lookup, a mutable header collection, then an ``ASGIResponse``. That was
12-17 % of a ``GET /v1/transactions/{id}`` (py-spy, in-process). ``JsonView`` is that final
``ASGIResponse`` built directly: the view encoded by the canonical encoder, two header lines, sent in
two ASGI messages. Being an ``ASGIResponse``, Litestar passes it through untouched; its OpenAPI entry
comes from the handler's ``responses`` (see :func:`documented`), since the annotation no longer
names the view type.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi import ResponseSpec
from litestar.response.base import ASGIResponse

from canonical import encode

__all__ = ["JsonView", "documented"]

_JSON = b"application/json"


class JsonView(ASGIResponse):
    __slots__ = ("_raw_headers",)

    def __init__(
        self,
        view: Any,
        *,
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        media_type: bytes = _JSON,
    ) -> None:
        # Not super().__init__: that builds the mutable header collection this class exists to skip.
        body = encode(view)
        length = str(len(body)).encode()
        self._raw_headers = [(b"content-type", media_type), (b"content-length", length), *(headers or ())]
        self.body, self.status_code = body, status
        self.background, self.is_head_response, self._encoded_cookies = None, False, ()

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        return self._raw_headers


def documented(view_type: type[Any], status: int, description: str) -> dict[int, ResponseSpec]:
    """The OpenAPI entry a handler annotated with the view type would have had."""
    return {status: ResponseSpec(view_type, description=description, generate_examples=False)}
