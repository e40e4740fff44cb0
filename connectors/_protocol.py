"""The Connector contract: one class per target system, a small async surface.

The dispatcher knows nothing about FHIR, X12 or ledgers. It hands a connector an operation name, the
canonical payload (JSON bytes as stored in the outbox) and a stable external reference, and gets back
a ``DeliveryResult`` or one of the errors in ``connectors._errors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

import msgspec

__all__ = ["Connector", "ConnectorConfig", "DeliveryResult", "Health", "Operation", "OperationHandler"]


class ConnectorConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every connector's configuration spec starts with where the target is and how long to wait."""

    base_url: str
    # Finite and positive: a zero, negative or NaN timeout fails every call, an infinite one never ends it.
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3_600)] = 5.0
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3_600)] = 2.0


class Health(msgspec.Struct, kw_only=True, frozen=True):
    ok: bool
    detail: str = ""
    latency_ms: float | None = None


class DeliveryResult(msgspec.Struct, kw_only=True, frozen=True):
    """What the target made of a delivery: its own identifiers, never patient data, and the HTTP
    status of the answer that completed it (the last call, where a delivery takes several)."""

    reference: str | None = None
    details: dict[str, str] = {}
    status: int | None = None


OperationHandler = Callable[[Any, str], Awaitable[DeliveryResult]]


class Operation(msgspec.Struct, kw_only=True, frozen=True):
    """An operation a connector offers: the canonical type it takes and the coroutine doing it."""

    name: str
    payload_type: type[Any]
    handler: OperationHandler


@runtime_checkable
class Connector(Protocol):
    kind: ClassVar[str]
    config_type: ClassVar[type[ConnectorConfig]]

    @property
    def operations(self) -> Mapping[str, Operation]: ...

    async def check(self) -> Health: ...

    async def aclose(self) -> None: ...
