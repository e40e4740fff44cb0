"""One place that knows how canonical values go to and from JSON.

Decoders are built once per type and reused (msgspec's own advice); ``Money`` is decoded through a
hook so that only decimal strings are accepted and encoded back as strings with two places.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from canonical._money import Money, Quantity

__all__ = ["decode", "decoder", "enc_hook", "encode", "money_dec_hook", "to_builtins"]

T = TypeVar("T")


def money_dec_hook(type_: type[Any], obj: Any) -> Any:
    if isinstance(type_, type) and issubclass(type_, Money | Quantity):
        return type_.from_wire(obj)
    raise NotImplementedError(f"no decoder for {type_!r}")


def enc_hook(obj: Any) -> Any:
    if isinstance(obj, Money | Quantity):
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    """One Decoder per type, built on first use (msgspec's advice: reuse decoders)."""
    found = _DECODERS.get(type_)
    if found is None:
        found = _DECODERS[type_] = msgspec.json.Decoder(type_, dec_hook=money_dec_hook)
    return found


_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


def decode(data: bytes | str, type_: type[T]) -> T:
    return decoder(type_).decode(data)


def encode(obj: Any) -> bytes:
    return _ENCODER.encode(obj)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj, enc_hook=enc_hook)
