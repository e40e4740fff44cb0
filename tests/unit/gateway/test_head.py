"""HEAD wherever GET is: the GET's status and header fields, no content, governed and audited as the GET."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.head import allowed_methods, head_as_get
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY

# Fields that differ between any two answers, whatever the method.
_PER_ANSWER = {"date", "x-trace-id", "ratelimit", "ratelimit-policy"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        c.headers["X-API-Key"] = KEY
        yield c


def _fields(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in _PER_ANSWER}


def test_head_answers_what_get_would_without_the_content(client: TestClient[Any]) -> None:
    accepted = client.post("/v1/journals", json=factories.journal())
    assert accepted.status_code == 202
    journal_id = accepted.json()["resource"]["id"]
    paths = [
        accepted.headers["location"],
        f"/v1/journals/{journal_id}",
        "/v1/transactions/txn_00000000000000000000000000",  # a 404 problem: its fields too
        "/health",
        "/schema/openapi.json",
    ]
    for path in paths:
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert _fields(head) == _fields(got), path
        assert int(head.headers["content-length"]) == len(got.content), path


def test_head_needs_the_credential_get_needs(client: TestClient[Any]) -> None:
    refused = client.head("/v1/transactions/txn_00000000000000000000000000", headers={"X-API-Key": "wrong"})
    assert refused.status_code == 401
    assert "ApiKey" in refused.headers["www-authenticate"]
    assert refused.content == b""


def test_head_is_audited_as_the_get_it_stands_for(client: TestClient[Any]) -> None:
    assert client.head("/v1/transactions/txn_00000000000000000000000000").status_code == 404
    records = client.get("/v1/admin/audit", params={"operation": "getTransaction"}).json()["records"]
    assert [(r["operation"], r["status"]) for r in records] == [("getTransaction", 404)]


def test_head_where_there_is_no_get_is_a_405_naming_the_methods(client: TestClient[Any]) -> None:
    refused = client.head("/v1/journals")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "OPTIONS, POST"


def test_a_405_and_options_list_head_wherever_get_is(client: TestClient[Any]) -> None:
    path = "/v1/transactions/txn_00000000000000000000000000"
    assert client.delete(path).headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.options(path).headers["allow"] == "GET, HEAD, OPTIONS"


def test_allowed_methods_adds_head_only_beside_get() -> None:
    assert allowed_methods(["OPTIONS", " GET"]) == "GET, HEAD, OPTIONS"
    assert allowed_methods(["POST", " OPTIONS"]) == "OPTIONS, POST"


def test_a_streamed_answer_sends_no_chunk_to_a_head() -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        assert scope["method"] == "GET"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def", "more_body": False})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "HEAD", "path": "/"}
    asyncio.run(head_as_get(streaming)(scope, None, send))
    assert scope["method"] == "HEAD"  # the server's own scope still says HEAD: it writes no body either
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b""
    assert not sent[1]["more_body"]
