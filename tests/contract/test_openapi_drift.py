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
