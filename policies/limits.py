"""Shape limits on JSON bodies: nesting depth and array length, checked before typed decoding.

msgspec would decode a 10,000-deep array happily and then Litestar would walk it again; a small
iterative walk over the untyped value refuses such bodies first, without recursion of our own.

Most bodies are small enough that counting bytes proves them within both limits, and then they are
not decoded twice: nesting one level deeper takes one more ``{`` or ``[``, and an array of n items
has n - 1 commas, wherever those characters appear. Counting over-estimates (brackets and commas
inside strings count too), so it can only send a body to the walk, never let a bad one through. A
body skipped this way that is not JSON at all is refused by the typed decoder right after.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ShapeViolation", "check_json_shape", "malformed_json_detail", "walk_json_shape"]

_UNTYPED = msgspec.json.Decoder()


class ShapeViolation(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "malformed" | "too_deep" | "array_too_long"


def check_json_shape(body: bytes, *, max_depth: int, max_array_length: int) -> None:
    # An empty body goes to the walk: it is not JSON, and Litestar treats it as no body at all.
    if body and body.count(b"{") + body.count(b"[") <= max_depth and body.count(b",") < max_array_length:
        return
    walk_json_shape(body, max_depth=max_depth, max_array_length=max_array_length)


def malformed_json_detail(exc: Exception) -> str:
    """What a 400 says of a body msgspec could not decode. Bad UTF-8 inside a string is a
    ``UnicodeDecodeError`` up to msgspec 0.19 and a ``DecodeError`` saying "UTF-8" since."""
    if isinstance(exc, UnicodeDecodeError) or "UTF-8" in str(exc):
        return "the request body is not valid UTF-8 JSON"
    return "the request body is not valid JSON"


def walk_json_shape(body: bytes, *, max_depth: int, max_array_length: int) -> None:
    """The check itself: decode without types and walk the value (also refuses malformed JSON)."""
    try:
        value = _UNTYPED.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ShapeViolation("malformed", malformed_json_detail(exc)) from None
    except RecursionError:
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
