"""Fault injection, request journal and /_control routes shared by the stub servers."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.testing import AsyncTestClient, TestClient

from connectors._stubkit import (
    JOURNAL_SIZE,
    Faults,
    InjectedConnectionDrop,
    RequestJournal,
    _HideInjectedDrops,
    create_stub_app,
)

HANDLED: list[str] = []


@get("/svc/ping", sync_to_thread=False)
def ping() -> dict[str, bool]:
    HANDLED.append("ping")
    return {"ok": True}


@post("/svc/work", status_code=201, sync_to_thread=False)
def work() -> dict[str, str]:
    HANDLED.append("work")
    return {"done": "yes"}


@get("/other", sync_to_thread=False)
def other() -> dict[str, bool]:
    return {"ok": True}


def render(status: int) -> tuple[bytes, str]:
    return msgspec.json.encode({"fault": status}), "application/x-test"


def make_app() -> Litestar:
    return create_stub_app([ping, work, other], render)


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    HANDLED.clear()
    with TestClient(make_app()) as test_client:
        yield test_client


@pytest.fixture
async def aclient() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(make_app()) as test_client:
        yield test_client


def set_faults(client: TestClient[Litestar], **faults: Any) -> dict[str, Any]:
    response = client.put("/_control/faults", json=faults)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def journal(client: TestClient[Litestar]) -> list[dict[str, Any]]:
    response = client.get("/_control/requests")
    assert response.status_code == 200
    records: list[dict[str, Any]] = response.json()
    return records


# --- /_control/faults -------------------------------------------------------------------------


def test_put_faults_echoes_the_plan_and_get_shows_it(client: TestClient[Litestar]) -> None:
    echoed = set_faults(client, latency_ms=5, error_status=502, remaining=3, path_prefix="/svc", seed=7)
    assert echoed == {
        "latency_ms": 5,
        "error_status": 502,
        "error_rate": 1.0,
        "hang_seconds": 0.0,
        "drop_rate": 0.0,
        "drop_phase": "before",
        "remaining": 3,
        "path_prefix": "/svc",
        "seed": 7,
    }
    assert client.get("/_control/faults").json() == echoed


def test_delete_faults_clears_them(client: TestClient[Litestar]) -> None:
    set_faults(client, error_status=500)
    assert client.get("/svc/ping").status_code == 500
    assert client.delete("/_control/faults").status_code == 204
    assert client.get("/_control/faults").json() == msgspec.to_builtins(Faults())
    assert client.get("/svc/ping").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"error_status": 200},
        {"latency_ms": -1},
        {"remaining": 0},
        {"path_prefix": "svc"},
        {"drop_phase": "during"},
        {"unknown": 1},
    ],
)
def test_invalid_fault_plans_are_rejected(client: TestClient[Litestar], body: dict[str, Any]) -> None:
    response = client.put("/_control/faults", json=body)
    assert response.status_code == 400
    assert "detail" in response.json()
    assert client.get("/_control/faults").json()["error_status"] is None


def test_non_json_fault_plan_is_rejected(client: TestClient[Litestar]) -> None:
    assert client.put("/_control/faults", content=b"{nope").status_code == 400


# --- injected errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retry_after"), [(503, "1"), (429, "1"), (500, None), (404, None)])
def test_error_status_uses_the_stub_renderer(
    client: TestClient[Litestar], status: int, retry_after: str | None
) -> None:
    set_faults(client, error_status=status)
    response = client.get("/svc/ping")
    assert response.status_code == status
    assert response.json() == {"fault": status}
    assert response.headers["content-type"] == "application/x-test"
    assert response.headers.get("retry-after") == retry_after
    assert HANDLED == []  # the request never reached the handler


def test_remaining_applies_to_the_next_n_matching_requests_then_clears(client: TestClient[Litestar]) -> None:
    set_faults(client, error_status=503, remaining=2, path_prefix="/svc")
    assert client.get("/other").status_code == 200  # not matching, does not count
    statuses = [client.get("/svc/ping").status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert client.get("/_control/faults").json()["error_status"] is None


def test_path_prefix_limits_the_faults(client: TestClient[Litestar]) -> None:
    set_faults(client, error_status=500, path_prefix="/svc/work")
    assert client.post("/svc/work").status_code == 500
    assert client.get("/svc/ping").status_code == 200
    assert client.get("/other").status_code == 200


def test_error_rate_is_deterministic_for_a_seed(client: TestClient[Litestar]) -> None:
    rng = random.Random(42)
    expected = [503 if rng.random() < 0.5 else 200 for _ in range(30)]
    set_faults(client, error_status=503, error_rate=0.5, seed=42)
    first = [client.get("/svc/ping").status_code for _ in range(30)]
    set_faults(client, error_status=503, error_rate=0.5, seed=42)
    second = [client.get("/svc/ping").status_code for _ in range(30)]
    assert first == expected == second
    assert {200, 503} == set(first)


def test_control_routes_are_never_faulted_nor_journaled(client: TestClient[Litestar]) -> None:
    set_faults(client, error_status=503, drop_rate=1.0, path_prefix="/")
    assert client.get("/_control/faults").status_code == 200
    assert client.get("/_control/requests").json() == []


def test_unmatched_routes_are_faulted_and_journaled(client: TestClient[Litestar]) -> None:
    assert client.get("/nowhere").status_code == 404
    set_faults(client, error_status=503)
    assert client.get("/nowhere").status_code == 503
    assert [(r["path"], r["status"]) for r in journal(client)] == [("/nowhere", 404), ("/nowhere", 503)]


# --- latency, hang, drop ------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "minimum"), [({"latency_ms": 150}, 0.15), ({"hang_seconds": 0.2}, 0.2)])
def test_latency_and_hang_delay_the_answer(client: TestClient[Litestar], plan: dict[str, Any], minimum: float) -> None:
    set_faults(client, **plan)
    started = time.perf_counter()
    response = client.get("/svc/ping")
    assert time.perf_counter() - started >= minimum
    assert response.status_code == 200


def test_drop_before_never_reaches_the_handler(client: TestClient[Litestar]) -> None:
    set_faults(client, drop_rate=1.0, remaining=1)
    with pytest.raises(InjectedConnectionDrop):
        client.post("/svc/work")
    assert HANDLED == []
    assert journal(client)[-1] | {"query": ""} == {
        "method": "POST",
        "path": "/svc/work",
        "query": "",
        "status": None,
        "traceparent": None,
        "idempotency": None,
        "fault": "drop",
    }
    assert client.post("/svc/work").status_code == 201


def test_drop_after_processes_the_request_and_loses_the_answer(client: TestClient[Litestar]) -> None:
    set_faults(client, drop_rate=1.0, drop_phase="after", remaining=1)
    with pytest.raises(InjectedConnectionDrop):
        client.post("/svc/work")
    assert HANDLED == ["work"]
    last = journal(client)[-1]
    assert (last["status"], last["fault"]) == (201, "drop")


def test_drop_log_records_are_filtered() -> None:
    hide = _HideInjectedDrops()

    def record(exc: BaseException | None) -> logging.LogRecord:
        exc_info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", None, exc_info)

    assert hide.filter(record(InjectedConnectionDrop())) is False
    assert hide.filter(record(RuntimeError("real bug"))) is True
    assert hide.filter(record(None)) is True
    assert sys.exc_info() == (None, None, None)


# --- journal ------------------------------------------------------------------------------------


def test_journal_records_requests_with_trace_and_idempotency_headers(client: TestClient[Litestar]) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client.get("/svc/ping?a=1&b=x", headers={"traceparent": traceparent})
    client.post("/svc/work", headers={"X-External-Reference": "tx-9"})
    assert journal(client) == [
        {
            "method": "GET",
            "path": "/svc/ping",
            "query": "a=1&b=x",
            "status": 200,
            "traceparent": traceparent,
            "idempotency": None,
            "fault": None,
        },
        {
            "method": "POST",
            "path": "/svc/work",
            "query": "",
            "status": 201,
            "traceparent": None,
            "idempotency": "tx-9",
            "fault": None,
        },
    ]
    assert client.delete("/_control/requests").status_code == 204
    assert journal(client) == []


def test_journal_keeps_only_the_last_1000_requests() -> None:
    assert JOURNAL_SIZE == 1000
    log = RequestJournal()
    for index in range(JOURNAL_SIZE + 5):
        scope: Any = {"method": "GET", "path": f"/r/{index}", "query_string": b"", "headers": []}
        log.open(scope)
    paths = [record["path"] for record in msgspec.json.decode(log.snapshot())]
    assert len(paths) == JOURNAL_SIZE
    assert (paths[0], paths[-1]) == ("/r/5", f"/r/{JOURNAL_SIZE + 4}")


# --- concurrency --------------------------------------------------------------------------------


async def test_remaining_is_exact_under_concurrency(aclient: AsyncTestClient[Litestar]) -> None:
    plan = {"error_status": 503, "remaining": 5, "latency_ms": 20}
    response = await aclient.put("/_control/faults", json=plan)
    assert response.status_code == 200
    responses = await asyncio.gather(*(aclient.get("/svc/ping") for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 15 + [503] * 5
    records = (await aclient.get("/_control/requests")).json()
    assert len(records) == 20
    assert sum(r["fault"] == "error" for r in records) == 5
