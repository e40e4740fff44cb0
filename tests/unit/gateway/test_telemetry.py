"""Traces and metrics, with the SDK's in-memory exporter: the hub and the ERP stub in one process
(the connector's httpx client is wired to the stub app through an ASGI transport)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from connectors import ConnectorConfig
from connectors.erp import LedgerErpConnector
from connectors.erp._stub import create_app as create_erp_stub
from gateway.app import create_app
from gateway.hub import Hub
from gateway.settings import Settings
from gateway.store import SqliteStore
from gateway.telemetry import Telemetry, setup_telemetry
from tests import factories
from tests.conftest import KEY, TEST_POLICY

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def telemetry() -> Telemetry:
    # One tracer provider per process (OpenTelemetry keeps the first one set).
    return setup_telemetry(processor=SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def client(tmp_path: Path, telemetry: Telemetry) -> Iterator[tuple[TestClient[Any], Any]]:
    settings = Settings(
        data_dir=str(tmp_path), policy_file=str(TEST_POLICY), targets="erp", backoff_base_s=0.01, backoff_cap_s=0.05
    )
    erp = create_erp_stub()
    transport = httpx.ASGITransport(app=erp)
    connector = LedgerErpConnector(
        ConnectorConfig(base_url="http://erp.test"), httpx.AsyncClient(transport=transport, base_url="http://erp.test")
    )
    hub = Hub(settings=settings, store=SqliteStore(tmp_path / "hub.sqlite3", durability="normal"),
              connectors={"erp": connector})  # fmt: skip
    EXPORTER.clear()
    with TestClient(create_app(settings, hub=hub, telemetry=telemetry), base_url="http://hub.test") as c:
        c.headers["X-API-Key"] = KEY
        yield c, erp


def _spans() -> list[ReadableSpan]:
    return list(EXPORTER.get_finished_spans())


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_one_journal_is_one_connected_trace_through_the_erp_stub(client: tuple[TestClient[Any], Any]) -> None:
    c, _ = client
    response = c.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=10"})
    assert response.status_code == 200, response.text
    trace_id = response.headers["x-trace-id"]
    spans = [s for s in _spans() if format(s.context.trace_id, "032x") == trace_id]

    (server,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /v1/journals"]
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/journals"
    assert server.attributes["http.response.status_code"] == 200
    (dispatch,) = [s for s in spans if s.name == "deliver erp.post_journal"]
    assert dispatch.parent is not None
    assert dispatch.parent.span_id == server.context.span_id
    assert [link.context.span_id for link in dispatch.links] == [server.context.span_id]
    (client_span,) = _children(spans, dispatch)
    assert client_span.kind is SpanKind.CLIENT
    assert client_span.attributes is not None
    assert client_span.attributes["http.response.status_code"] == 201
    (stub_server,) = _children(spans, client_span)
    assert (stub_server.kind, stub_server.name) == (SpanKind.SERVER, "POST /erp/journals")

    # The same id is on the transaction and on its audit records.
    transaction = c.get(response.headers["location"]).json()
    assert transaction["trace_id"] == trace_id
    audit = c.get("/v1/admin/audit", params={"limit": 500}).json()["records"]
    mine = [r for r in audit if r["transaction_id"] == transaction["id"]]
    assert {r["operation"] for r in mine} >= {"postJournal", "deliver:post_journal"}
    assert {r["trace_id"] for r in mine} == {trace_id}


def test_a_retried_delivery_has_one_span_per_attempt(client: tuple[TestClient[Any], Any]) -> None:
    c, erp = client
    with TestClient(erp) as stub:
        stub.put("/_control/faults", json={"error_status": 503, "remaining": 2}).raise_for_status()
    response = c.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=10"})
    assert response.json()["state"] == "completed", response.text
    trace_id = response.headers["x-trace-id"]
    spans = [s for s in _spans() if format(s.context.trace_id, "032x") == trace_id]
    dispatches = sorted((s for s in spans if s.name == "deliver erp.post_journal"), key=lambda s: s.start_time or 0)
    assert len(dispatches) == 3
    resends = []
    for dispatch in dispatches:
        (attempt,) = _children(spans, dispatch)
        assert attempt.attributes is not None
        resends.append(attempt.attributes.get("http.request.resend_count"))
    assert resends == [None, 1, 2]
    assert [d.attributes["billing_hub.attempt"] for d in dispatches if d.attributes] == [1, 2, 3]


def test_metrics_are_exposed_in_prometheus_format(client: tuple[TestClient[Any], Any]) -> None:
    c, _ = client
    c.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=10"})
    scraped = c.get("/metrics")
    assert scraped.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"  # charset once
    text = scraped.text
    for name in (
        "http_server_request_duration",
        "billing_hub_connector_attempt_duration",
        "billing_hub_connector_attempts",
        "billing_hub_circuit_state",
        "billing_hub_outbox_depth",
        "billing_hub_outbox_oldest_age",
        "billing_hub_dead_letters",
    ):
        assert name in text, name
    assert 'connector="erp"' in text
    assert 'http_route="/v1/journals"' in text


def test_no_phi_in_spans_or_metrics(client: tuple[TestClient[Any], Any]) -> None:
    c, _ = client
    sentinel = "Zqxsentinelfam"
    body = factories.account_details(family=sentinel, member_id="MEMSENTINEL9")
    c.put("/v1/accounts/ACCSENTINEL7", json=body, headers={"Prefer": "wait=5"})
    c.put("/v1/accounts/ACCSENTINEL8", json={**body, "facility": sentinel})
    c.get("/v1/accounts/ACCSENTINEL7")
    dumped = " ".join(
        f"{s.name} {dict(s.attributes or {})} {[(e.name, dict(e.attributes or {})) for e in s.events]}"
        for s in _spans()
    )
    metrics = c.get("/metrics").text
    for value in (sentinel, "MEMSENTINEL9", "ACCSENTINEL7", "ACCSENTINEL8", "1980-04-12"):
        assert value.lower() not in dumped.lower(), dumped[max(0, dumped.lower().find(value.lower()) - 300) :][:500]
        assert value.lower() not in metrics.lower(), value
