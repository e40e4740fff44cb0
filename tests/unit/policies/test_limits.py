"""JSON shape limits: the byte-count shortcut never lets through what the full walk refuses."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.limits import ShapeViolation, check_json_shape, walk_json_shape

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab,[]{}"\\ ', max_size=6),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=4), children, max_size=5),
    max_leaves=40,
)


def _kind(check: Any, body: bytes, depth: int, length: int) -> str | None:
    try:
        check(body, max_depth=depth, max_array_length=length)
    except ShapeViolation as violation:
        return violation.kind
    return None


@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=6))
def test_the_shortcut_refuses_whatever_the_walk_refuses(value: Any, depth: int, length: int) -> None:
    body = msgspec.json.encode(value)
    assert _kind(check_json_shape, body, depth, length) == _kind(walk_json_shape, body, depth, length)


def test_too_deep_and_too_long_are_refused() -> None:
    deep = b"[" * 40 + b"]" * 40
    with pytest.raises(ShapeViolation) as too_deep:
        check_json_shape(deep, max_depth=32, max_array_length=100)
    assert too_deep.value.kind == "too_deep"
    long = msgspec.json.encode({"lines": list(range(101))})
    with pytest.raises(ShapeViolation) as too_long:
        check_json_shape(long, max_depth=32, max_array_length=100)
    assert too_long.value.kind == "array_too_long"


def test_brackets_and_commas_inside_strings_only_send_a_body_to_the_walk() -> None:
    body = msgspec.json.encode({"memo": "[[[[,,,,]]]]" * 10})
    check_json_shape(body, max_depth=3, max_array_length=3)  # within both limits once decoded


def test_malformed_json_is_left_to_the_typed_decoder_when_small_and_refused_when_walked() -> None:
    check_json_shape(b"{nope", max_depth=32, max_array_length=100)
    with pytest.raises(ShapeViolation) as malformed:
        walk_json_shape(b"{nope", max_depth=32, max_array_length=100)
    assert malformed.value.kind == "malformed"
