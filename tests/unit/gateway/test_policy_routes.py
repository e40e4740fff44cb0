"""What a policy may say about a route, as the running app applies it (in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app, keyed_operations
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY

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
