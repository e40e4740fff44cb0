"""The FHIR R4 EHR stub: CRUD with versions and ETags, conditional update, validation, faults."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient

from connectors.ehr._stub import create_app
from tests.processes import free_port, running, stub_argv

MRN = "urn:oid:1.2.36.146.595.217.0.1"
Client = TestClient[Litestar]


def patient(value: str = "12345", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": value}], **extra}


def coverage(**extra: Any) -> dict[str, Any]:
    body = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/abc"},
        "payor": [{"reference": "Organization/payer-1"}],
    }
    return body | extra


@pytest.fixture
def client() -> Iterator[Client]:
    with TestClient(create_app()) as test_client:
        yield test_client


def issues(response: httpx.Response) -> list[tuple[str, list[str]]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert all(issue["severity"] == "error" for issue in body["issue"])
    return [(issue["code"], issue.get("expression", [])) for issue in body["issue"]]


# --- read / create / update ----------------------------------------------------------------------


def test_metadata_is_a_capability_statement(client: Client) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    body = response.json()
    assert (body["resourceType"], body["fhirVersion"]) == ("CapabilityStatement", "4.0.1")
    assert sorted(r["type"] for r in body["rest"][0]["resource"]) == ["Account", "Coverage", "Patient"]


def test_create_assigns_id_version_and_etag(client: Client) -> None:
    response = client.post("/fhir/Patient", json=patient(id="ignored", meta={"source": "x"}))
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
    assert response.headers["location"] == f"/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["source"] == "x"
    assert body["meta"]["lastUpdated"].endswith("Z")
    datetime.fromisoformat(body["meta"]["lastUpdated"])
    assert body["identifier"] == [{"system": MRN, "value": "12345"}]


def test_read_returns_the_resource_with_etag(client: Client) -> None:
    created = client.post("/fhir/Account", json={**patient(), "resourceType": "Account", "status": "active"})
    rid = created.json()["id"]
    response = client.get(f"/fhir/Account/{rid}")
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert response.json() == created.json()


def test_read_unknown_id_is_404_not_found(client: Client) -> None:
    response = client.get("/fhir/Patient/does-not-exist")
    assert response.status_code == 404
    assert issues(response)[0][0] == "not-found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/fhir/Observation"), ("GET", "/fhir/Observation/1"), ("GET", "/fhir/Observation")],
)
def test_unsupported_resource_types_are_404_not_supported(client: Client, method: str, path: str) -> None:
    response = client.request(method, path, json={"resourceType": "Observation"})
    assert response.status_code == 404
    assert issues(response)[0][0] == "not-supported"


def test_update_with_matching_if_match_bumps_the_version(client: Client) -> None:
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    if_match = {"If-Match": 'W/"1"'}
    response = client.put(f"/fhir/Patient/{rid}", json=patient(id=rid, active=True), headers=if_match)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    assert "location" not in response.headers
    assert (response.json()["meta"]["versionId"], response.json()["active"]) == ("2", True)
    assert client.get(f"/fhir/Patient/{rid}/_history/1").json()["meta"]["versionId"] == "1"
    assert "active" not in client.get(f"/fhir/Patient/{rid}/_history/1").json()
    assert client.get(f"/fhir/Patient/{rid}/_history/3").status_code == 404


def test_update_with_stale_if_match_is_412_conflict(client: Client) -> None:
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.put(f"/fhir/Patient/{rid}", json=patient())
    response = client.put(f"/fhir/Patient/{rid}", json=patient(), headers={"If-Match": 'W/"1"'})
    assert response.status_code == 412
    assert issues(response) == [("conflict", ["Patient.meta.versionId"])]
    assert client.get(f"/fhir/Patient/{rid}").headers["etag"] == 'W/"2"'


def test_malformed_if_match_is_400(client: Client) -> None:
    rid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.put(f"/fhir/Patient/{rid}", json=patient(), headers={"If-Match": "*"})
    assert response.status_code == 400


def test_update_as_create_with_client_id_is_201(client: Client) -> None:
    response = client.put("/fhir/Patient/mrn-12345", json=patient())
    assert response.status_code == 201
    assert response.headers["location"] == "/fhir/Patient/mrn-12345/_history/1"
    assert client.put("/fhir/Patient/mrn-12345", json=patient()).status_code == 200
    assert client.put("/fhir/Patient/bad id!", json=patient()).status_code == 400


def test_update_body_id_must_match_url(client: Client) -> None:
    response = client.put("/fhir/Patient/a1", json=patient(id="b2"))
    assert response.status_code == 400
    assert issues(response) == [("invalid", ["Patient.id"])]


# --- conditional update and search ---------------------------------------------------------------


def test_conditional_update_creates_then_updates(client: Client) -> None:
    url = f"/fhir/Patient?identifier={MRN}|12345"
    created = client.put(url, json=patient())
    assert created.status_code == 201
    updated = client.put(url, json=patient(active=False), headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.headers["etag"] == 'W/"2"'
    stale = client.put(url, json=patient(), headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert client.get(f"/fhir/Patient?identifier={MRN}|12345").json()["total"] == 1


def test_conditional_update_accepts_a_bare_value(client: Client) -> None:
    rid = client.put("/fhir/Patient?identifier=777", json=patient("777")).json()["id"]
    response = client.put("/fhir/Patient?identifier=777", json=patient("777"))
    assert (response.status_code, response.json()["id"]) == (200, rid)


def test_conditional_update_with_several_matches_is_412(client: Client) -> None:
    client.post("/fhir/Patient", json=patient())
    client.post("/fhir/Patient", json=patient())
    response = client.put(f"/fhir/Patient?identifier={MRN}|12345", json=patient())
    assert response.status_code == 412
    assert issues(response)[0][0] == "multiple-matches"


@pytest.mark.parametrize(
    ("query", "body", "status"),
    [
        (f"identifier={MRN}|999", patient("12345"), 400),  # body lacks the searched identifier
        ("", patient(), 400),  # no criteria
        ("name=smith", patient(), 400),  # unsupported criteria
        (f"identifier={MRN}|12345", patient(id="other-id"), 201),  # no match, unused id: update-as-create
    ],
)
def test_conditional_update_criteria(client: Client, query: str, body: dict[str, Any], status: int) -> None:
    assert client.put(f"/fhir/Patient?{query}", json=body).status_code == status


def test_conditional_update_id_rules(client: Client) -> None:
    client.put("/fhir/Patient/taken", json=patient("1"))
    assert client.put("/fhir/Patient?identifier=2", json=patient("2", id="taken")).status_code == 409
    assert client.put("/fhir/Patient?identifier=1", json=patient("1", id="not-it")).status_code == 400


def test_search_by_identifier_returns_a_searchset_bundle(client: Client) -> None:
    rid = client.post("/fhir/Patient", json=patient("A")).json()["id"]
    client.post("/fhir/Patient", json=patient("B"))
    client.post("/fhir/Patient", json={"resourceType": "Patient", "identifier": [{"value": "A"}]})
    bundle = client.get(f"/fhir/Patient?identifier={MRN}|A").json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    assert bundle["entry"][0]["resource"]["id"] == rid
    assert bundle["entry"][0]["fullUrl"].endswith(f"/fhir/Patient/{rid}")
    assert client.get("/fhir/Patient?identifier=A").json()["total"] == 2  # any system
    assert client.get("/fhir/Patient?identifier=|A").json()["total"] == 1  # no system
    assert client.get("/fhir/Patient?identifier=nobody").json() | {"link": []} == {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 0,
        "link": [],
        "entry": [],
    }
    assert client.get("/fhir/Patient").json()["total"] == 3
    assert client.get("/fhir/Patient?family=x").status_code == 400


async def test_concurrent_conditional_updates_create_exactly_one_resource() -> None:
    async with AsyncTestClient(create_app()) as aclient:
        url = f"/fhir/Patient?identifier={MRN}|42"
        responses = await asyncio.gather(*(aclient.put(url, json=patient("42")) for _ in range(10)))
        assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
        assert len({r.json()["id"] for r in responses}) == 1
        assert (await aclient.get(url)).json()["total"] == 1


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "body", "expected"),
    [
        ("Patient", {"resourceType": "Patient"}, [("required", ["Patient.identifier"])]),
        ("Patient", {"resourceType": "Patient", "identifier": "x"}, [("invalid", ["Patient.identifier"])]),
        ("Patient", {"identifier": [{"value": "1"}]}, [("required", ["resourceType"])]),
        ("Patient", {**patient(), "resourceType": "Account"}, [("invalid", ["resourceType"])]),
        (
            "Account",
            {"resourceType": "Account", "status": "open"},
            [("required", ["Account.identifier"]), ("invalid", ["Account.status"])],
        ),
        ("Account", {**patient(), "resourceType": "Account"}, [("required", ["Account.status"])]),
        ("Coverage", coverage(status="expired"), [("invalid", ["Coverage.status"])]),
        ("Coverage", coverage(status=["active"]), [("invalid", ["Coverage.status"])]),
        ("Coverage", coverage(beneficiary="Patient/1"), [("required", ["Coverage.beneficiary.reference"])]),
        ("Coverage", coverage(payor={"reference": "x"}), [("invalid", ["Coverage.payor"])]),
        ("Coverage", coverage(beneficiary={}), [("required", ["Coverage.beneficiary.reference"])]),
        ("Coverage", coverage(payor=[]), [("required", ["Coverage.payor"])]),
        # Optional elements, when present, hold what R4 allows: a real server refuses the rest.
        ("Patient", patient(gender="F"), [("invalid", ["Patient.gender"])]),
        ("Patient", patient(birthDate="12/04/1980"), [("invalid", ["Patient.birthDate"])]),
        ("Patient", patient(birthDate="1980-02-30"), [("invalid", ["Patient.birthDate"])]),
        ("Patient", patient(name={"family": "x"}), [("invalid", ["Patient.name"])]),
        (
            "Account",
            {**patient(), "resourceType": "Account", "status": "active", "subject": {"reference": "Patient/1"}},
            [("invalid", ["Account.subject"])],
        ),
        ("Coverage", coverage(order=0), [("invalid", ["Coverage.order"])]),
        ("Coverage", coverage(order="1"), [("invalid", ["Coverage.order"])]),
        ("Coverage", coverage(relationship={"coding": "self"}), [("invalid", ["Coverage.relationship"])]),
        ("Coverage", coverage(**{"class": [{"value": "G1"}]}), [("invalid", ["Coverage.class"])]),
        (
            "Coverage",
            {"resourceType": "Coverage"},
            [
                ("required", ["Coverage.status"]),
                ("required", ["Coverage.beneficiary.reference"]),
                ("required", ["Coverage.payor"]),
            ],
        ),
    ],
)
def test_validation_collects_every_issue_with_its_path(
    client: Client, rtype: str, body: dict[str, Any], expected: list[tuple[str, list[str]]]
) -> None:
    response = client.post(f"/fhir/{rtype}", json=body)
    assert response.status_code == 400
    assert issues(response) == expected


@pytest.mark.parametrize("rtype", ["Patient", "Account", "Coverage"])
def test_valid_resources_of_each_type_are_created(client: Client, rtype: str) -> None:
    bodies = {
        "Patient": patient(gender="unknown", birthDate="1980-04", name=[{"family": "x"}]),
        "Account": {
            **patient(),
            "resourceType": "Account",
            "status": "on-hold",
            "subject": [{"reference": "Patient/1"}],
        },
    }
    full_coverage = coverage(
        order=2, relationship={"coding": [{"code": "self"}]}, **{"class": [{"type": {}, "value": "G"}]}
    )
    assert client.post(f"/fhir/{rtype}", json=bodies.get(rtype, full_coverage)).status_code == 201


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_non_object_bodies_are_400_invalid(client: Client, content: bytes) -> None:
    headers = {"content-type": "application/fhir+json"}
    response = client.post("/fhir/Patient", content=content, headers=headers)
    assert response.status_code == 400
    assert issues(response) == [("invalid", ["Patient"])]


def test_media_types(client: Client) -> None:
    text = client.post("/fhir/Patient", content=b"{}", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    plain_json = client.post("/fhir/Patient", json=patient(), headers={"accept": "application/json"})
    assert plain_json.status_code == 201
    assert plain_json.headers["content-type"] == "application/json"


def test_operation_outcomes_never_echo_resource_content(client: Client) -> None:
    body = {"resourceType": "Patient", "name": [{"family": "Quuxington"}], "birthDate": "1961-07-04"}
    response = client.post("/fhir/Patient", json=body)
    assert response.status_code == 400
    assert "Quuxington" not in response.text
    assert "1961" not in response.text


def test_router_errors_are_operation_outcomes(client: Client) -> None:
    missing = client.get("/fhir/Patient/1/2/3")
    assert (missing.status_code, issues(missing)[0][0]) == (404, "not-found")
    not_allowed = client.delete("/fhir/Patient/1")
    assert (not_allowed.status_code, issues(not_allowed)[0][0]) == (405, "not-supported")


@pytest.mark.parametrize(("status", "code"), [(503, "transient"), (429, "throttled"), (500, "exception")])
def test_injected_faults_are_operation_outcomes(client: Client, status: int, code: str) -> None:
    assert client.put("/_control/faults", json={"error_status": status}).status_code == 200
    response = client.get("/fhir/metadata")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/fhir+json"
    assert issues(response)[0][0] == code


# --- as a real process ------------------------------------------------------------------------


@pytest.fixture
def ehr_process() -> Iterator[str]:
    port = free_port()
    with running("ehr-stub", stub_argv("ehr", port), port, "/fhir/metadata") as service:
        httpx.delete(f"{service.url}/_control/requests").raise_for_status()
        yield service.url
    output = service.process.stdout.read().decode(errors="replace") if service.process.stdout else ""
    assert "Traceback" not in output


@pytest.mark.integration
def test_real_process_serves_fhir_and_injects_faults(ehr_process: str) -> None:
    with httpx.Client(base_url=ehr_process, timeout=5.0) as http:
        created = http.put(f"/fhir/Patient?identifier={MRN}|1", json=patient("1"))
        assert (created.status_code, created.headers["etag"]) == (201, 'W/"1"')

        http.put("/_control/faults", json={"drop_rate": 1.0, "remaining": 1}).raise_for_status()
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/fhir/metadata")

        http.put("/_control/faults", json={"error_status": 503, "remaining": 1}).raise_for_status()
        unavailable = http.get("/fhir/metadata")
        assert (unavailable.status_code, unavailable.headers["retry-after"]) == (503, "1")

        http.put("/_control/faults", json={"hang_seconds": 2.0, "remaining": 1}).raise_for_status()
        with pytest.raises(httpx.ReadTimeout):
            http.get("/fhir/metadata", timeout=0.3)

        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        assert http.get("/fhir/metadata", headers={"traceparent": traceparent}).status_code == 200
        records = http.get("/_control/requests").json()
        assert [(r["status"], r["fault"]) for r in records] == [
            (201, None),
            (None, "drop"),
            (503, "error"),
            (None, None),  # still hanging: the client gave up, the stub has not answered yet
            (200, None),
        ]
        assert records[-1]["traceparent"] == traceparent
