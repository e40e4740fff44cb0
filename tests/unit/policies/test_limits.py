"""JSON shape limits: the byte-count shortcut never lets through what the full walk refuses; a
member name repeated in one object is found, with where it is, and the colon-count shortcut to "no
repeat" never answers otherwise than the pass that looks for repeats."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.limits import (
    DuplicateMember,
    ShapeViolation,
    _find_duplicate_member_exactly,
    _no_member_repeats,
    check_json_shape,
    find_duplicate_member,
    walk_json_shape,
)

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


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_body_encoded_from_any_value_has_no_repeated_member(value: Any) -> None:
    assert find_duplicate_member(msgspec.json.encode(value)) is None


@settings(max_examples=300, deadline=None)
@given(json_values, st.text(max_size=4))
def test_a_repeat_added_anywhere_is_found_where_it_was_added(value: Any, name: str) -> None:
    """Wrap the value in an object that names ``name`` twice, inside a list inside an object."""
    member = msgspec.json.encode(name)
    inner = b"{" + member + b":1," + member + b":" + msgspec.json.encode(value) + b"}"
    body = b'{"lines":[0,' + inner + b"]}"
    assert find_duplicate_member(body) == DuplicateMember(("lines", 1), name)


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b'{"debit":"900.00","credit":"1.00","debit":"9.00"}', DuplicateMember((), "debit")),
        (b'{"a":1,"\\u0061":2}', DuplicateMember((), "a")),  # an escape names the same member
        # the first in document order, past a deeper one later on
        (b'{"x":{"k":1,"k":2},"y":[{"k":1,"k":2}]}', DuplicateMember(("x",), "k")),
        (b'{"n":' + b"9" * 5000 + b',"n":1}', DuplicateMember((), "n")),  # past Python's int-digit limit
        (b'{"a":{"a":1},"b":[{"a":1},{"a":2}]}', None),  # the same name in different objects
        (b"{nope", None),  # not JSON: the typed decoder refuses it with its own reason
        (b'{"a":"\xff","a":1}', None),  # not UTF-8: likewise
    ],
)
def test_repeated_members(body: bytes, found: DuplicateMember | None) -> None:
    assert find_duplicate_member(body) == found


def test_a_repeat_is_described_naming_only_schema_field_names() -> None:
    known = frozenset({"lines", "debit"})
    assert (
        DuplicateMember(("lines", 2), "debit").describe(known)
        == 'the member "debit" appears more than once in the object at $.lines[2]'
    )
    # A name the client made up may carry anything (PHI included): it is not repeated back.
    assert (
        DuplicateMember(("Jane Doe", 0), "1962-04-01").describe(known)
        == "a member name appears more than once in the object at $.*[0]"
    )


def test_a_repeat_before_nesting_past_the_parsers_reach_is_refused_as_too_deep() -> None:
    """The pass that locates a repeat reads past where the first one stopped: its recursion limit
    is a 400, never an unhandled RecursionError."""
    body = b'{"a":1,"a":2,"z":' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}"
    with pytest.raises(ShapeViolation) as too_deep:
        find_duplicate_member(body)
    assert too_deep.value.kind == "too_deep"


@pytest.mark.parametrize("body", [b'{"a":1,"a":2}x', b'[{"a":1,"a":2},]', b'[{"a":1,"a":2}'])
def test_a_repeat_in_a_body_broken_further_on_is_refused_as_not_json(body: bytes) -> None:
    """The pass that locates a repeat reads on past it, to where the body breaks."""
    with pytest.raises(ShapeViolation) as malformed:
        find_duplicate_member(body)
    assert malformed.value.kind == "malformed"


# JSON texts written out by hand, so that repeats are really in the text: a few member names spelled
# several ways (escapes included), strings holding colons and quotes raw and escaped, space around
# colons and commas, and now and then a body broken after its last value.
_PLAIN = ["a", "b", ":", " ", "é", r"\"", r"\\", r"\/", r"\n"]
_ESCAPED = [r"\u003a", r"\u0022", r"\u0061", r"\u005c", r"\ud83d\ude00"]
_SPACE = st.sampled_from(["", " ", "\n\t "])
_NUMBERS_AND_LITERALS = st.sampled_from(["0", "-1.5e3", "18446744073709551615", "1" * 30, "1e400", "true", "null"])


def _json_texts(pieces: list[str], names: list[str]) -> st.SearchStrategy[str]:
    strings = st.lists(st.sampled_from(pieces), max_size=4).map(lambda chosen: '"' + "".join(chosen) + '"')
    member_names = st.sampled_from(names) | strings

    def containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        arrays = st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
        members = st.tuples(member_names, _SPACE, _SPACE, children).map(lambda m: m[0] + m[1] + ":" + m[2] + m[3])
        objects = st.tuples(st.lists(members, max_size=5), _SPACE).map(lambda o: "{" + (o[1] + ",").join(o[0]) + "}")
        return arrays | objects

    return st.recursive(strings | _NUMBERS_AND_LITERALS, containers, max_leaves=25)


# Half the texts have no \u escape at all, the only ones the shortcut can prove free of repeats.
_json_texts_any = _json_texts(_PLAIN, ['"a"', '"b"', '"a:b"', '":"', r'"\""']) | _json_texts(
    _PLAIN + _ESCAPED, ['"a"', r'"\u0061"', '"b"', '"a:b"', r'"a\u003ab"', '":"', r'"\""', r'"\u0022"']
)
_endings = st.just(b"") | st.sampled_from([b" ", b"x", b",", b"]", b"}", b'"\xff"'])


def _outcome(find: Callable[[bytes], DuplicateMember | None], body: bytes) -> DuplicateMember | str | None:
    try:
        return find(body)
    except ShapeViolation as violation:
        return violation.kind


@settings(max_examples=1500, deadline=None)
@given(_json_texts_any, _endings)
def test_the_shortcut_to_no_repeat_answers_as_the_exact_pass_does(text: str, ending: bytes) -> None:
    body = text.encode() + ending
    assert _outcome(find_duplicate_member, body) == _outcome(_find_duplicate_member_exactly, body)


@settings(max_examples=300, deadline=None)
@given(_json_texts_any, st.lists(st.sampled_from(["[", '{"p":']), max_size=4))
def test_a_repeat_whose_colons_escaped_ones_make_up_for_is_found_at_any_depth(dropped: str, path: list[str]) -> None:
    """Keeping the second "k" drops 1 + dropped.count(":") colons, and as many \\u003a put them back."""
    repeats = '{"k":' + dropped + ',"k":0,"z":"' + "\\u003a" * (1 + dropped.count(":")) + '"}'
    body = "".join(path) + repeats + "".join("]" if opened == "[" else "}" for opened in reversed(path))
    where = tuple(0 if opened == "[" else "p" for opened in path)
    assert find_duplicate_member(body.encode()) == DuplicateMember(where, "k")


def test_a_repeat_behind_an_escaped_colon_is_found() -> None:
    """Dropping "a" takes a colon from the re-encoding, and the unescaped \\u003a puts one back."""
    body = b'{"a":"x","a":"y","b":"\\u003a"}'
    assert body.count(b":") == msgspec.json.encode(msgspec.json.decode(body)).count(b":")
    assert find_duplicate_member(body) == DuplicateMember((), "a")


def test_a_plain_body_takes_the_shortcut() -> None:
    assert _no_member_repeats(b'{"memo": "a:b", "lines": [{"account": "1000"}, {"account": "1100"}]}')


def test_the_shortcut_never_claims_a_body_too_deep_for_the_exact_pass() -> None:
    """msgspec reads a few levels deeper than the stdlib's pass with its hook can: a body in
    between is refused as too deep, not passed as free of repeats."""
    limit = sys.getrecursionlimit()
    for depth in range(limit // 2, limit + 1):
        body = b"[" * depth + b"]" * depth
        if _no_member_repeats(body):
            assert _outcome(_find_duplicate_member_exactly, body) is None, depth
