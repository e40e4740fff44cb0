"""OpenAPI generation: schema for the money types, the document per version, and the drift check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from canonical import Amount, Canonical, Money, Quantity, money_pattern, quantity_pattern

__all__ = [
    "MoneySchemaPlugin",
    "close_canonical_schemas",
    "document_idempotency_keys",
    "openapi_config",
    "openapi_document",
    "write_openapi",
]


class MoneySchemaPlugin(OpenAPISchemaPlugin):
    """Money travels as a decimal string with at most two places; say so in the schema."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return isinstance(value, type) and issubclass(value, Money | Quantity)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        kind = field_definition.annotation
        if issubclass(kind, Quantity):
            return Schema(
                type="string",  # type: ignore[arg-type]
                pattern=quantity_pattern(),
                description="Quantity: a decimal string with at most four places",
                examples=["1"],
            )
        non_negative = issubclass(kind, Amount)
        return Schema(
            type="string",  # type: ignore[arg-type]
            pattern=money_pattern(kind),
            description=("Non-negative amount" if non_negative else "Amount")
            + ": a decimal string with at most two places, never a JSON number",
            examples=["125.00"],
        )


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Billing Integration Hub",
        version=version,
        description="Governed canonical APIs for patient-billing back-office integration.",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
    )


def _strict_structs() -> dict[str, type[Any]]:
    """Canonical Structs reject unknown fields; the schema must say so or generated clients add them."""
    found: dict[str, type[Any]] = {}
    pending: list[type[Any]] = [Canonical]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def close_canonical_schemas(app: Litestar) -> None:
    schemas = app.openapi_schema.components.schemas or {}
    strict = _strict_structs()
    for name, schema in schemas.items():
        if name in strict:
            schema.additional_properties = False


_IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=False,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
    description=(
        "draft-ietf-httpapi-idempotency-key-header: a retry with the same key and body replays the first "
        "answer (Idempotent-Replayed: true); the same key with another body is 422, while the first is in "
        "flight 409. The policy may make it required (400 without it)."
    ),
)


def document_idempotency_keys(app: Litestar, operations: frozenset[str]) -> None:
    """The governance middleware reads ``Idempotency-Key`` from the headers, not the handlers, so
    Litestar does not know to document it: add it to the operations that honour it."""
    for item in (app.openapi_schema.paths or {}).values():
        for operation in (item.post, item.put, item.patch):
            if operation is not None and operation.operation_id in operations:
                operation.parameters = [*(operation.parameters or []), _IDEMPOTENCY_KEY]


def openapi_document(app: Litestar) -> dict[str, Any]:
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


def write_openapi(app: Litestar, path: Path) -> None:
    encoded = msgspec.json.format(msgspec.json.encode(openapi_document(app)), indent=2)
    path.write_bytes(encoded + b"\n")
