"""An idempotent write's finished record is stored with its transaction, not after the answer.

(A request that waits for its work stores a provisional record with it instead, replayed once its
process is gone: the waiting test below.)

Between the two writes a crash used to leave only the in-flight record; once its lease ran out the
client's retry ran again and created a second transaction. Here ``complete`` is replaced by a
recorder that writes nothing, standing in for a process that dies right after sending its answer:
the retry must still be answered from the record, and no second transaction may exist. Both
backends: Redis (one script) and the embedded SQLite store (one group-commit transaction).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.governance_state import Governance
from gateway.settings import Settings
from gateway.store import HUB_DATABASE, SqliteStore
from policies.idempotency import InFlight, SqliteIdempotencyStore, Started, StoredResponse, fingerprint
from tests import factories
from tests.conftest import KEY, TEST_POLICY

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def hub(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[tuple[TestClient[Any], list[StoredResponse]]]:
    settings = Settings(
        data_dir=str(tmp_path),
        dispatcher_enabled=False,  # nothing delivers: the transactions stay accepted
        policy_file=str(TEST_POLICY),
        targets="ehr,erp",
        state_backend=request.param,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        max_wait_s=0.3,  # Prefer: wait=1 waits this long
        idempotency_lease_s=0.5,  # short, so that a lapsed owner can be seen
    )
    completed: list[StoredResponse] = []

    async def complete(key: str, response: StoredResponse, ttl_s: float) -> None:
        completed.append(response)  # and writes nothing: the process died after answering

    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.app.state.governance.idempotency.complete = complete
        client.headers["X-API-Key"] = KEY
        yield client, completed


def test_the_record_is_final_with_the_transaction(hub: tuple[TestClient[Any], list[StoredResponse]]) -> None:
    client, completed = hub
    body, headers = factories.journal("IDEM-ATOMIC-1"), {"Idempotency-Key": "atomic-1"}
    first = client.post("/v1/journals", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert completed == []  # the middleware had nothing left to write
    retry = client.post("/v1/journals", json=body, headers=headers)
    assert retry.status_code == 202, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert retry.headers["location"] == first.headers["location"]  # answered from the record: no second run
    assert client.post("/v1/journals", json=factories.journal("OTHER"), headers=headers).status_code == 422


def test_the_x12_intake_record_is_final_with_its_transaction_too(
    hub: tuple[TestClient[Any], list[StoredResponse]],
) -> None:
    client, completed = hub
    headers = {"content-type": "application/edi-x12", "Idempotency-Key": "atomic-x12"}
    raw = (Path(__file__).parents[2] / "fixtures" / "x12" / "835_full.x12").read_bytes()
    first = client.post("/v1/remittances", content=raw, headers=headers)
    assert first.status_code == 201, first.text
    assert completed == []
    retry = client.post("/v1/remittances", content=raw, headers=headers)
    assert retry.headers["idempotent-replayed"] == "true"
    assert (retry.status_code, retry.content) == (201, first.content)


def test_a_waiting_request_stays_in_flight_and_is_completed_after_its_answer(
    hub: tuple[TestClient[Any], list[StoredResponse]],
) -> None:
    client, completed = hub
    headers = {"Idempotency-Key": "atomic-2", "Prefer": "wait=1"}
    answer = client.post("/v1/journals", json=factories.journal("IDEM-ATOMIC-2"), headers=headers)
    assert answer.status_code == 202
    assert answer.headers["preference-applied"] == "wait=0.3"
    (stored,) = completed  # a retry meanwhile met 409 (integration test): nothing was final before
    assert stored.status == 202
    assert ("preference-applied", "wait=0.3") in stored.headers
    assert stored.body == answer.content

    # That complete wrote nothing: this process died while the request waited. The work was stored
    # with a provisional record, so the retry replays its 202 instead of storing the work again.
    time.sleep(0.3)  # the dead owner's lease runs out
    retry = client.post("/v1/journals", json=factories.journal("IDEM-ATOMIC-2"), headers=headers)
    assert retry.status_code == 202, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == answer.headers["location"]
    assert "preference-applied" not in retry.headers  # the provisional answer did not wait


async def test_only_the_serving_process_releases_claims_left_in_flight(tmp_path: Path) -> None:
    """The embedded hub forgets in-flight claims when its serving process starts (they died with the
    last one); a ``billing-hub dispatch`` process opening the same store must leave them alone."""
    settings = Settings(data_dir=str(tmp_path), policy_file=str(TEST_POLICY), targets="erp")
    store = SqliteStore(tmp_path / HUB_DATABASE, durability="normal")
    claims = SqliteIdempotencyStore(store.path, submit=store.submit)
    governance = None
    try:
        assert await claims.begin("alpha:postJournal:k", "fp", 3600) == Started()
        governance = Governance.open(settings, frozenset(), store)  # what the dispatch process opens
        assert await claims.begin("alpha:postJournal:k", "fp", 3600) == InFlight()
        governance.forget_in_flight()  # what the serving process does at start-up
        assert await claims.begin("alpha:postJournal:k", "fp", 3600) == Started()
    finally:
        if governance is not None:
            await governance.aclose()
        await claims.aclose()
        await store.close()


def test_records_from_the_old_idempotency_file_still_answer_retries(tmp_path: Path) -> None:
    """Before an upgrade the embedded records lived in ``idempotency.sqlite3``; a client's retry after
    it must still be answered from its record, not run again."""
    body = msgspec.json.encode(factories.journal("IDEM-UPGRADE-1"))
    answer = StoredResponse(status=202, headers=[("location", "/v1/transactions/txn_before")], body=b'{"id":"x"}')
    old = SqliteIdempotencyStore(tmp_path / "idempotency.sqlite3")
    key = "alpha:postJournal:upgrade-1"
    asyncio.run(old.begin(key, fingerprint("POST", "/v1/journals", body), 3600))
    asyncio.run(old.complete(key, answer, 3600))
    asyncio.run(old.begin("alpha:postJournal:left-in-flight", "fp", 3600))
    asyncio.run(old.aclose())
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        headers = {"X-API-Key": KEY, "Idempotency-Key": "upgrade-1", "content-type": "application/json"}
        retry = client.post("/v1/journals", content=body, headers=headers)
    assert retry.status_code == 202
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == answer.body
    assert not (tmp_path / "idempotency.sqlite3").exists()
    assert (tmp_path / "idempotency.sqlite3.adopted").exists()
