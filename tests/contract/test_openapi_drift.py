"""The committed OpenAPI document is the one the app generates: a change to the API shows in review."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.app import create_app
from gateway.openapi import openapi_document
from gateway.settings import Settings

COMMITTED = Path(__file__).parents[2] / "openapi" / "v1.json"


def test_committed_v1_document_matches_the_app() -> None:
    generated = openapi_document(create_app(Settings()))
    committed = json.loads(COMMITTED.read_text())
    assert committed == json.loads(json.dumps(generated)), "run `make openapi` and commit openapi/v1.json"


def test_every_operation_has_an_operation_id_and_problem_responses() -> None:
    document = json.loads(COMMITTED.read_text())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("operationId"), f"{method.upper()} {path} has no operationId"
            if path.startswith("/v1/"):
                assert "401" in operation["responses"], f"{method.upper()} {path} does not document 401"
                assert operation["security"] == [{"apiKey": []}]


def test_every_write_documents_prefer_and_its_request_body() -> None:
    """The writes that honour ``Prefer: wait`` say so, and every body they take is described: the
    remittance operation's two media types were missing for months (its Operation subclass was
    never called), so contract tests never sent it a body."""
    document = json.loads(COMMITTED.read_text())
    writes = {
        ("/v1/accounts/{account_number}", "put"): ["application/json"],
        ("/v1/claims", "post"): ["application/json"],
        ("/v1/journals", "post"): ["application/json"],
        ("/v1/remittances", "post"): ["application/json", "application/edi-x12"],
    }
    for (path, method), media_types in writes.items():
        operation = document["paths"][path][method]
        prefer = [p for p in operation.get("parameters", []) if p["name"] == "Prefer"]
        assert [(p["in"], p["required"]) for p in prefer] == [("header", False)], f"{method} {path}"
        assert sorted(operation["requestBody"]["content"]) == sorted(media_types), f"{method} {path}"
        assert operation["requestBody"]["required"] is True


_BOUNDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)


def _bounds(schema: object) -> dict[str, object]:
    """Every bound anywhere in a schema, by keyword (a field's schemas hold each keyword once)."""
    found: dict[str, object] = {}
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in _BOUNDS:
                found[key] = value
            else:
                found.update(_bounds(value))
    elif isinstance(schema, list):
        for value in schema:
            found.update(_bounds(value))
    return found


def test_the_document_states_every_bound_the_hub_enforces() -> None:
    """Contract tests generate from the document: a bound left out (Litestar drops ge=0 and bounds
    in list items or optional fields) or an integer bound written as a float (2**62 as 4.6e18) had
    them send values the hub refuses as valid. Each Struct's fields against msgspec's own schema
    (what the hub enforces), and each query parameter against its declaration."""
    import msgspec
    from litestar.params import QueryParameter
    from litestar.routes import HTTPRoute

    def money(_: object) -> dict[str, str]:  # the money types' schema is the plugin's (patterns)
        return {"type": "string"}

    def ours() -> dict[str, type[msgspec.Struct]]:
        found: dict[str, list[type[msgspec.Struct]]] = {}
        pending: list[type[msgspec.Struct]] = [msgspec.Struct]
        while pending:
            cls = pending.pop()
            pending.extend(cls.__subclasses__())
            if cls.__module__.split(".")[0] in ("canonical", "gateway", "policies", "connectors"):
                found.setdefault(cls.__name__, []).append(cls)
        return {name: classes[0] for name, classes in found.items() if len(classes) == 1}

    app = create_app(Settings())
    document = json.loads(json.dumps(openapi_document(app)))
    components = document["components"]["schemas"]
    checked = 0
    for name, cls in ours().items():
        if name not in components:
            continue
        wanted = msgspec.json.schema(cls, schema_hook=money)["$defs"][name]
        if wanted.get("additionalProperties") is False:
            assert components[name].get("additionalProperties") is False, name
        for field, schema in wanted.get("properties", {}).items():
            stated = _bounds(components[name]["properties"][field])
            for key, value in _bounds(schema).items():
                assert (key, type(stated.get(key)), stated.get(key)) == (key, type(value), value), f"{name}.{field}"
                checked += 1
    handlers = {h.operation_id: h for r in app.routes if isinstance(r, HTTPRoute) for h in r.route_handlers}
    for operations in document["paths"].values():
        for operation in operations.values():
            handler = handlers[operation["operationId"]]
            declared = {
                field.kwarg_definition.query or name: field.kwarg_definition
                for name, field in handler.parsed_fn_signature.parameters.items()
                if isinstance(field.kwarg_definition, QueryParameter)
            }
            for parameter in operation.get("parameters", []):
                kwarg = declared.get(parameter["name"]) if parameter["in"] == "query" else None
                for key, value in (("minimum", kwarg.ge), ("maximum", kwarg.le)) if kwarg is not None else ():
                    if value is not None:
                        assert parameter["schema"].get(key) == value, (parameter["name"], key)
                        assert type(parameter["schema"][key]) is type(value), (parameter["name"], key)
                        checked += 1
    assert checked > 50
