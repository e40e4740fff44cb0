"""Bad input always gets a 4xx RFC 9457 problem naming what is wrong — never a 500."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    settings = Settings(
        data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="ehr,erp"
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        c.headers["X-API-Key"] = KEY
        yield c


def _problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:billing-hub:problem:{kind}"
    assert body["status"] == status
    assert len(body["trace_id"]) == 32
    assert body["trace_id"] == response.headers["x-trace-id"]
    return body


def test_missing_or_wrong_key_is_401_with_challenge(client: TestClient[Any]) -> None:
    response = client.get("/v1/journals/jnl_00000000000000000000000000", headers={"X-API-Key": "nope"})
    _problem(response, 401, "unauthorized")
    assert "ApiKey" in response.headers["www-authenticate"]


def test_not_json_is_400(client: TestClient[Any]) -> None:
    response = client.post("/v1/journals", content=b"{nope", headers={"content-type": "application/json"})
    _problem(response, 400, "malformed-request")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/journals", b'{"ledger":"\xff"}'),
        ("/v1/journals", b'{"ledger":"Jos\xe9"}'),  # Latin-1, sent as if it were UTF-8
        ("/v1/journals", b'{"\xed\xa0\x80":1}'),  # an encoded surrogate, as a key
        ("/v1/journals", b'{"lines":[' + b",".join([b'"\xff"'] * 300) + b"]}"),  # through the shape walk
        ("/v1/claims", b'{"claim_id":"\xff"}'),
        ("/v1/admin/dead-letters/replay", b'{"target":"\xff"}'),
    ],
)
def test_invalid_utf8_in_a_json_body_is_400(client: TestClient[Any], path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert "UTF-8" in _problem(response, 400, "malformed-request")["detail"]


def _lines_with(field: str, value: str) -> dict[str, Any]:
    journal = factories.journal()
    journal["lines"] = [{**line, field: value} if field in line else line for line in journal["lines"]]
    return journal


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/journals", _lines_with("account", "1000\n")),  # a pattern's $ matched before the newline
        ("/v1/journals", {**factories.journal(), "external_reference": "batch-1\n"}),
        ("/v1/journals", _lines_with("debit", "125.00\n")),  # money: Decimal would have dropped it
        ("/v1/claims", factories.claim(claim_id="PCN000004\n")),
    ],
)
def test_a_trailing_newline_is_not_a_valid_value(client: TestClient[Any], path: str, body: dict[str, Any]) -> None:
    _problem(client.post(path, json=body), 400, "validation-error")


def test_a_trailing_newline_in_a_path_id_is_400(client: TestClient[Any]) -> None:
    response = client.put("/v1/accounts/ACC-3%0A", json=factories.account_details())
    assert response.status_code == 400, response.text


def test_wrong_content_type_is_415(client: TestClient[Any]) -> None:
    response = client.post("/v1/journals", content=b"<xml/>", headers={"content-type": "application/xml"})
    _problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/v1/journals", {**factories.journal(), "extra": 1}, "$", "a field this schema does not have"),
        ("/v1/journals", {**factories.journal(), "ledgr": 1}, "$", "did you mean `ledger`?"),
        (  # a line's fields sit inside Annotated[list[JournalLine], ...]: two levels of type arguments
            "/v1/journals",
            {**factories.journal(), "lines": [{"acount": "1000", "debit": "1.00"}, {"account": "2", "credit": "1.00"}]},
            "$.lines[0]",
            "did you mean `account`?",
        ),
        (
            "/v1/journals",
            {
                **factories.journal(),
                "lines": [{"account": "1000", "debit": 10.5}, {"account": "2000", "credit": "10.50"}],
            },
            "$.lines[0].debit",
            "not a number",
        ),
        (
            "/v1/journals",
            {
                **factories.journal(),
                "lines": [{"account": "1000", "debit": "10.00"}, {"account": "2000", "credit": "9.99"}],
            },
            "$",
            "unbalanced",
        ),
        (
            "/v1/claims",
            {
                **factories.claim(),
                "billing_provider": {**factories.claim()["billing_provider"], "npi": "1234567890"},
            },
            "$.billing_provider",
            "NPI",
        ),
    ],
)
def test_validation_problems_name_the_field(
    client: TestClient[Any], path: str, body: dict[str, Any], field: str, message: str
) -> None:
    problem = _problem(client.post(path, json=body), 400, "validation-error")
    assert [e["path"] for e in problem["errors"]] == [field]
    assert message in problem["errors"][0]["message"]


def _with(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("route", "body", "field", "message"),
    [
        # FHIR wants names with content and no control characters; so does an 837P.
        ("/v1/accounts/ACC-T1", factories.account_details(family="   "), "$.patient.name.family", "not blank"),
        ("/v1/accounts/ACC-T2", factories.account_details(family="Zq\u0000x"), "$.patient.name.family",
         "no control characters"),
        ("/v1/accounts/ACC-T3", _with(factories.account_details(), ("patient", "address", "city"), "\t\t"),
         "$.patient.address.city", "not blank"),
        ("/v1/accounts/ACC-T7", factories.account_details(family="\u202e\u200f\u200b"), "$.patient.name.family",
         "not blank"),
        # A coverage's group number (FHIR Coverage.class.value) and a journal's description and memo
        # (the ERP's journal text) are text a person reads too.
        ("/v1/accounts/ACC-T5", _with(factories.account_details(), ("coverages", 0, "group_number"), "G\u0000\u001b"),
         "$.coverages[0].group_number", "no control characters"),
        ("/v1/accounts/ACC-T6", _with(factories.account_details(), ("coverages", 0, "group_number"), "   "),
         "$.coverages[0].group_number", "not blank"),
        ("/v1/journals", _with(factories.journal(), ("description",), "   "), "$.description", "not blank"),
        ("/v1/journals", _with(factories.journal(), ("description",), "a\u0000b"), "$.description",
         "no control characters"),
        ("/v1/journals", _with(factories.journal(), ("lines", 0, "memo"), "\u0007"), "$.lines[0].memo",
         "no control characters"),
        ("/v1/accounts/ACC-T4", _with(factories.account_details(), ("patient", "birth_date"), "2999-01-01"),
         "$.patient", "birth_date is in the future"),
        ("/v1/claims", _with(factories.claim(), ("service_lines", 0, "service_date"), "2999-12-31"),
         "$.service_lines[0]", "service_date is in the future"),
        # A replacement or void names the payer's claim (837P REF*F8); an original names none.
        ("/v1/claims", _with(factories.claim(), ("frequency_code",), "7"), "$", "payer_claim_number"),
        ("/v1/claims", _with(factories.claim(), ("payer_claim_number",), "PCC-1"), "$", "payer_claim_number"),
    ],
)  # fmt: skip
def test_text_a_person_reads_and_dates_that_cannot_be_ahead_are_checked(
    client: TestClient[Any], route: str, body: dict[str, Any], field: str, message: str
) -> None:
    answer = client.put(route, json=body) if route.startswith("/v1/accounts") else client.post(route, json=body)
    problem = _problem(answer, 400, "validation-error")
    assert [e["path"] for e in problem["errors"]] == [field]
    assert message in problem["errors"][0]["message"]
    assert "2999" not in str(problem)  # a birth date is PHI: named, never echoed


def _coverage(priority: str) -> dict[str, Any]:
    return {"payer_id": "87726", "payer_name": "Acme Health", "member_id": "MBR1", "priority": priority}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"coverages": [_coverage("secondary")]}, "$.coverages[0].priority", "needs a primary one"),
        ({"coverages": [_coverage("primary"), _coverage("tertiary")]}, "$.coverages[1].priority",
         "needs a secondary one"),
        ({"guarantor": {"name": {"family": "Smith", "given": "Zed"}, "relationship": "self"}}, "$.guarantor",
         "bears the patient's name"),
    ],
)  # fmt: skip
def test_an_accounts_coverages_and_guarantor_agree(
    client: TestClient[Any], changes: dict[str, Any], field: str, message: str
) -> None:
    problem = _problem(client.put("/v1/accounts/ACC-C1", json={**factories.account_details(), **changes}), 400,
                       "validation-error")  # fmt: skip
    assert [e["path"] for e in problem["errors"]] == [field]
    assert message in problem["errors"][0]["message"]
    assert "Smith" not in str(problem)
    assert "Zed" not in str(problem)


def test_a_self_guarantor_may_spell_the_name_in_another_case_and_coverages_come_in_any_order(
    client: TestClient[Any],
) -> None:
    body = {
        **factories.account_details(family="Rivera", given="Ana"),
        "guarantor": {"name": {"family": "RIVERA", "given": "ana "}, "relationship": "self"},
        "coverages": [_coverage("secondary"), _coverage("primary")],
    }
    assert client.put("/v1/accounts/ACC-C2", json=body).status_code == 202


def test_unknown_ids_are_404(client: TestClient[Any]) -> None:
    _problem(client.get("/v1/journals/jnl_00000000000000000000000000"), 404, "not-found")
    _problem(client.get("/v1/transactions/txn_00000000000000000000000000"), 404, "not-found")
    _problem(client.get("/v1/accounts/NOPE-1"), 404, "not-found")
    _problem(client.get("/v1/remittances/rmt_00000000000000000000000000"), 404, "not-found")


def test_malformed_id_is_400_not_500(client: TestClient[Any]) -> None:
    _problem(client.get("/v1/journals/../../etc"), 404, "not-found")
    problem = _problem(client.get("/v1/journals/not-an-id"), 400, "validation-error")
    assert problem["errors"][0]["path"] == "$.journal_id"


def test_problem_details_never_echo_values(client: TestClient[Any]) -> None:
    body = factories.account_details(family="Zyxwvut")
    body["patient"]["sex"] = "SECRET-SEX-VALUE"
    problem = _problem(client.put("/v1/accounts/ACC-9", json=body), 400, "validation-error")
    assert "SECRET-SEX-VALUE" not in str(problem)
    assert "Zyxwvut" not in str(problem)
    assert problem["errors"][0]["path"] == "$.patient.sex"


def test_write_answers_202_with_location_and_the_transaction(client: TestClient[Any]) -> None:
    response = client.post("/v1/journals", json=factories.journal())
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/transactions/{body['id']}"
    assert body["state"] == "accepted"
    assert [(d["target"], d["operation"], d["state"]) for d in body["deliveries"]] == [
        ("erp", "post_journal", "pending")
    ]
    journal = client.get(body["resource"]["href"]).json()
    assert journal["journal"]["lines"][0]["debit"] == "125.00"
    assert journal["document_number"] is None


def test_remittance_updates_claims_it_pays_and_reports_findings(client: TestClient[Any]) -> None:
    body = factories.remittance(("PCN-R1",))
    body["payment"]["amount"] = "79.00"
    response = client.post("/v1/remittances", json=body, headers={"Prefer": "wait=1"})
    assert response.status_code == 200  # no deliveries: final at once
    assert response.headers["preference-applied"] == "wait=1"
    remittance = client.get(response.json()["resource"]["href"]).json()
    assert [(f["level"], f["difference"]) for f in remittance["findings"]] == [("transaction", "-1.00")]


def test_problem_instance_is_the_route_template_never_the_path(client: TestClient[Any]) -> None:
    problem = _problem(client.get("/v1/accounts/SECRET-MEMBER-1"), 404, "not-found")
    assert problem["instance"] == "/v1/accounts/{account_number}"
    assert "SECRET" not in str(problem)


def test_unknown_field_names_are_not_echoed(client: TestClient[Any]) -> None:
    problem = _problem(
        client.post("/v1/journals", json={**factories.journal(), "SMITH-JOHN": 1}), 400, "validation-error"
    )
    assert "SMITH" not in str(problem)


@pytest.mark.parametrize("path", ["/v1/journals", "/v1/claims"])
def test_empty_json_body_is_400(client: TestClient[Any], path: str) -> None:
    response = client.post(path, content=b"", headers={"content-type": "application/json"})
    _problem(response, 400, "malformed-request")


def test_a_claim_an_837p_cannot_carry_is_refused_naming_the_fields(client: TestClient[Any]) -> None:
    claim = factories.claim(family="O~Brien")
    claim["subscriber"]["name"]["given"] = "José"
    claim["billing_provider"]["address"]["line1"] = "1 Main St*Suite 2"
    body = _problem(client.post("/v1/claims", json=claim), 400, "validation-error")
    assert {e["path"] for e in body["errors"]} == {
        "$.subscriber.name.family", "$.subscriber.name.given", "$.billing_provider.address.line1",
    }  # fmt: skip
    text = str(body)
    assert "Brien" not in text  # names are PHI: the problem names the fields, never the values
    assert "José" not in text


def test_a_member_named_twice_is_refused_naming_it_and_nothing_is_stored(client: TestClient[Any]) -> None:
    """msgspec keeps the last of two same-named members: this journal would have posted a 1.00 debit
    where the client's serializer wrote 900.00 first."""
    text = json.dumps(factories.journal(amount="900.00"))
    body = text.replace('"debit": "900.00"', '"debit": "900.00", "debit": "1.00"', 1).encode()
    response = client.post("/v1/journals", content=body, headers={"content-type": "application/json"})
    problem = _problem(response, 400, "malformed-request")
    assert problem["detail"] == 'the member "debit" appears more than once in the object at $.lines[0]'
    with client.portal() as portal:  # nothing waits for delivery
        assert portal.call(client.app.state.hub.store.outbox_stats, time.time())[0] == 0


def test_a_repeated_member_in_phi_is_named_by_field_never_by_value(client: TestClient[Any]) -> None:
    text = json.dumps(factories.account_details(family="Zebulon"))
    body = text.replace('"family": "Zebulon"', '"family": "Zebulon", "family": "Other"', 1).encode()
    response = client.put("/v1/accounts/ACCT-DUP-1", content=body, headers={"content-type": "application/json"})
    problem = _problem(response, 400, "malformed-request")
    assert problem["detail"] == 'the member "family" appears more than once in the object at $.patient.name'
    assert "Zebulon" not in response.text


def test_a_repeated_member_in_a_remittance_is_named_too(client: TestClient[Any]) -> None:
    """postRemittance reads its own body (JSON or X12): its JSON schema still names the member."""
    text = json.dumps(factories.remittance())
    body = text.replace('"claim_id": ', '"claim_id": "X", "claim_id": ', 1).encode()
    response = client.post("/v1/remittances", content=body, headers={"content-type": "application/json"})
    problem = _problem(response, 400, "malformed-request")
    assert problem["detail"] == 'the member "claim_id" appears more than once in the object at $.claims[0]'


@pytest.mark.parametrize("tail", [b"x", b",", b"]"])
def test_a_repeat_in_a_body_broken_further_on_is_400_not_valid_json(client: TestClient[Any], tail: bytes) -> None:
    text = json.dumps(factories.journal(amount="900.00"))
    body = text.replace('"debit": "900.00"', '"debit": "900.00", "debit": "1.00"', 1).encode() + tail
    response = client.post("/v1/journals", content=body, headers={"content-type": "application/json"})
    assert _problem(response, 400, "malformed-request")["detail"] == "the request body is not valid JSON"


def test_a_bad_parameter_is_not_titled_as_a_bad_body(client: TestClient[Any]) -> None:
    for response in (client.get("/v1/admin/audit", params={"limit": "abc"}), client.get("/v1/journals/not-an-id")):
        problem = _problem(response, 400, "validation-error")
        assert problem["title"] == "Request failed validation"


def test_an_invalid_policy_problem_has_its_own_title(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(TEST_POLICY.read_text())
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(policy), targets="erp")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as admin:
        policy.write_text("version = ")
        problem = _problem(admin.post("/v1/admin/policy/reload", headers={"X-API-Key": KEY}), 422, "invalid-policy")
    assert problem["title"] == "Policy file is invalid"
    # The file's path stays: only admin callers can reload, and the operator needs to know which
    # file the hub read (a successful reload answers it as "source").
    assert str(policy) in problem["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/transactions/txn_00000000000000000000000000?wait=5"),
        ("GET", "/v1/journals/jnl_00000000000000000000000000?expand=lines"),
        ("GET", "/v1/accounts/A-1?Jane%20Doe=1"),
        ("POST", "/v1/journals?dry_run=true"),
    ],
)
def test_a_query_parameter_no_operation_takes_is_a_400_not_ignored(
    client: TestClient[Any], method: str, path: str
) -> None:
    """The canonical operations take no query: `?wait=5` was ignored and answered at once."""
    body = factories.journal() if method == "POST" else None
    problem = _problem(client.request(method, path, json=body), 400, "validation-error")
    assert problem["detail"] == "a query parameter this operation does not take; it takes none"
    assert "Jane" not in json.dumps(problem)  # a name the client chose can be PHI: never echoed


def test_a_refused_query_stores_no_work(client: TestClient[Any]) -> None:
    refused = client.post("/v1/journals?dry_run=true", json=factories.journal())
    assert refused.status_code == 400
    assert client.post("/v1/journals", json=factories.journal()).status_code == 202  # the same journal is new


def test_a_query_refused_before_the_claim_leaves_its_key_free(client: TestClient[Any]) -> None:
    """The query is refused before the Idempotency-Key is claimed: sent right, the request runs."""
    headers = {"Idempotency-Key": "query-then-none"}
    journal = factories.journal()
    assert client.post("/v1/journals?dry_run=true", json=journal, headers=headers).status_code == 400
    assert client.post("/v1/journals", json=journal, headers=headers).status_code == 202


def test_an_unknown_schema_path_is_a_404_problem_and_the_documents_are_served(client: TestClient[Any]) -> None:
    """Litestar answers any other /schema path with an HTML page of its own: here a problem, as every 404."""
    _problem(client.get("/schema/nope"), 404, "not-found")
    assert client.get("/schema/openapi.json").json()["info"]["title"] == "Billing Integration Hub"
    for page in ("/schema", "/schema/swagger"):
        served = client.get(page)
        assert (served.status_code, served.headers["content-type"].split(";")[0]) == (200, "text/html"), page
