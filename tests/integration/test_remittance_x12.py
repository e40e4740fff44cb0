"""Raw X12 835 in through POST /v1/remittances: remittances with findings out, a 999 back."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import httpx
import pytest

from connectors.clearinghouse.x12 import read_835, read_999
from tests import factories
from tests.conftest import BETA_KEY
from tests.processes import Service

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "x12"
X12 = {"content-type": "application/edi-x12"}


def test_an_835_becomes_remittances_and_is_acknowledged(api: httpx.Client) -> None:
    raw = factories.unique_835((FIXTURES / "835_full.x12").read_bytes())
    expected = read_835(raw)
    response = api.post("/v1/remittances", content=raw, headers=X12)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert len(answer["remittances"]) == len([r for r in expected if r.accepted])
    assert answer["rejected"] == []
    first = answer["remittances"][0]
    stored = api.get(first["href"]).json()
    remittance = expected[0].remittance
    assert remittance is not None
    assert stored["remittance"]["payment"]["amount"] == str(remittance.payment.amount)
    assert len(stored["remittance"]["claims"]) == first["claims"] == len(remittance.claims)
    assert [f["difference"] for f in stored["findings"]] == [str(f.difference) for f in expected[0].findings]

    ack = api.get(answer["acknowledgement_href"])
    assert ack.status_code == 200
    assert ack.headers["content-type"].startswith("application/edi-x12")
    (group,) = read_999(ack.content)
    assert group.status == "A"
    assert [s.control_number for s in group.sets] == [r.envelope.control_number for r in expected]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"not": "x12"}', "segment 1"),
        ((FIXTURES / "835_full.x12").read_bytes()[:900], "segment"),  # truncated mid-interchange
        ((FIXTURES / "837p_mixed.x12").read_bytes(), "(ST)"),  # the wrong transaction type
    ],
)
def test_unusable_x12_is_a_4xx_naming_the_segment(api: httpx.Client, body: bytes, where: str) -> None:
    response = api.post("/v1/remittances", content=body, headers=X12)
    assert 400 <= response.status_code < 500, response.text
    problem = response.json()
    assert problem["type"] in {"urn:billing-hub:problem:malformed-x12", "urn:billing-hub:problem:rejected-x12"}
    assert where in problem["detail"] or any(where in e["path"] for e in problem.get("errors", []))


_FULL = (FIXTURES / "835_full.x12").read_bytes()


@pytest.mark.parametrize(
    "body",
    [
        _FULL.replace(b"DTM*405", b"D\xe9M*405"),  # a segment id outside the X12 character set
        _FULL.replace(b"DTM*405", b"D:M*405"),  # ... holding the 999's component separator
        _FULL.replace(b"*ACMEPAYER      *", b"*ACMEPAY\xe9R      *", 1),  # ISA06, echoed as the 999's receiver
    ],
)
def test_x12_a_999_cannot_echo_is_a_4xx(api: httpx.Client, body: bytes) -> None:
    response = api.post("/v1/remittances", content=body, headers=X12)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["type"] in {
        "urn:billing-hub:problem:malformed-x12", "urn:billing-hub:problem:rejected-x12",
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        _FULL.replace(b"NM1*QC*1*DOE*", b"NM1*QC*1*DOE~Zqxsentinel*", 1),  # a terminator inside a name
        _FULL.replace(b"GE*", b"Zqxsentinel*1~GE*", 1),  # a name-like text where a segment should start
    ],
)
def test_problems_never_repeat_input_text_that_is_no_segment_id(api: httpx.Client, body: bytes) -> None:
    response = api.post("/v1/remittances", content=body, headers=X12)
    assert response.status_code in (201, 400, 422), response.text
    assert "Zqxsentinel" not in response.text  # it may be a patient's name


def test_an_835_whose_every_set_is_rejected_is_a_422_linking_the_999_that_rejects_it(api: httpx.Client) -> None:
    """The payer must hear of a rejection: the 999 is written and kept, and the problem links it."""
    body = _FULL.replace(b"SE*61*0001~", b"SE*62*0001~")  # a set that miscounts its segments
    response = api.post("/v1/remittances", content=body, headers=X12)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:billing-hub:problem:rejected-x12"
    assert any("(SE)" in error["path"] for error in problem["errors"])
    ack = api.get(problem["acknowledgement_href"])
    assert ack.status_code == 200
    (group,) = read_999(ack.content)
    assert group.status == "R"
    assert [(s.control_number, s.status) for s in group.sets] == [("0001", "R")]


def test_a_set_rejected_with_its_group_says_why(api: httpx.Client) -> None:
    """Two groups, the second's GE miscounting its sets: its set is rejected for the group's fault,
    and the rejection names the GE, not nothing."""
    text = _FULL.decode()
    head, rest = text.split("GS*", 1)
    group = "GS*" + rest.rsplit("IEA*", 1)[0]
    second = group.replace("*501*X*", "*502*X*").replace("GE*1*501~", "GE*3*502~")
    body = factories.unique_835((head + group + second + "IEA*2*000000501~").encode())
    response = api.post("/v1/remittances", content=body, headers=X12)
    assert response.status_code == 201, response.text
    (rejected,) = response.json()["rejected"]
    assert any(issue["segment_id"] == "GE" for issue in rejected["issues"]), rejected


def test_an_835_is_taken_once(api: httpx.Client, hub: Service) -> None:
    """The same interchange, or the same payment in another interchange, would post the money twice:
    409, and nothing of the second is stored. Another client may take in its own."""
    raw = factories.unique_835(_FULL).replace(b"*0*T*:~", b"*0*P*:~", 1)  # production: it posts money
    first = api.post("/v1/remittances", content=raw, headers=X12)
    assert first.status_code == 201, first.text
    again = api.post("/v1/remittances", content=raw, headers=X12)
    assert _conflict(again) == "this interchange (its sender, receiver and ISA13 control number) was received already"
    isa13 = raw.decode().split("~", 1)[0].split("*")[13]
    reissued = raw.replace(isa13.encode(), b"987654321")  # a new interchange carrying the same payment
    assert _conflict(api.post("/v1/remittances", content=reissued, headers=X12)).startswith("this payment")
    beta = httpx.post(f"{hub.url}/v1/remittances", content=raw, headers={**X12, "X-API-Key": BETA_KEY})
    assert beta.status_code == 201, beta.text


def test_a_json_remittance_is_taken_once(api: httpx.Client) -> None:
    body = factories.remittance()
    assert api.post("/v1/remittances", json=body).status_code == 202
    assert _conflict(api.post("/v1/remittances", json=body)).startswith("this payment")
    # The same payment spelled another way is the same payment.
    respelled = copy.deepcopy(body)
    respelled["payment"]["trace_number"] = " " + body["payment"]["trace_number"].lower()
    assert _conflict(api.post("/v1/remittances", json=respelled)).startswith("this payment")
    body["payment"]["trace_number"] += "-B"  # another payment of the same payer
    assert api.post("/v1/remittances", json=body).status_code == 202


def test_payments_whose_parts_join_alike_are_two_payments(api: httpx.Client) -> None:
    """Joined with ':', payer 'A' with trace 'B:C' was payer 'A:B' with trace 'C'."""
    tag = uuid.uuid4().hex[:6]
    first = factories.remittance(trace_number=f"B:{tag}")
    first["payer"] = {"name": f"A{tag}"}
    second = factories.remittance(trace_number=tag)
    second["payer"] = {"name": f"A{tag}:B"}
    assert api.post("/v1/remittances", json=first).status_code == 202
    assert api.post("/v1/remittances", json=second).status_code == 202


def _conflict(response: httpx.Response) -> str:
    assert response.status_code == 409, response.text
    detail: str = response.json()["detail"]
    return detail


def test_one_request_holding_the_same_payment_twice_is_a_409(api: httpx.Client) -> None:
    text = factories.unique_835(_FULL).decode().replace("*0*T*:~", "*0*P*:~", 1)
    start, end = text.index("ST*835*0001"), text.index("SE*61*0001~") + len("SE*61*0001~")
    copy = text[start:end].replace("ST*835*0001", "ST*835*0002").replace("SE*61*0001", "SE*61*0002")
    body = (text[:end] + copy + text[end:]).replace("GE*1*", "GE*2*").encode()
    response = api.post("/v1/remittances", content=body, headers=X12)
    assert _conflict(response) == "this request holds the same payment more than once"


def test_two_payers_that_share_a_name_pay_with_their_own_traces(api: httpx.Client) -> None:
    """A trace is unique per payer, and a name ("MEDICARE") may be two payers' (their identifiers differ)."""
    trace = f"T-{uuid.uuid4().hex[:8]}"
    for identifier in ("11111", "22222"):
        body = factories.remittance(trace_number=trace)
        body["payer"] = {"name": "MEDICARE", "identifier": identifier, "identifier_qualifier": "XV"}
        assert api.post("/v1/remittances", json=body).status_code == 202


def test_a_payers_test_file_does_not_hold_back_its_production_file(api: httpx.Client) -> None:
    test_run = factories.unique_835(_FULL)
    assert b"*0*T*:~" in test_run  # ISA15: test data, which posts no money
    assert api.post("/v1/remittances", content=test_run, headers=X12).status_code == 201
    production = test_run.replace(b"*0*T*:~", b"*0*P*:~", 1)
    assert api.post("/v1/remittances", content=production, headers=X12).status_code == 201
