"""The policy chain against the running hub: every refusal status and the replay behaviour."""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest

from tests import factories
from tests.conftest import BETA_KEY, KEY, READER_KEY
from tests.processes import Service, read_until_closed

pytestmark = pytest.mark.integration


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


def test_401_without_or_with_a_wrong_credential(hub: Service) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer not-a-jwt"}):
        response = httpx.get(f"{hub.url}/v1/transactions/txn_00000000000000000000000000", headers=headers)
        _problem(response, 401)
        assert "ApiKey" in response.headers["www-authenticate"]
        assert "Bearer" in response.headers["www-authenticate"]


def test_403_without_the_scope(hub: Service) -> None:
    response = httpx.post(f"{hub.url}/v1/journals", json=factories.journal(), headers={"X-API-Key": READER_KEY})
    assert "journals:write" in str(_problem(response, 403)["detail"])
    admin = httpx.get(f"{hub.url}/v1/admin/audit", headers={"X-API-Key": BETA_KEY})
    _problem(admin, 403)


def test_another_clients_ids_answer_404(api: httpx.Client, hub: Service) -> None:
    accepted = api.post("/v1/journals", json=factories.journal())
    assert accepted.status_code == 202
    transaction = accepted.json()
    beta = {"X-API-Key": BETA_KEY}
    _problem(httpx.get(f"{hub.url}{accepted.headers['location']}", headers=beta), 404)
    _problem(httpx.get(f"{hub.url}{transaction['resource']['href']}", headers=beta), 404)
    assert api.get(transaction["resource"]["href"]).status_code == 200


def test_a_journal_reference_is_its_first_clients(api: httpx.Client, hub: Service) -> None:
    """The ERP keeps one journal per external reference: another client's journal with the same
    reference is refused, in any ledger, neither answered with the first client's document number
    nor posted."""
    body = factories.journal(reference=f"SHARED-{uuid.uuid4().hex[:8]}")
    assert api.post("/v1/journals", json=body).status_code == 202
    again = api.post("/v1/journals", json=body)
    assert again.status_code == 202  # the same client may send it again: the ERP keeps one journal
    changed = {**body, "description": "the same reference, other content"}
    refused = _problem(api.post("/v1/journals", json=changed), 409)  # the ERP would keep the first
    assert refused["detail"].startswith("a journal with this external_reference was posted with other content")
    for ledger in (body["ledger"], "BETA-GL"):
        beta = httpx.post(f"{hub.url}/v1/journals", json={**body, "ledger": ledger}, headers={"X-API-Key": BETA_KEY})
        assert _problem(beta, 409)["detail"] == "another client posted a journal with this external_reference"


def test_an_account_keeps_its_facility(api: httpx.Client, hub: Service) -> None:
    """The EHR names an account's resources by facility: the same number under another facility
    would be a second patient there, so it is refused; the same facility is an update as before."""
    number = f"ACC-F{uuid.uuid4().hex[:8]}"
    assert api.put(f"/v1/accounts/{number}", json=factories.account_details()).status_code == 202
    renamed = factories.account_details(family="Rivera-Cruz")
    assert api.put(f"/v1/accounts/{number}", json=renamed).status_code == 202
    moved = _problem(api.put(f"/v1/accounts/{number}", json={**renamed, "facility": "EAST"}), 409)
    assert str(moved["detail"]).startswith("this account is held at another facility")
    beta = httpx.put(f"{hub.url}/v1/accounts/{number}", json=renamed, headers={"X-API-Key": BETA_KEY})
    assert _problem(beta, 409)["detail"] == "this account number belongs to another client"
    assert api.get(f"/v1/accounts/{number}").json()["account"]["patient"]["name"]["family"] == "Rivera-Cruz"


def test_413_415_and_json_shape_limits(api: httpx.Client) -> None:
    _problem(api.post("/v1/journals", content=b"x" * 300_000, headers={"content-type": "application/json"}), 413)
    _problem(api.post("/v1/journals", content=b"{}", headers={"content-type": "text/csv"}), 415)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    _problem(api.post("/v1/journals", json={"x": deep}), 400)
    _problem(api.post("/v1/journals", json={"lines": list(range(500))}), 413)


def test_a_route_may_allow_more_than_the_default_body_size(api: httpx.Client) -> None:
    """postRemittance allows 10 MiB (the test policy, as the shipped one): a 6 MiB body is read and
    accepted, one past 10 MiB is refused by the policy, not by a lower cap inside the server."""
    body = json.dumps(factories.remittance(claim_ids=(f"PCN{uuid.uuid4().hex[:8]}",))).encode()
    large = body + b" " * (6 * 1024 * 1024)  # JSON allows trailing white space
    response = api.post("/v1/remittances", content=large, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    too_large = body + b" " * (10 * 1024 * 1024)
    refused = _problem(
        api.post("/v1/remittances", content=too_large, headers={"content-type": "application/json"}), 413
    )
    assert "10485760 bytes" in str(refused["detail"])


def test_idempotency_replays_conflicts_and_mismatches(api: httpx.Client) -> None:
    key = str(uuid.uuid4())
    body = factories.journal()
    first = api.post("/v1/journals", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    again = api.post("/v1/journals", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    other = api.post("/v1/journals", json=factories.journal(), headers={"Idempotency-Key": key})
    _problem(other, 422)


def test_rate_limit_headers_on_every_governed_response(api: httpx.Client) -> None:
    response = api.get("/v1/transactions/txn_00000000000000000000000000")
    assert response.status_code == 404
    assert response.headers["ratelimit-policy"].startswith('"reads";q=')
    assert response.headers["ratelimit"].startswith('"reads";r=')


def test_audit_trail_records_calls_without_phi(api: httpx.Client) -> None:
    family = f"Sentinel{uuid.uuid4().hex[:8]}"
    response = api.put(
        "/v1/accounts/ACC-AUDIT-1", json=factories.account_details(family=family), headers={"Prefer": "wait=10"}
    )
    assert response.status_code == 200
    records = api.get("/v1/admin/audit", params={"operation": "putAccount", "limit": 500}).json()["records"]
    assert records, "the call was not audited"
    record = records[-1]
    assert record["client_id"] == "alpha"
    assert record["status"] == 200
    assert record["resource_id"] != "ACC-AUDIT-1"  # account numbers are audited as hashes
    deliveries = api.get("/v1/admin/audit", params={"operation": "deliver:sync_account", "limit": 500}).json()
    mine = [r for r in deliveries["records"] if r["transaction_id"] == response.json()["id"]]
    assert mine
    assert {(r["outcome"], r["status"]) for r in mine} <= {("delivered", 200), ("delivered", 201)}, mine
    assert family not in api.get("/v1/admin/audit", params={"limit": 500}).text


def _on_the_wire(
    hub: Service, head: list[str], body: bytes = b"", *, half_close: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One request written as given (repeated header lines stay repeated), then the answer. With
    ``half_close`` the client ends its side after the request (``nc -N``) instead of asking to close."""
    ending = [] if half_close else ["Connection: close"]
    raw = "\r\n".join([*head, "Host: hub", *ending, "", ""]).encode() + body
    with socket.create_connection(("127.0.0.1", httpx.URL(hub.url).port or 80), timeout=10) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = read_until_closed(sock)
    status_head, _, payload = answer.partition(b"\r\n\r\n")
    status_line, *lines = status_head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, payload


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def test_a_transfer_coding_other_than_chunked_is_501(hub: Service) -> None:
    """RFC 9112 section 6.1: the hub does not implement gzip as a transfer coding, so it cannot read the body."""
    body = json.dumps(factories.journal()).encode()
    head = ["POST /v1/journals HTTP/1.1", f"X-API-Key: {KEY}", "Content-Type: application/json"]
    status, headers, payload = _on_the_wire(hub, [*head, "Transfer-Encoding: gzip, chunked"], _chunked(body))
    assert status == 501, payload
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(payload)
    assert problem["type"] == "urn:billing-hub:problem:not-implemented"
    assert "Transfer-Encoding" in problem["detail"]
    status, _, payload = _on_the_wire(hub, [*head, "Transfer-Encoding: chunked"], _chunked(body))
    assert status == 202, payload


def test_a_content_coding_other_than_identity_is_415_naming_the_header(api: httpx.Client) -> None:
    body = json.dumps(factories.journal()).encode()
    plain = {"content-type": "application/json"}
    refused = api.post("/v1/journals", content=body, headers={**plain, "content-encoding": "gzip"})
    problem = _problem(refused, 415)
    assert "Content-Encoding" in str(problem["detail"])
    assert refused.headers["accept-encoding"] == "identity"
    accepted = api.post("/v1/journals", content=body, headers={**plain, "content-encoding": "identity"})
    assert accepted.status_code == 202, accepted.text


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        ("X-API-Key", [f"X-API-Key: {KEY}", "X-API-Key: bogus"]),
        ("X-API-Key", ["X-API-Key: bogus", f"X-API-Key: {KEY}"]),
        ("X-API-Key", [f"X-API-Key: {KEY}", f"X-API-Key: {KEY}"]),
        ("Authorization", [f"X-API-Key: {KEY}", "Authorization: Bearer a", "Authorization: Bearer b"]),
    ],
)
def test_a_credential_header_sent_twice_is_401(hub: Service, name: str, lines: list[str]) -> None:
    """Which of two credentials is meant is not for the hub to guess (a proxy may have added one)."""
    status, headers, payload = _on_the_wire(hub, ["GET /v1/admin/connectors HTTP/1.1", *lines])
    assert status == 401, payload
    assert "ApiKey" in headers["www-authenticate"]
    assert f"{name} header appears more than once" in json.loads(payload)["detail"]


def test_an_idempotency_key_sent_twice_is_400_naming_the_header(hub: Service) -> None:
    body = json.dumps(factories.journal()).encode()
    head = ["POST /v1/journals HTTP/1.1", f"X-API-Key: {KEY}", "Content-Type: application/json"]
    keys = [f"Idempotency-Key: {uuid.uuid4()}", f"Idempotency-Key: {uuid.uuid4()}"]
    status, _, payload = _on_the_wire(hub, [*head, *keys, f"Content-Length: {len(body)}"], body)
    assert status == 400, payload
    problem = json.loads(payload)
    assert problem["type"] == "urn:billing-hub:problem:malformed-request"
    assert "Idempotency-Key header appears more than once" in problem["detail"]


def test_every_prefer_line_counts(hub: Service) -> None:
    """RFC 7240 section 2: preferences may come on several lines; the wait on the second counts."""
    body = json.dumps(factories.journal()).encode()
    head = ["POST /v1/journals HTTP/1.1", f"X-API-Key: {KEY}", "Content-Type: application/json",
            "Prefer: respond-async", "Prefer: wait=10", f"Content-Length: {len(body)}"]  # fmt: skip
    status, headers, payload = _on_the_wire(hub, head, body)
    assert (status, headers.get("preference-applied")) == (200, "wait=10"), payload
    assert json.loads(payload)["state"] == "completed"


def test_head_on_the_running_hub_sends_no_content_and_keeps_the_connection(hub: Service) -> None:
    """The server writes no body for a HEAD: the next request on the same connection reads cleanly."""
    path = f"{hub.url}/v1/transactions/txn_00000000000000000000000000"
    with httpx.Client(headers={"X-API-Key": KEY}) as client:
        head = client.head(path)
        got = client.get(path)
        again = client.head(f"{hub.url}/health")
    assert (head.status_code, head.content) == (404, b"")
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert got.json()["status"] == 404
    assert (again.status_code, again.content) == (200, b"")


def test_a_post_from_a_client_that_half_closes_is_answered_once_stored(hub: Service) -> None:
    """A whole request followed by the end of the client's side (``nc -N``) was taken for a
    disconnect: the journal was stored and the client never heard so."""
    body = json.dumps({**factories.journal(), "external_reference": f"HALF-{uuid.uuid4().hex[:12]}"}).encode()
    head = ["POST /v1/journals HTTP/1.1", f"X-API-Key: {KEY}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]  # fmt: skip
    status, _, payload = _on_the_wire(hub, head, body, half_close=True)
    assert status == 202, payload[:300]
    stored = httpx.get(f"{hub.url}/v1/transactions/{json.loads(payload)['id']}", headers={"X-API-Key": KEY})
    assert stored.status_code == 200
