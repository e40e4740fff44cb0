"""OpenAPI generation: schema for the money types, the document per version, and the drift check."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Response, Router
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import QueryParameter
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from canonical import Amount, Canonical, Money, Quantity, money_pattern, quantity_pattern

__all__ = [
    "MoneySchemaPlugin",
    "close_canonical_schemas",
    "document_idempotency_keys",
    "openapi_config",
    "openapi_document",
    "state_the_bounds",
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
        # Litestar adds its document routes to this router, and an HTML page as the 404 of any other
        # /schema path: answered as every other 404 is, a problem (RFC 9457).
        openapi_router=Router(
            "/schema", route_handlers=[], include_in_schema=False, after_request=_html_not_found_as_problem
        ),
    )


def _html_not_found_as_problem(response: Response[Any]) -> Response[Any]:
    if response.status_code == 404 and response.media_type == MediaType.HTML:
        raise NotFoundException
    return response


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


_BOUNDS = ("minimum", "maximum", "exclusive_minimum", "exclusive_maximum")
_JSON_NAMES = {"exclusive_minimum": "exclusiveMinimum", "exclusive_maximum": "exclusiveMaximum"}


def state_the_bounds(app: Litestar) -> None:
    """Say every bound the hub enforces, as it enforces it. Litestar drops a bound of 0 on a query
    parameter (``ge=0``: a falsy value), a bound inside a list's items or an optional field of a
    Struct, and the refusal of unknown fields of a Struct outside the canonical ones, and writes
    integer bounds as floats (2**62 as 4.611686018427388e+18, which a reader cannot tell from
    2**62 + 1). Contract tests read the document: each of these made them send values the hub
    refuses as valid, or the reverse."""
    _query_bounds(app)
    _struct_bounds(app)
    for found in _schemas(app.openapi_schema):
        if found.type == OpenAPIType.INTEGER:
            for bound in _BOUNDS:
                value = getattr(found, bound)
                if isinstance(value, float) and value.is_integer():
                    setattr(found, bound, int(value))


def _query_bounds(app: Litestar) -> None:
    handlers = {
        h.operation_id: h
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for h in route.route_handlers
        if isinstance(h.operation_id, str)  # the hub names every operation; Litestar's OPTIONS has none
    }
    for item in (app.openapi_schema.paths or {}).values():
        for operation in (item.get, item.post, item.put, item.patch, item.delete):
            if operation is None or operation.operation_id not in handlers:
                continue
            handler = handlers[operation.operation_id]
            declared = {
                (field.kwarg_definition.query or name): field.kwarg_definition
                for name, field in handler.parsed_fn_signature.parameters.items()
                if isinstance(field.kwarg_definition, QueryParameter)
            }
            for parameter in operation.parameters or []:
                if not isinstance(parameter, Parameter) or not isinstance(parameter.schema, Schema):
                    continue
                kwarg = declared.get(parameter.name)
                if kwarg is None:
                    continue
                for bound, value in (("minimum", kwarg.ge), ("maximum", kwarg.le)):
                    if value is not None and getattr(parameter.schema, bound) is None:
                        setattr(parameter.schema, bound, value)


def _struct_bounds(app: Litestar) -> None:
    schemas = app.openapi_schema.components.schemas or {}
    documented = {name: cls for name, cls in _our_structs().items() if name in schemas}
    # One pass over them all: a schema per Struct regenerated the Structs it nests every time.
    _, components = msgspec.json.schema_components(documented.values(), schema_hook=_no_bounds)
    for name in documented:
        schema, component = schemas[name], components.get(name, {})
        if component.get("additionalProperties") is False:  # forbid_unknown_fields
            schema.additional_properties = False
        for field, wanted in component.get("properties", {}).items():
            found = (schema.properties or {}).get(field)
            if isinstance(found, Schema):
                _fill_bounds(found, wanted)


def _no_bounds(_: Any) -> dict[str, Any]:
    """What msgspec is told of the money types, which it cannot describe: their bounds are the
    MoneySchemaPlugin's (patterns), so nothing of theirs is copied."""
    return {"type": "string"}


def _our_structs() -> dict[str, type[msgspec.Struct]]:
    """The hub's Structs by name, where the name is one Struct's alone (a component's name)."""
    found: dict[str, list[type[msgspec.Struct]]] = {}
    pending: list[type[Any]] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in ("canonical", "gateway", "policies", "connectors"):
            found.setdefault(cls.__name__, []).append(cls)
    return {name: classes[0] for name, classes in found.items() if len(classes) == 1}


def _fill_bounds(schema: Schema, wanted: dict[str, Any]) -> None:
    """Copy the bounds msgspec's own schema of a field gives into Litestar's, where it left them out:
    at the top, in a list's items, and in the matching member of an optional field's oneOf."""
    for bound in _BOUNDS:
        key = _JSON_NAMES.get(bound, bound)
        if (
            key in wanted
            and getattr(schema, bound) is None
            and schema.type in (OpenAPIType.INTEGER, OpenAPIType.NUMBER)
        ):
            setattr(schema, bound, wanted[key])
    if isinstance(schema.items, Schema) and isinstance(wanted.get("items"), dict):
        _fill_bounds(schema.items, wanted["items"])
    for member in schema.one_of or []:
        for option in wanted.get("anyOf", []):
            if isinstance(member, Schema) and option.get("type") == getattr(member.type, "value", member.type):
                _fill_bounds(member, option)


def _schemas(node: Any) -> Iterator[Schema]:
    """Every Schema in a part of the document (its spec objects are dataclasses)."""
    if isinstance(node, Schema):
        yield node
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for field in dataclasses.fields(node):
            yield from _schemas(getattr(node, field.name))
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _schemas(value)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _schemas(value)


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
