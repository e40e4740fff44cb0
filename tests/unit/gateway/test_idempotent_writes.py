"""On Redis, an idempotent write's finished record is stored with the transaction, not after the answer.

Between the two writes a crash used to leave only the in-flight record; once its lease ran out the
client's retry ran again and created a second transaction. Here ``complete`` is replaced by a
recorder that writes nothing, standing in for a process that dies right after sending its answer:
the retry must still be answered from the record, and no second transaction may exist.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from policies.idempotency import StoredResponse
from tests import factories
from tests.conftest import KEY, TEST_POLICY

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"test:idem-writes:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def hub(tmp_path: Path, prefix: str) -> Iterator[tuple[TestClient[Any], list[StoredResponse]]]:
    settings = Settings(
        data_dir=str(tmp_path),
        dispatcher_enabled=False,  # nothing delivers: the transactions stay accepted
        policy_file=str(TEST_POLICY),
        targets="ehr,erp",
        state_backend="redis",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
    )
    completed: list[StoredResponse] = []

    async def complete(key: str, response: StoredResponse, ttl_s: float) -> None:
        completed.append(response)  # and writes nothing: the process died after answering

    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.app.state.governance.idempotency.complete = complete
        client.headers["X-API-Key"] = KEY
        yield client, completed


def _transactions(prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=f"{prefix}store:txn:*"))
    finally:
        client.close()


def test_the_record_is_final_with_the_transaction(
    hub: tuple[TestClient[Any], list[StoredResponse]], prefix: str
) -> None:
    client, completed = hub
    body, headers = factories.journal("IDEM-ATOMIC-1"), {"Idempotency-Key": "atomic-1"}
    first = client.post("/v1/journals", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert completed == []  # the middleware had nothing left to write
    retry = client.post("/v1/journals", json=body, headers=headers)
    assert retry.status_code == 202, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert retry.headers["location"] == first.headers["location"]
    assert len(_transactions(prefix)) == 1
    assert client.post("/v1/journals", json=factories.journal("OTHER"), headers=headers).status_code == 422


def test_a_waited_answer_replaces_the_record_written_with_the_transaction(
    hub: tuple[TestClient[Any], list[StoredResponse]],
) -> None:
    client, completed = hub
    headers = {"Idempotency-Key": "atomic-2", "Prefer": "wait=1"}
    answer = client.post("/v1/journals", json=factories.journal("IDEM-ATOMIC-2"), headers=headers)
    assert answer.status_code == 202
    assert answer.headers["preference-applied"] == "wait=1"
    (stored,) = completed  # the answer sent differs from the plain 202 stored with the transaction
    assert stored.status == 202
    assert ("preference-applied", "wait=1") in stored.headers
    assert stored.body == answer.content
