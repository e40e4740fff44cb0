"""The ERP stub: customer upsert, GL journal validation, exactly-once posting, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient

from connectors.erp._stub import (
    DEFAULT_CHART_OF_ACCOUNTS,
    ErpStubConfig,
    JournalIn,
    Ledger,
    create_app,
    default_open_periods,
)
from tests.processes import free_port, running, stub_argv

CONFIG = ErpStubConfig(open_periods=["2026-10", "2026-11"], chart_of_accounts=["1000", "1100", "4000", "4100"])
Client = TestClient[Litestar]


def journal(reference: str = "tx-1", **extra: Any) -> dict[str, Any]:
    body = {
        "external_reference": reference,
        "ledger": "PRIMARY",
        "accounting_date": "2026-11-05",
        "currency": "USD",
        "description": "Patient payment",
        "lines": [
            {"account": "1000", "cost_center": "CC10", "debit": "125.5", "credit": None, "memo": None},
            {"account": "1100", "debit": None, "credit": "125.50"},
        ],
    }
    return body | extra


def line(account: str = "1000", debit: str | None = None, credit: str | None = None) -> dict[str, Any]:
    return {"account": account, "debit": debit, "credit": credit}


@pytest.fixture
def client() -> Iterator[Client]:
    with TestClient(create_app(CONFIG)) as test_client:
        yield test_client


def codes(response: httpx.Response) -> list[tuple[str, int | None]]:
    return [(error["code"], error["line"]) for error in response.json()["errors"]]


def test_health(client: Client) -> None:
    response = client.get("/erp/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# --- customers --------------------------------------------------------------------------------


def test_customer_upsert_creates_then_updates_in_place(client: Client) -> None:
    address = {"line": ["1 Main St"], "city": "Springfield", "postalCode": "11111"}
    body = {"name": "Jane Roe", "account_number": "A-1", "currency": "USD", "address": address}
    first = client.put("/erp/customers/acct-1", json=body)
    assert first.status_code == 201
    assert first.json() == {"customer_number": "C000001", "external_ref": "acct-1", "created": True}
    again = client.put("/erp/customers/acct-1", json=body | {"name": "Jane Doe", "address": None})
    assert again.status_code == 200
    assert again.json() == {"customer_number": "C000001", "external_ref": "acct-1", "created": False}
    stored = client.get("/erp/customers/acct-1").json()
    assert (stored["name"], stored["address"], stored["customer_number"]) == ("Jane Doe", None, "C000001")
    second = client.put("/erp/customers/acct-2", json=body)
    assert second.json()["customer_number"] == "C000002"


def test_unknown_customer_is_404(client: Client) -> None:
    response = client.get("/erp/customers/nobody")
    assert response.status_code == 404
    assert codes(response) == [("NF01", None)]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"account_number": "A-1"}, 400, "EX00"),
        ({"name": "", "account_number": "A-1"}, 400, "EX00"),
        ({"name": "X", "account_number": "A-1", "currency": "usd"}, 422, "EC01"),
    ],
)
def test_customer_validation(client: Client, body: dict[str, Any], status: int, code: str) -> None:
    response = client.put("/erp/customers/acct-1", json=body)
    assert response.status_code == status
    assert codes(response) == [(code, None)]
    assert client.get("/erp/customers/acct-1").status_code == 404


# --- journals: posting and exactly-once --------------------------------------------------------


def test_post_journal_returns_a_sequential_document_number(client: Client) -> None:
    first = client.post("/erp/journals", json=journal("tx-1"))
    assert first.status_code == 201
    body = first.json()
    assert body | {"posted_at": None} == {
        "document_number": "JE-000001",
        "external_reference": "tx-1",
        "status": "posted",
        "posted_at": None,
        "duplicate": False,
    }
    assert datetime.fromisoformat(body["posted_at"]).tzinfo is not None
    assert client.post("/erp/journals", json=journal("tx-2")).json()["document_number"] == "JE-000002"


def test_posted_journal_can_be_read_back_with_normalised_amounts(client: Client) -> None:
    client.post("/erp/journals", json=journal())
    stored = client.get("/erp/journals/JE-000001").json()
    assert stored["lines"][0] == {
        "account": "1000",
        "cost_center": "CC10",
        "debit": "125.50",
        "credit": None,
        "memo": None,
    }
    assert (stored["total_debit"], stored["total_credit"]) == ("125.50", "125.50")
    assert (stored["accounting_date"], stored["ledger"]) == ("2026-11-05", "PRIMARY")
    assert stored["status"] == "posted"
    assert client.get("/erp/journals/JE-000002").status_code == 404
    assert codes(client.get("/erp/journals/JE-000002")) == [("NF02", None)]


@pytest.mark.parametrize(
    "repeat",
    [
        journal("tx-1"),
        journal("tx-1", description="something else", currency="eur"),  # invalid, but a repeat
        {"external_reference": "tx-1"},  # not even a journal
    ],
)
def test_repeated_external_reference_returns_the_original(client: Client, repeat: dict[str, Any]) -> None:
    original = client.post("/erp/journals", json=journal("tx-1")).json()
    response = client.post("/erp/journals", json=repeat)
    assert response.status_code == 200
    assert response.json() == original | {"duplicate": True}
    assert client.get("/erp/journals").json()["count"] == 1


def test_a_rejected_journal_does_not_consume_its_reference(client: Client) -> None:
    assert client.post("/erp/journals", json=journal(currency="usd")).status_code == 422
    assert client.post("/erp/journals", json=journal()).status_code == 201


async def test_concurrent_redeliveries_post_exactly_once() -> None:
    async with AsyncTestClient(create_app(CONFIG)) as aclient:
        responses = await asyncio.gather(*(aclient.post("/erp/journals", json=journal()) for _ in range(20)))
        assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
        assert {r.json()["document_number"] for r in responses} == {"JE-000001"}
        assert (await aclient.get("/erp/journals")).json()["count"] == 1


def test_ledger_post_itself_is_idempotent() -> None:
    """The handler pre-checks too, but the ledger's own check is what holds across threads."""
    ledger = Ledger(CONFIG)
    body = msgspec.convert(journal(), JournalIn)
    first, first_duplicate = ledger.post(body)
    second, second_duplicate = ledger.post(body)
    assert (first_duplicate, second_duplicate) == (False, True)
    assert second is first
    assert len(ledger.journals(None)) == 1


def test_list_journals_with_and_without_filter(client: Client) -> None:
    client.post("/erp/journals", json=journal("tx-1"))
    client.post("/erp/journals", json=journal("tx-2"))
    everything = client.get("/erp/journals").json()
    assert everything["count"] == 2
    assert [j["document_number"] for j in everything["items"]] == ["JE-000001", "JE-000002"]
    filtered = client.get("/erp/journals", params={"external_reference": "tx-2"}).json()
    assert [j["document_number"] for j in filtered["items"]] == ["JE-000002"]
    assert client.get("/erp/journals", params={"external_reference": "nope"}).json()["items"] == []


# --- journals: validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"accounting_date": "2026-09-30"}, [("EP01", None)]),
        ({"currency": "usd"}, [("EC01", None)]),
        ({"currency": "US"}, [("EC01", None)]),
        ({"lines": [line("1000", debit="0.00")]}, [("EJ01", None)]),
        ({"lines": [line("1000", debit="10.00"), line("1100", credit="9.99")]}, [("EU02", None)]),
        ({"lines": [line("1000", debit="10"), line("9999", credit="10")]}, [("EF04", 1)]),
        ({"lines": [line("1000", debit="1", credit="1"), line("1100", credit="0")]}, [("EL01", 0)]),
        ({"lines": [line("1000", debit="5"), line("1100")]}, [("EL01", 1), ("EU02", None)]),
        ({"lines": [line("1000", debit="-5"), line("1100", credit="-5")]}, [("EL01", 0), ("EL01", 1)]),
        ({"lines": [line("1000", debit="1.005"), line("1100", credit="1.005")]}, [("EL01", 0), ("EL01", 1)]),
        ({"lines": [line("1000", debit="1e2"), line("1100", credit="100")]}, [("EL01", 0), ("EU02", None)]),
        ({"lines": [line("1000", debit="NaN"), line("1100", credit="0")]}, [("EL01", 0)]),
    ],
)
def test_each_check(client: Client, changes: dict[str, Any], expected: list[tuple[str, int | None]]) -> None:
    response = client.post("/erp/journals", json=journal(**changes))
    assert response.status_code == 422
    assert codes(response) == expected
    assert client.get("/erp/journals").json()["count"] == 0


def test_every_error_is_reported_at_once(client: Client) -> None:
    body = journal(accounting_date="2020-01-01", currency="dollars", lines=[line("7777", debit="1.001")])
    response = client.post("/erp/journals", json=body)
    assert response.status_code == 422
    assert sorted(codes(response), key=str) == sorted(
        [("EP01", None), ("EC01", None), ("EJ01", None), ("EF04", 0), ("EL01", 0), ("EU02", None)], key=str
    )


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"external_reference": "tx-9"}',  # missing fields, not a repeat
        b'{"external_reference": "tx-9", "ledger": "P", "accounting_date": "2026-13-01", '
        b'"currency": "USD", "description": "", "lines": []}',
        # amounts must be decimal strings: a JSON number would be a float on most clients
        b'{"external_reference": "tx-9", "ledger": "P", "accounting_date": "2026-11-01", '
        b'"currency": "USD", "description": "", "lines": [{"account": "1000", "debit": 1.5}]}',
    ],
)
def test_malformed_requests_are_400_ex00(client: Client, content: bytes) -> None:
    response = client.post("/erp/journals", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert codes(response) == [("EX00", None)]


def test_decimal_arithmetic_balances_where_float_would_not(client: Client) -> None:
    assert 0.1 + 0.1 + 0.1 != 0.3  # the trap this stub must not fall into
    lines = [line("1000", debit="0.10")] * 3 + [line("4000", credit="0.30")]
    assert client.post("/erp/journals", json=journal(lines=lines)).status_code == 201


cents = st.integers(min_value=0, max_value=10**12).map(lambda c: Decimal(c) / 100)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(debits=st.lists(cents, min_size=1, max_size=8))
def test_any_balanced_journal_posts(debits: list[Decimal]) -> None:
    lines = [line("1000", debit=str(amount)) for amount in debits]
    lines.append(line("4000", credit=str(sum(debits, Decimal(0)))))
    with TestClient(create_app(CONFIG)) as test_client:
        response = test_client.post("/erp/journals", json=journal(lines=lines))
        assert response.status_code == 201, response.text
        stored = test_client.get("/erp/journals/JE-000001").json()
        assert Decimal(stored["total_debit"]) == sum(debits, Decimal(0))


# --- configuration -----------------------------------------------------------------------------


def test_default_open_periods_span_24_months_back_to_2_ahead() -> None:
    periods = default_open_periods(date(2026, 1, 15))
    assert len(periods) == 27
    assert (periods[0], periods[23], periods[24], periods[-1]) == ("2024-01", "2025-12", "2026-01", "2026-03")


def test_default_config_accepts_today_and_a_hospital_chart() -> None:
    config = ErpStubConfig()
    assert datetime.now(UTC).strftime("%Y-%m") in config.open_periods
    assert len(config.chart_of_accounts) >= 8
    assert {"1000", "1100", "1150", "2100", "4000", "4100", "4200", "4300"} <= set(config.chart_of_accounts)
    assert set(config.chart_of_accounts) == set(DEFAULT_CHART_OF_ACCOUNTS)


def test_config_rejects_malformed_periods() -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        ErpStubConfig(open_periods=["2026-13"])


def test_create_app_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_STUB_OPEN_PERIODS", "2030-01, 2030-02")
    monkeypatch.setenv("ERP_STUB_ACCOUNTS", "1000,9000")
    with TestClient(create_app()) as test_client:
        ok = journal(accounting_date="2030-02-28", lines=[line("1000", debit="1"), line("9000", credit="1")])
        assert test_client.post("/erp/journals", json=ok).status_code == 201
        rejected = test_client.post("/erp/journals", json=journal("tx-2"))
        assert codes(rejected) == [("EP01", None), ("EF04", 1)]


def test_from_env_treats_blank_as_default() -> None:
    config = ErpStubConfig.from_env({"ERP_STUB_OPEN_PERIODS": " ", "ERP_STUB_ACCOUNTS": "1000,,2000"})
    assert config.open_periods == default_open_periods()
    assert config.chart_of_accounts == ["1000", "2000"]


# --- errors in the ERP dialect -----------------------------------------------------------------


def test_injected_fault_and_router_errors_use_the_errors_shape(client: Client) -> None:
    assert client.put("/_control/faults", json={"error_status": 503, "remaining": 1}).status_code == 200
    fault = client.get("/erp/health")
    assert (fault.status_code, fault.headers["retry-after"]) == (503, "1")
    assert fault.json() == {"errors": [{"code": "SYS01", "message": "injected fault", "line": None}]}
    missing = client.get("/erp/nothing-here")
    assert (missing.status_code, codes(missing)) == (404, [("HTTP404", None)])


# --- as a real process ------------------------------------------------------------------------


@pytest.fixture
def erp_process() -> Iterator[str]:
    port = free_port()
    env = {"ERP_STUB_OPEN_PERIODS": "2031-05", "ERP_STUB_ACCOUNTS": "1000,4000"}  # read by the child process
    with running("erp-stub", stub_argv("erp", port), port, "/erp/health", env=env) as service:
        httpx.delete(f"{service.url}/_control/requests").raise_for_status()
        yield service.url
    output = service.process.stdout.read().decode(errors="replace") if service.process.stdout else ""
    assert "Traceback" not in output


@pytest.mark.integration
def test_real_process_posts_exactly_once_across_a_lost_response(erp_process: str) -> None:
    lines = [line("1000", debit="10.00"), line("4000", credit="10.00")]
    body = journal("tx-real", accounting_date="2031-05-01", lines=lines)
    headers = {"X-External-Reference": "tx-real"}
    with httpx.Client(base_url=erp_process, timeout=5.0) as http:
        plan = {"drop_rate": 1.0, "drop_phase": "after", "remaining": 1, "path_prefix": "/erp/journals"}
        http.put("/_control/faults", json=plan).raise_for_status()
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/erp/journals", json=body, headers=headers)

        retried = http.post("/erp/journals", json=body, headers=headers)
        assert retried.status_code == 200
        assert (retried.json()["document_number"], retried.json()["duplicate"]) == ("JE-000001", True)
        assert http.get("/erp/journals").json()["count"] == 1

        records = http.get("/_control/requests").json()
        assert [(r["status"], r["fault"], r["idempotency"]) for r in records[:2]] == [
            (201, "drop", "tx-real"),
            (200, None, "tx-real"),
        ]
