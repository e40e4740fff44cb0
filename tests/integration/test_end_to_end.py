"""The hub and the stubs as real processes on loopback, driven through every v1 endpoint."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests import factories
from tests.conftest import KEY
from tests.processes import Service, read_until_closed

pytestmark = pytest.mark.integration


def test_health_and_ready(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["store"]["ok"] is True
    assert all(c["ok"] for c in body["connectors"].values())


def test_journal_is_posted_once_with_an_erp_document_number(api: httpx.Client, stubs: dict[str, Service]) -> None:
    body = factories.journal()
    response = api.post("/v1/journals", json=body, headers={"Prefer": "wait=10"})
    assert response.status_code == 200, response.text
    transaction = response.json()
    assert transaction["state"] == "completed"
    (delivery,) = transaction["deliveries"]
    assert delivery["state"] == "done"
    assert delivery["attempts"] == 1
    assert [(a["outcome"], a["status"]) for a in delivery["history"]] == [("success", 201)]  # created
    journal = api.get(transaction["resource"]["href"]).json()
    assert journal["document_number"].startswith("JE-")

    # The same journal again: a second hub transaction, but the ERP keeps one journal.
    again = api.post("/v1/journals", json=body, headers={"Prefer": "wait=10"}).json()
    assert [a["status"] for a in again["deliveries"][0]["history"]] == [200]  # the ERP's duplicate answer
    assert api.get(again["resource"]["href"]).json()["document_number"] == journal["document_number"]
    erp = httpx.get(f"{stubs['erp'].url}/erp/journals", params={"external_reference": body["external_reference"]})
    assert len(erp.json()["items"]) == 1


def test_journal_the_erp_rejects_fails_with_its_code(api: httpx.Client) -> None:
    body = factories.journal(account="9999")  # not in the stub's chart of accounts
    transaction = api.post("/v1/journals", json=body, headers={"Prefer": "wait=10"}).json()
    assert transaction["state"] == "failed"
    (delivery,) = transaction["deliveries"]
    assert delivery["state"] == "dead"
    assert delivery["error_kind"] == "rejected"
    assert "EF04" in delivery["error"]


def test_account_reaches_the_ehr_and_the_erp(api: httpx.Client, stubs: dict[str, Service]) -> None:
    response = api.put("/v1/accounts/ACC-E2E-1", json=factories.account_details(), headers={"Prefer": "wait=10"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "completed"
    # Created in both targets (the EHR's status is its last upsert's).
    assert {d["target"]: d["history"][-1]["status"] for d in response.json()["deliveries"]} == {"ehr": 201, "erp": 201}
    account = api.get("/v1/accounts/ACC-E2E-1").json()
    assert account["erp_customer_number"].startswith("C")
    patient = httpx.get(f"{stubs['ehr'].url}/fhir/Patient/{account['ehr_patient_id']}")
    assert patient.status_code == 200
    assert patient.json()["identifier"][0]["value"] == "ACC-E2E-1"
    bundle = httpx.get(
        f"{stubs['ehr'].url}/fhir/Account", params={"identifier": "urn:billing-hub:MAIN:account|ACC-E2E-1"}
    ).json()
    assert bundle["total"] == 1
    customer = httpx.get(f"{stubs['erp'].url}/erp/customers/ACC-E2E-1")
    assert customer.json()["customer_number"] == account["erp_customer_number"]

    # A second sync updates the same FHIR resources: still one Account.
    again = api.put("/v1/accounts/ACC-E2E-1", json=factories.account_details(), headers={"Prefer": "wait=10"})
    assert {d["target"]: d["history"][-1]["status"] for d in again.json()["deliveries"]} == {"ehr": 200, "erp": 200}
    bundle = httpx.get(
        f"{stubs['ehr'].url}/fhir/Account", params={"identifier": "urn:billing-hub:MAIN:account|ACC-E2E-1"}
    ).json()
    assert bundle["total"] == 1


def test_delivery_retries_through_injected_faults(api: httpx.Client, stubs: dict[str, Service]) -> None:
    erp = stubs["erp"].url
    httpx.put(
        f"{erp}/_control/faults", json={"error_status": 503, "error_rate": 1.0, "remaining": 2}
    ).raise_for_status()
    try:
        transaction = api.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=20"}).json()
    finally:
        httpx.delete(f"{erp}/_control/faults")
    assert transaction["state"] == "completed", transaction
    (delivery,) = transaction["deliveries"]
    assert delivery["attempts"] == 3
    assert [a["outcome"] for a in delivery["history"]] == ["retry", "retry", "success"]
    assert [a["status"] for a in delivery["history"]] == [503, 503, 201]


def test_transaction_is_readable_while_accepted(api: httpx.Client) -> None:
    response = api.post("/v1/journals", json=factories.journal())
    assert response.status_code == 202
    location = response.headers["location"]
    transaction = api.get(location).json()
    assert transaction["state"] in {"accepted", "delivering", "completed"}


def test_claim_goes_out_as_837p_and_its_status_comes_back_live(api: httpx.Client, stubs: dict[str, Service]) -> None:
    body = factories.claim()
    response = api.post("/v1/claims", json=body, headers={"Prefer": "wait=10"})
    assert response.status_code == 200, response.text
    transaction = response.json()
    assert transaction["state"] == "completed", transaction
    (delivery,) = transaction["deliveries"]
    assert delivery["details"]["category_code"] == "A2"  # 277CA: accepted for processing
    assert [a["status"] for a in delivery["history"]] == [200]
    assert delivery["reference"].startswith("PCN")  # the payer claim number

    claim = api.get(f"/v1/claims/{body['claim_id']}").json()
    assert claim["status"]["source"] == "277CA"
    assert claim["claim"]["total_charge"] == "125.50"

    house = stubs["clearinghouse"].url
    adjudicated = {"category_code": "F1", "status_code": "65", "paid_amount": "80.00"}
    httpx.put(f"{house}/_control/claims/{body['claim_id']}/status", json=adjudicated).raise_for_status()
    live = api.get(f"/v1/claims/{body['claim_id']}/status")
    assert live.status_code == 200, live.text
    assert live.headers["x-status-source"] == "live"
    status = live.json()
    assert (status["category_code"], status["status_code"], status["paid_amount"], status["source"]) == (
        "F1", "65", "80.00", "277",
    )  # fmt: skip
    cached = api.get(f"/v1/claims/{body['claim_id']}/status")
    assert cached.headers["x-status-source"] == "cache"

    # The same claim again is a conflict at the hub; a replacement (frequency 7) goes through once.
    assert api.post("/v1/claims", json=body).status_code == 409
    replacement = {**body, "frequency_code": "7", "payer_claim_number": "PCC-0001"}
    replaced = api.post("/v1/claims", json=replacement, headers={"Prefer": "wait=10"})
    assert replaced.json()["state"] == "completed"
    listed = httpx.get(f"{house}/x12/claims").json()
    assert [c["claim_id"] for c in listed["items"]].count(body["claim_id"]) == 1


def test_claim_the_clearinghouse_rejects_is_dead_lettered(api: httpx.Client) -> None:
    body = factories.claim()
    body["payer"]["payer_id"] = "UNKNOWN"
    transaction = api.post("/v1/claims", json=body, headers={"Prefer": "wait=10"}).json()
    assert transaction["state"] == "failed"
    (delivery,) = transaction["deliveries"]
    assert delivery["error_kind"] == "rejected"
    assert "A7" in delivery["error"]
    dead = api.get("/v1/admin/dead-letters", params={"target": "clearinghouse"}).json()["items"]
    assert any(d["transaction_id"] == transaction["id"] for d in dead)


def test_status_of_an_unknown_claim_is_404(api: httpx.Client) -> None:
    assert api.get("/v1/claims/NO-SUCH-CLAIM/status").status_code == 404


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /v1/journals HTTP/1.1\r\nHost: hub\r\nContent-Length: 12x\r\n\r\n{}",
        b"POST /v1/journals HTTP/1.1\r\nHost: hub\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"GET /v1/accounts/A HTTP/1.1\r\nHost: hub\r\nX-API-Key: a\x00b\r\n\r\n",
        b"GET /v1/accounts/A HTTP/1.1 junk\r\n\r\n",
    ],
    ids=["bad-content-length", "bad-chunk-size", "nul-in-header", "bad-request-line"],
)
def test_a_request_the_server_cannot_parse_gets_a_problem(hub: Service, raw: bytes) -> None:
    """Refused by the HTTP parser before the app sees it, still as an RFC 9457 problem."""
    with socket.create_connection(("127.0.0.1", httpx.URL(hub.url).port or 80), timeout=5) as sock:
        sock.sendall(raw)
        answer = read_until_closed(sock)  # the server closes the connection after it
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert (problem["status"], problem["type"]) == (400, "urn:billing-hub:problem:malformed-request")


def test_a_body_that_stops_arriving_gets_a_408_and_the_connection_closes(hub: Service) -> None:
    """The test policy's body_timeout_s is 3 s: headers and half a body, then nothing more."""
    head = (
        "POST /v1/journals HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {KEY}\r\nContent-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", httpx.URL(hub.url).port or 80), timeout=15) as sock:
        sock.sendall(head.encode() + b'{"ledger": "GL", ')
        answer = read_until_closed(sock)  # until the server closes the connection
    elapsed = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", answer
    problem = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert (problem["status"], problem["type"]) == (408, "urn:billing-hub:problem:request-timeout")
    assert 2.5 < elapsed < 10


def test_a_head_over_the_limit_gets_a_431_problem(hub: Service) -> None:
    """httptools reads headers of any length; the hub stops at about 64 KiB (gateway/http_framing.py)."""
    raw = b"GET /health HTTP/1.1\r\nHost: hub\r\nX-Filler: " + b"a" * 1_048_576 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", httpx.URL(hub.url).port or 80), timeout=10) as sock:
        sock.sendall(raw)  # the hub drains what it does not read, so the answer is not lost to a reset
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), head
    assert json.loads(body)["type"] == "urn:billing-hub:problem:headers-too-large"
