"""What a policy may say about a route, as the running app applies it (in-process)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app, keyed_operations
from gateway.governance_state import default_policy_path
from gateway.settings import Settings
from policies.config import load_policy
from tests import factories
from tests.conftest import KEY, TEST_POLICY

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

_JOURNAL_ROUTE = '[routes.postJournal]\nscope = "journals:write"\nrate_limit = "writes"\n'


@pytest.fixture
def plain_text_journals(tmp_path: Path) -> Iterator[TestClient[Any]]:
    """A policy that lets clients label a journal's body text/plain."""
    policy = tmp_path / "policy.toml"
    assert _JOURNAL_ROUTE in TEST_POLICY.read_text()
    widened = _JOURNAL_ROUTE + 'content_types = ["application/json", "text/plain"]\n'
    policy.write_text(TEST_POLICY.read_text().replace(_JOURNAL_ROUTE, widened))
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(policy), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        yield client


def test_json_shape_limits_hold_whatever_the_body_is_called(plain_text_journals: TestClient[Any]) -> None:
    client = plain_text_journals
    journal = factories.journal()
    long = {**journal, "lines": journal["lines"] * 150}  # 300 lines; the test policy allows 200 items
    plain = {"content-type": "text/plain"}
    refused = client.post("/v1/journals", content=_json(long), headers=plain)
    assert refused.status_code == 413, refused.text
    assert "more than 200" in refused.json()["detail"]
    assert client.post("/v1/journals", content=_json(journal), headers=plain).status_code == 202


def test_keyed_operations_are_the_posts_with_a_body(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=str(tmp_path)))  # not started: only its routes are read
    keyed = keyed_operations(app)
    assert {"postJournal", "postClaim", "postRemittance"} <= keyed
    assert not keyed & {"putAccount", "reloadPolicy", "getTransaction"}  # a PUT, a POST without a body, a GET


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("backend", ["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_rule_changed_by_a_reload_starts_from_a_fresh_counter(
    tmp_path: Path, backend: str, redis_prefix: str
) -> None:
    policy = tmp_path / "policy.toml"
    tight = "[rate_limits.tight]\nlimit = 3\nwindow_s = 60\n"
    journals_tight = _JOURNAL_ROUTE.replace('rate_limit = "writes"', 'rate_limit = "tight"')
    original = TEST_POLICY.read_text().replace(_JOURNAL_ROUTE, journals_tight)
    assert tight in original
    policy.write_text(original)
    settings = Settings(
        data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(policy), targets="erp",
        state_backend=backend, redis_url=REDIS_URL, redis_prefix=redis_prefix,
    )  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        assert [client.post("/v1/journals", json=factories.journal()).status_code for _ in range(4)] == [
            202, 202, 202, 429,
        ]  # fmt: skip
        # Now 100 a second, 5 at once: the old counter's debt, read in the new rule's units, would
        # refuse for minutes.
        policy.write_text(original.replace(tight, "[rate_limits.tight]\nlimit = 100\nwindow_s = 1\nburst = 5\n"))
        assert client.post("/v1/admin/policy/reload").status_code == 200
        answer = client.post("/v1/journals", json=factories.journal())
        assert answer.status_code == 202, answer.text
        assert answer.headers["ratelimit-policy"] == '"tight";q=100;w=1'


def test_the_openapi_document_names_the_idempotency_key_where_it_is_honoured(tmp_path: Path) -> None:
    document = create_app(Settings(data_dir=str(tmp_path))).openapi_schema.to_schema()
    taking = {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    assert taking == {"postJournal", "postClaim", "postRemittance", "replayDeadLetters"}


def test_a_replays_audit_record_names_the_transaction_it_answers_with(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        body, key = factories.journal(), {"Idempotency-Key": "audit-replay-1"}
        first = client.post("/v1/journals", json=body, headers=key)
        replay = client.post("/v1/journals", json=body, headers=key)
        assert replay.headers["idempotent-replayed"] == "true"
        records = client.get("/v1/admin/audit", params={"operation": "postJournal"}).json()["records"]
    transaction_id = first.json()["id"]
    assert [(r["status"], r["transaction_id"]) for r in records] == [(202, transaction_id), (202, transaction_id)]


def test_a_reload_onto_a_file_that_is_not_utf8_is_the_invalid_policy_problem(tmp_path: Path) -> None:
    """The file is the operator's, not the client's: not a 400 blaming the request."""
    policy = tmp_path / "policy.toml"
    policy.write_text(TEST_POLICY.read_text())
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(policy), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        policy.write_bytes(b"\x00\xff")
        refused = client.post("/v1/admin/policy/reload")
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"] == "urn:billing-hub:problem:invalid-policy"
        assert "not valid UTF-8" in refused.json()["detail"]
        assert client.get("/v1/admin/connectors").status_code == 200  # the old policy is still in force


def _v1_routes(app: Any) -> list[tuple[str, set[str]]]:
    """Each /v1 path with a concrete example and the methods its handlers declare (OPTIONS aside)."""
    routes = []
    for route in app.routes:
        if route.path.startswith("/v1/"):
            path = route.path.replace("{", "").replace("}", "").replace(":str", "")  # {id:str} -> id
            methods = {m for h in route.route_handlers for m in h.http_methods} - {"OPTIONS"}
            routes.append((path, methods))
    return routes


@pytest.fixture
def started_app(tmp_path: Path) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def test_options_on_every_v1_path_is_204_with_allow_and_needs_no_key(started_app: TestClient[Any]) -> None:
    """What HTTP clients and CORS preflights send, without credentials; a 405 advertises it too."""
    for path, methods in _v1_routes(started_app.app):
        answer = started_app.options(path)
        assert answer.status_code == 204, (path, answer.text)
        head = {"HEAD"} if "GET" in methods else set()  # gateway/head.py
        assert set(answer.headers["allow"].split(", ")) == methods | head | {"OPTIONS"}, path
    started_app.headers["X-API-Key"] = KEY
    records = started_app.get("/v1/admin/audit", params={"operation": "OPTIONS", "limit": 500}).json()["records"]
    assert [(r["client_id"], r["status"]) for r in records] == [("anonymous", 204)] * len(_v1_routes(started_app.app))


def test_every_other_v1_method_still_needs_a_credential(started_app: TestClient[Any]) -> None:
    """Only Litestar's own OPTIONS answer passes the chain unauthenticated: a handler without an
    operationId (so without a policy) would show here as a 403 instead of the 401."""
    handlers = [h for route in started_app.app.routes if route.path.startswith("/v1/") for h in route.route_handlers]
    unnamed = [h for h in handlers if h.operation_id is None]
    assert unnamed  # Litestar's own OPTIONS handlers, one per path
    assert all(h.fn.__qualname__.startswith("HTTPRoute.create_options_handler.") for h in unnamed)
    for path, methods in _v1_routes(started_app.app):
        for method in methods:
            answer = started_app.request(method, path)
            assert answer.status_code == 401, (method, path, answer.text)


def test_the_default_policy_honours_the_idempotency_key_wherever_the_document_names_it(tmp_path: Path) -> None:
    """A document promising 422 for a key reused with another body binds the packaged policy too."""
    app = create_app(Settings(data_dir=str(tmp_path)))  # the packaged policy: no policy_file
    routes = load_policy(default_policy_path()).routes
    committed = json.loads((Path(__file__).parents[3] / "openapi" / "v1.json").read_text())
    assert keyed_operations(app) == _documented_as_keyed(committed)  # the document clients read
    assert {op for op in keyed_operations(app) if routes[op].idempotency == "off"} == set()


def _documented_as_keyed(document: dict[str, Any]) -> set[str]:
    return {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
