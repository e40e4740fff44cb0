"""Marks for protected health information, read from the types rather than a hand list.

A field is PHI when its annotation carries ``PHI`` (``Annotated[T, PHI]``). ``phi_paths`` walks a
canonical type and returns the JSON paths of every marked field, so redaction follows the model as
it grows instead of a list somebody forgets to update. ``phi_tree`` is the same paths as a tree, for
walking a value once; ``phi_values`` lists the PHI leaf values of an object (sentinel tests, log
scrubbing, the connector contract suite's "no PHI in what a connector returns").
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from functools import cache
from typing import Any, TypeAlias, cast

import msgspec
from msgspec import inspect as mi

from canonical._codec import to_builtins

__all__ = ["PHI", "PHI_ITEMS", "PhiTree", "is_phi", "phi_paths", "phi_tree", "phi_values"]

PHI = msgspec.Meta(extra={"phi": True})
PHI_ITEMS = "[]"
# A node maps a field name (or PHI_ITEMS for list items) to its subtree; None marks a PHI value.
PhiTree: TypeAlias = dict[str, "PhiTree | None"]


def is_phi(info: mi.Type) -> bool:
    return isinstance(info, mi.Metadata) and bool((info.extra or {}).get("phi"))


@cache
def phi_paths(struct_type: type[Any]) -> frozenset[str]:
    """Dotted paths (``[]`` for list items) of every PHI field reachable from ``struct_type``."""
    found: set[str] = set()
    _walk(mi.type_info(struct_type), "", found)
    return frozenset(found)


def _walk(info: mi.Type, prefix: str, found: set[str]) -> None:
    if is_phi(info):
        found.add(prefix)
        return
    match info:
        case mi.Metadata():
            _walk(info.type, prefix, found)
        case mi.StructType():
            for field in info.fields:
                _walk(field.type, f"{prefix}.{field.encode_name}" if prefix else field.encode_name, found)
        case mi.ListType() | mi.SetType() | mi.FrozenSetType() | mi.VarTupleType():
            _walk(info.item_type, f"{prefix}[]", found)
        case mi.UnionType():
            for member in info.types:
                _walk(member, prefix, found)
        case _:
            return


def phi_tree(type_: type[Any]) -> PhiTree:
    """``phi_paths(type_)`` as a tree: ``coverages[].member_id`` is ``{"coverages": {"[]": {"member_id": None}}}``."""
    return _build_tree(cast(Hashable, type_))


@cache
def _build_tree(type_: Any) -> PhiTree:
    tree: PhiTree = {}
    for path in sorted(phi_paths(type_)):
        node = tree
        segments = _segments(path)
        for segment in segments[:-1]:
            child = node.setdefault(segment, {})
            if child is None:  # an enclosing value is PHI already: all below it goes too
                break
            node = child
        else:
            node[segments[-1]] = None
    return tree


def _segments(path: str) -> list[str]:
    """``coverages[].member_id`` -> ``["coverages", "[]", "member_id"]``."""
    out: list[str] = []
    for part in path.split("."):
        name = part.rstrip("[]")
        if name:
            out.append(name)
        out.extend([PHI_ITEMS] * ((len(part) - len(name)) // 2))
    return out


def phi_values(obj: Any, type_: type[Any]) -> set[str]:
    """Every PHI leaf value in ``obj`` (a Struct of ``type_`` or its builtins form) as a string
    (dates in ISO form, numbers as text)."""
    found: set[str] = set()
    _collect(to_builtins(obj), phi_tree(type_), found)
    return found


def _collect(value: Any, tree: PhiTree, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, sub in tree.items():
            if key == PHI_ITEMS or value.get(key) is None:
                continue
            if sub is None:
                found.update(_leaves(value[key]))
            else:
                _collect(value[key], sub, found)
    elif isinstance(value, list) and PHI_ITEMS in tree:
        sub = tree[PHI_ITEMS]
        for item in value:
            if sub is None:
                found.update(_leaves(item))
            else:
                _collect(item, sub, found)


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        if value:
            yield value
    elif value is not None and not isinstance(value, bool):
        yield str(value)
