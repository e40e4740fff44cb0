"""The admin routes refuse what they cannot answer truthfully (in-process, on both store backends)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from litestar.testing import TestClient

from connectors import ConnectorError, MisconfiguredError, RejectedError, RetriableError
from gateway.api import admin
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import AttemptRecord, Store
from gateway.targets import TARGET_OPERATIONS
from tests import factories
from tests.conftest import KEY, TEST_POLICY

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


BACKENDS = ["embedded", pytest.param("redis", marks=pytest.mark.redis)]
DEMO_KEY = "demo-key-0123456789abcdef"  # the demo client of the packaged policy (its description says so)


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> Iterator[TestClient[Any]]:
    yield from _hub(request.param, tmp_path, redis_prefix, policy_file=str(TEST_POLICY), key=KEY)


@pytest.fixture(params=BACKENDS)
def default_policy_client(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[TestClient[Any]]:
    yield from _hub(request.param, tmp_path, redis_prefix, policy_file="", key=DEMO_KEY)


def _hub(backend: str, tmp_path: Path, redis_prefix: str, *, policy_file: str, key: str) -> Iterator[TestClient[Any]]:
    """A hub delivering to the EHR only (the ERP is a target it knows but has disabled); no dispatcher,
    so a dead letter stays dead until a test replays it."""
    settings = Settings(
        data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=policy_file, targets="ehr",
        state_backend=backend, redis_url=REDIS_URL, redis_prefix=redis_prefix,
    )  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        c.headers["X-API-Key"] = key
        yield c


def _dead_letter(client: TestClient[Any]) -> str:
    """A journal whose ERP delivery the ERP rejected: the id of that dead letter."""
    assert client.post("/v1/journals", json=factories.journal()).status_code == 202
    with client.portal() as portal:
        return portal.call(_reject_due, client.app.state.hub.store)


async def _reject_due(store: Store) -> str:
    now = time.time()
    (entry,) = await store.claim_due(now, 10, lease_s=30, owner="test")
    entry.state, entry.attempts, entry.error_kind, entry.error, entry.updated_at = "dead", 1, "rejected", "no", now
    attempt = AttemptRecord(outbox_id=entry.id, number=1, started_at=now, duration_ms=1.0, outcome="reject")
    await store.record_attempt(entry, attempt, next_attempt_at=None)
    return entry.id


def _refused(response: Any, path: str) -> dict[str, Any]:
    """A 400 problem whose errors name ``path`` (a query parameter or a body field)."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert [e["path"] for e in body["errors"]] == [path], body
    return body


def _dead_ids(client: TestClient[Any], **query: str) -> list[str]:
    answer = client.get("/v1/admin/dead-letters", params=query)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


@pytest.mark.parametrize("cursor", ["garbage", "\x00", "", "txn_01m988r4gk52akknp4dq8rwfvn", "dlv_01M988R4GK"])
def test_a_dead_letter_cursor_that_is_no_delivery_id_is_refused(client: TestClient[Any], cursor: str) -> None:
    _dead_letter(client)
    _refused(client.get("/v1/admin/dead-letters", params={"after": cursor}), "$.after")


def test_a_dead_letter_cursor_pages_past_the_delivery_it_names(client: TestClient[Any]) -> None:
    first, second = sorted([_dead_letter(client), _dead_letter(client)])
    assert _dead_ids(client, limit="1") == [first]
    assert _dead_ids(client, after=first) == [second]


@pytest.mark.parametrize(("name", "value"), [("target", "nope"), ("target", "ERP"), ("error_kind", "nope")])
def test_a_dead_letter_filter_naming_nothing_the_hub_knows_is_refused(
    client: TestClient[Any], name: str, value: str
) -> None:
    dead = _dead_letter(client)
    _refused(client.get("/v1/admin/dead-letters", params={name: value}), f"$.{name}")
    _refused(client.post("/v1/admin/dead-letters/replay", json={name: value}), f"$.{name}")
    assert _dead_ids(client) == [dead]  # nothing was replayed


def test_dead_letters_filter_by_any_target_the_hub_knows_even_a_disabled_one(client: TestClient[Any]) -> None:
    dead = _dead_letter(client)  # to the ERP, which this hub does not deliver to
    assert _dead_ids(client, target="erp", error_kind="rejected") == [dead]
    assert _dead_ids(client, target="clearinghouse") == []
    assert _dead_ids(client, error_kind="retriable") == []
    replayed = client.post("/v1/admin/dead-letters/replay", json={"target": "erp", "error_kind": "rejected"})
    assert replayed.json()["replayed"] == [dead]


def test_the_filters_name_every_target_and_error_kind_the_hub_has() -> None:
    kinds = {error.kind for error in (ConnectorError, RetriableError, RejectedError, MisconfiguredError)}
    assert set(get_args(admin.Target)) == set(TARGET_OPERATIONS)
    assert set(get_args(admin.ErrorKind)) == kinds


@pytest.mark.parametrize("path", ["/v1/admin/audit", "/v1/admin/dead-letters"])
def test_a_query_parameter_a_list_route_does_not_take_is_refused(client: TestClient[Any], path: str) -> None:
    refused = _refused(client.get(path, params={"colour": "red"}), "$")
    assert "colour" not in refused["detail"]  # a name the client chose can be PHI: not echoed
    assert "limit" in refused["detail"]  # the ones the route takes are listed instead


def test_a_mistyped_query_parameter_is_refused_naming_the_one_meant(client: TestClient[Any]) -> None:
    """`clientid` was ignored, and the audit answered every client's records."""
    refused = _refused(client.get("/v1/admin/audit", params={"clientid": "beta"}), "$")
    assert "did you mean `client_id`?" in refused["detail"]


def test_a_bulk_replay_refuses_a_filter_given_as_a_query(client: TestClient[Any]) -> None:
    """The filter is the body: `?target=clearinghouse` was ignored and every dead letter replayed."""
    dead = _dead_letter(client)
    _refused(client.post("/v1/admin/dead-letters/replay?target=clearinghouse", json={}), "$")
    assert _dead_ids(client) == [dead]


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        ("/v1/admin/audit", "client_id=alpha&client_id=beta", "client_id"),
        ("/v1/admin/audit", "limit=1&limit=2", "limit"),
        ("/v1/admin/dead-letters", "limit=1&limit=1", "limit"),
        ("/v1/admin/dead-letters", "target=erp&target=ehr", "target"),
    ],
)
def test_a_query_parameter_given_twice_is_refused(client: TestClient[Any], path: str, query: str, name: str) -> None:
    """The last value used to win silently; the hub will not guess which one the caller meant."""
    refused = _refused(client.get(f"{path}?{query}"), f"$.{name}")
    assert f"`{name}`" in refused["detail"]


@pytest.mark.parametrize(
    ("path", "name"),
    [("/v1/admin/audit", "since"), ("/v1/admin/audit", "until"), ("/v1/admin/dead-letters", "older_than_s")],
)
@pytest.mark.parametrize("value", ["inf", "Infinity", "nan", "1e400"])
def test_a_time_that_is_no_finite_number_is_refused(client: TestClient[Any], path: str, name: str, value: str) -> None:
    _refused(client.get(path, params={name: value}), f"$.{name}")


def test_list_routes_still_take_each_of_their_parameters_once(client: TestClient[Any]) -> None:
    dead = _dead_letter(client)
    audit = client.get("/v1/admin/audit", params={"client_id": "alpha", "since": "0", "until": "1e10", "limit": "5"})
    assert [r["operation"] for r in audit.json()["records"]] == ["postJournal"]
    assert _dead_ids(client, target="erp", error_kind="rejected", older_than_s="0", limit="5") == [dead]


def test_replaying_a_delivery_the_hub_never_had_is_404(client: TestClient[Any]) -> None:
    answer = client.post("/v1/admin/dead-letters/dlv_0123456789abcdefghijklmnop/replay")
    assert answer.status_code == 404, answer.text
    assert answer.json()["type"] == "urn:billing-hub:problem:not-found"


def test_replaying_a_delivery_that_is_not_dead_is_409(client: TestClient[Any]) -> None:
    dead = _dead_letter(client)
    assert client.post(f"/v1/admin/dead-letters/{dead}/replay").json()["replayed"] == [dead]
    again = client.post(f"/v1/admin/dead-letters/{dead}/replay")  # pending now: no dispatcher runs here
    assert again.status_code == 409, again.text
    assert again.json()["type"] == "urn:billing-hub:problem:conflict"


def test_a_replays_audit_records_carry_the_trace_id_of_the_call(client: TestClient[Any]) -> None:
    one, many = _dead_letter(client), _dead_letter(client)
    first = client.post(f"/v1/admin/dead-letters/{one}/replay")
    second = client.post("/v1/admin/dead-letters/replay", json={})
    assert second.json()["replayed"] == [many]
    records = client.get("/v1/admin/audit", params={"operation": "replay"}).json()["records"]
    assert [(r["resource_id"], r["trace_id"]) for r in records] == [
        (one, first.headers["x-trace-id"]),
        (many, second.headers["x-trace-id"]),
    ]


def test_the_default_policy_holds_a_bulk_replay_to_its_idempotency_key(default_policy_client: TestClient[Any]) -> None:
    """The document promises it: the same key with the same body replays the answer, with another 422."""
    client, key = default_policy_client, {"Idempotency-Key": "replay-after-the-outage"}
    dead = _dead_letter(client)
    first = client.post("/v1/admin/dead-letters/replay", json={"target": "erp"}, headers=key)
    assert first.json()["replayed"] == [dead]
    again = client.post("/v1/admin/dead-letters/replay", json={"target": "erp"}, headers=key)
    assert (again.status_code, again.headers.get("idempotent-replayed"), again.json()) == (200, "true", first.json())
    other = client.post("/v1/admin/dead-letters/replay", json={"target": "ehr"}, headers=key)
    assert other.status_code == 422, other.text
    assert other.json()["type"] == "urn:billing-hub:problem:unprocessable-content"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/transactions/{phi}",
        "/v1/journals/{phi}",
        "/v1/remittances/{phi}",
        "/v1/remittances/acknowledgements/{phi}",
        "/v1/accounts/{phi}",
        "/v1/claims/{phi}/status",
    ],
)
def test_a_path_parameter_that_is_not_a_hub_id_is_audited_as_a_tag(client: TestClient[Any], path: str) -> None:
    """A client can put anything in a path, a member id or a patient's name included: the audit trail,
    kept for good, holds the hub's own ids as they are and anything else only as a keyed tag."""
    phi = "MEMSENTINEL0042"
    assert client.get(path.format(phi=phi)).status_code in (400, 404)
    replay = client.post(f"/v1/admin/dead-letters/{phi}/replay")
    assert replay.status_code == 400, replay.text
    audit = client.get("/v1/admin/audit", params={"limit": 500})
    assert phi not in audit.text
    tags = [r["resource_id"] for r in audit.json()["records"] if r["operation"] != "getAuditRecords"]
    assert [tag[:4] for tag in tags] == ["phi:", "phi:"], tags


def test_a_hub_id_in_a_path_is_audited_as_it_is(client: TestClient[Any]) -> None:
    accepted = client.post("/v1/journals", json=factories.journal())
    transaction_id = accepted.json()["id"]
    assert client.get(f"/v1/transactions/{transaction_id}").status_code == 200
    records = client.get("/v1/admin/audit", params={"operation": "getTransaction"}).json()["records"]
    assert [r["resource_id"] for r in records] == [transaction_id]
