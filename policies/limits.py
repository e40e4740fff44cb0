"""Shape limits on JSON bodies: nesting depth and array length, checked before typed decoding.

msgspec would decode a 10,000-deep array happily and then Litestar would walk it again; a small
iterative walk over the untyped value refuses such bodies first, without recursion of our own.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ShapeViolation", "check_json_shape"]

_UNTYPED = msgspec.json.Decoder()


class ShapeViolation(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "malformed" | "too_deep" | "array_too_long"


def check_json_shape(body: bytes, *, max_depth: int, max_array_length: int) -> None:
    try:
        value = _UNTYPED.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise ShapeViolation("malformed", "the request body is not valid JSON") from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Any
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            if len(node) > max_array_length:
                raise ShapeViolation("array_too_long", f"an array has more than {max_array_length} items")
            children = node
        else:
            continue
        if depth > max_depth:
            raise ShapeViolation("too_deep", f"the body nests deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
