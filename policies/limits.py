"""Shape limits on JSON bodies: nesting depth and array length, checked before typed decoding.

msgspec would decode a 10,000-deep array happily and then Litestar would walk it again; a small
iterative walk over the untyped value refuses such bodies first, without recursion of our own.

Most bodies are small enough that counting bytes proves them within both limits, and then they are
not decoded twice: nesting one level deeper takes one more ``{`` or ``[``, and an array of n items
has n - 1 commas, wherever those characters appear. Counting over-estimates (brackets and commas
inside strings count too), so it can only send a body to the walk, never let a bad one through. A
body skipped this way that is not JSON at all is refused by the typed decoder right after.

Duplicate member names are refused too. RFC 8259 leaves their meaning open and msgspec, like most
decoders, keeps the last one, so ``{"debit": "900.00", ..., "debit": "9.00"}`` would post 9.00
without a word: a body whose meaning depends on the reader is bad input (I-JSON, RFC 7493, forbids
it). The stdlib's C scanner hands each object's members to a hook as a list, which costs about 7 us
for a journal; nothing else here sees an object before its duplicates are merged. Most bodies repeat
nothing, and counting colons proves that for about half the cost (``_no_member_repeats``): a
decode and re-encode by msgspec drops repeated members, and with them their colons. What counting
cannot prove goes to the stdlib's pass, which alone ever finds a repeat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "DuplicateMember",
    "ShapeViolation",
    "check_json_shape",
    "find_duplicate_member",
    "malformed_json_detail",
    "walk_json_shape",
]

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


@dataclass(frozen=True, slots=True)
class DuplicateMember:
    """The first object that names a member twice (an object before the objects inside it, then in
    document order): where it is and the name."""

    path: tuple[str | int, ...]
    name: str

    def describe(self, known_names: frozenset[str]) -> str:
        """Says which member and where, naming only what ``known_names`` (the schema's own field
        names) holds: a name the client made up could carry anything, PHI included."""
        where = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" if part in known_names else ".*" for part in self.path
        )
        what = f'the member "{self.name}"' if self.name in known_names else "a member name"
        return f"{what} appears more than once in the object at {where}"


class _Repeated(Exception):
    pass


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({name for name, _ in pairs}) != len(pairs):
        raise _Repeated
    # Nothing is built: this pass only looks for repeats.


# Numbers are kept as their text: nothing is computed from them, and Python's limit on the digits of
# an int must not make this pass give up on a body the typed decoder then reads.
_LOOK_FOR_REPEATS = json.JSONDecoder(object_pairs_hook=_refuse_repeats, parse_int=str, parse_float=str)


class _Members(list[tuple[str, Any]]):
    """An object as its member list, repeats kept: only built once a repeat is known to exist."""


_KEEP_MEMBERS = json.JSONDecoder(object_pairs_hook=_Members, parse_int=str, parse_float=str)


def find_duplicate_member(body: bytes) -> DuplicateMember | None:
    """The first object naming a member twice, or ``None``. A body the stdlib cannot read as JSON
    gives ``None``: the typed decoder right after refuses it with its own reason. One that repeats
    a member and is broken further on is refused here as not JSON: the first pass stops at the
    repeat, the second reads on (msgspec would stop at the first object's own checks, and a journal
    then fails to balance on the value it kept, a misleading reason)."""
    if _no_member_repeats(body):
        return None
    return _find_duplicate_member_exactly(body)


# The stdlib's pass needs a few more levels of recursion than msgspec (its hook, its own frames): a
# body msgspec just manages to read could make that pass raise RecursionError, a refusal, not "no
# repeat". Nesting this shallow leaves it three quarters of Python's default limit of 1,000 (the hub
# calls this about 20 frames deep). A body nests at most as deep as its brackets and half its length.
_SHALLOW_ENOUGH = 250
_BACKSLASH = ord("\\")  # an int: ``in`` is then one memchr, where a one-byte ``bytes`` costs a search


def _no_member_repeats(body: bytes) -> bool:
    """True only if no object in ``body`` names a member twice; False says nothing.

    A colon byte in JSON is a member's separator or part of a string (numbers, literals and
    whitespace have none), so the body holds M + C colons: M members, C inside strings. msgspec
    keeps the last of repeated members and writes one colon per member and ':' unescaped, so its
    re-encoding holds U + C' colons: U members kept, C' inside the strings kept. U <= M, and U < M
    exactly when some object repeats a member. Without a \\u escape a colon inside a string is
    that colon byte (the other escapes stand for other characters, and no byte of a multi-byte
    UTF-8 character is 0x3A), and the strings kept are some of the body's, so C' <= C. Equal
    counts then leave U == M. (With \\u003a, a repeat can hide behind a colon that was escaped.)

    Both follow JSON's grammar and read those escapes alike, the stdlib straying only to read NaN
    and Infinity, which msgspec refuses: a body msgspec reads holds the same objects for the
    stdlib's pass, as far as that pass reads.
    """
    if _BACKSLASH in body and b"\\u" in body:
        return False
    if len(body) > 2 * _SHALLOW_ENOUGH and body.count(b"{") + body.count(b"[") > _SHALLOW_ENOUGH:
        return False
    try:
        kept = msgspec.json.encode(_UNTYPED.decode(body))
    except Exception:  # not JSON to msgspec (or too big a number for it): proves nothing
        return False
    return kept.count(b":") == body.count(b":")


def _find_duplicate_member_exactly(body: bytes) -> DuplicateMember | None:
    try:
        text = body.decode("utf-8")
        _LOOK_FOR_REPEATS.decode(text)
        return None
    except _Repeated:
        pass
    except RecursionError:
        raise ShapeViolation("too_deep", "the body nests too deeply to be read") from None
    except ValueError:  # not JSON, or not UTF-8
        return None
    try:
        return _locate(_KEEP_MEMBERS.decode(text))
    except RecursionError:
        raise ShapeViolation("too_deep", "the body nests too deeply to be read") from None
    except ValueError:
        raise ShapeViolation("malformed", "the request body is not valid JSON") from None


def _locate(value: Any) -> DuplicateMember | None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:  # an object's own members first, then its children in document order
        node, path = stack.pop()
        children: list[tuple[Any, tuple[str | int, ...]]]
        if isinstance(node, _Members):
            seen: set[str] = set()
            for name, _ in node:
                if name in seen:
                    return DuplicateMember(path, name)
                seen.add(name)
            children = [(child, (*path, name)) for name, child in node]
        elif isinstance(node, list):
            children = [(child, (*path, index)) for index, child in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None
