"""Marks for protected health information, read from the types rather than a hand list.

A field is PHI when its annotation carries ``PHI`` (``Annotated[T, PHI]``). ``phi_paths`` walks a
canonical type and returns the JSON paths of every marked field, so redaction follows the model as
it grows instead of a list somebody forgets to update.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from msgspec import inspect as mi

__all__ = ["PHI", "is_phi", "phi_paths"]

PHI = msgspec.Meta(extra={"phi": True})


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
