"""The base of every canonical Struct: immutable, keyword-only, strict about unknown fields."""

from __future__ import annotations

import msgspec

__all__ = ["Canonical"]


class Canonical(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Canonical objects are values: frozen so a delivery can never mutate what was accepted.

    Unknown fields are rejected because a typo in an optional field would otherwise vanish silently
    (``prior_authorisation`` for ``prior_authorization`` on a claim is a denied claim later).
    """
