"""No PHI in logs, audit records or problem details: requests through every endpoint carry unique
sentinel PHI values; everything the hub wrote during the run is searched for them."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import KEY, TEST_POLICY
from tests.processes import Service, free_port, hub_argv, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chatty_hub(stubs: dict[str, Service], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A hub of its own, logging at DEBUG so that anything it would ever log is in the capture."""
    port = free_port()
    env = {
        "BILLING_HUB_DATA_DIR": str(tmp_path_factory.mktemp("phi-hub")),
        "BILLING_HUB_POLICY_FILE": str(TEST_POLICY),
        "BILLING_HUB_TARGETS": ",".join(stubs),
        "BILLING_HUB_LOG_LEVEL": "DEBUG",
        "BILLING_HUB_BACKOFF_BASE_S": "0.05",
        **{f"BILLING_HUB_{kind.upper()}_URL": s.url for kind, s in stubs.items()},
    }
    with running("phi-hub", hub_argv(port), port, "/health", env=env) as service:
        yield service


class Sentinels:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10].upper()
        self.family = f"Fam{tag}"
        self.given = f"Giv{tag}"
        self.member_id = f"MEM{tag}"
        self.street = f"{tag} Sentinel Way"
        self.city = f"City{tag.lower()}"
        self.birth_date = "1903-07-29"
        self.diagnosis = "T81.530A"  # a rare code, used nowhere else in the suite

    def values(self) -> list[str]:
        return [
            self.family,
            self.given,
            self.member_id,
            self.street,
            self.city,
            self.birth_date,
            self.diagnosis,
            self.diagnosis.replace(".", ""),
        ]

    def account(self) -> dict[str, Any]:
        body = factories.account_details(family=self.family, given=self.given, member_id=self.member_id)
        body["patient"]["birth_date"] = self.birth_date
        body["patient"]["address"].update(line1=self.street, city=self.city)
        return body

    def claim(self) -> dict[str, Any]:
        body = factories.claim(member_id=self.member_id, family=self.family)
        body["subscriber"]["name"]["given"] = self.given
        body["subscriber"]["birth_date"] = self.birth_date
        body["subscriber"]["address"].update(line1=self.street, city=self.city)
        body["diagnoses"] = [self.diagnosis, "R50.9"]
        return body

    def remittance(self) -> dict[str, Any]:
        body = factories.remittance(("PCN-PHI-1",))
        body["claims"][0]["patient_name"] = {"family": self.family, "given": self.given}
        return body


def _exercise(api: httpx.Client, s: Sentinels) -> list[httpx.Response]:
    """Valid and invalid requests through every endpoint, each carrying the sentinels."""
    responses = [api.put("/v1/accounts/ACC-PHI-1", json=s.account(), headers={"Prefer": "wait=10"})]
    bad_account = s.account()
    bad_account["patient"]["sex"] = s.family  # a PHI value where an enum belongs
    responses.append(api.put("/v1/accounts/ACC-PHI-2", json=bad_account))
    bad_date = s.account()
    bad_date["patient"]["birth_date"] = f"{s.birth_date}X{s.given}"
    responses.append(api.put("/v1/accounts/ACC-PHI-3", json=bad_date))
    unknown = s.account()
    unknown["patient"][s.family] = s.given  # an unknown field named with PHI
    responses.append(api.put("/v1/accounts/ACC-PHI-4", json=unknown))
    responses.append(api.put(f"/v1/accounts/{s.member_id}", content=b"{" + s.family.encode()))
    responses.append(api.get("/v1/accounts/ACC-PHI-1"))
    responses.append(api.get(f"/v1/accounts/{s.member_id}"))
    responses.append(api.post("/v1/claims", json=s.claim(), headers={"Prefer": "wait=10"}))
    bad_claim = s.claim()
    bad_claim["total_charge"] = "1.00"
    responses.append(api.post("/v1/claims", json=bad_claim))
    responses.append(api.post("/v1/remittances", json=s.remittance(), headers={"Prefer": "wait=5"}))
    bad_remittance = copy.deepcopy(s.remittance())
    bad_remittance["claims"][0]["patient_name"]["family"] = 7
    responses.append(api.post("/v1/remittances", json=bad_remittance))
    raw = (Path(__file__).parents[1] / "fixtures" / "x12" / "835_full.x12").read_bytes()
    raw = raw.replace(
        b"NM1*QC*1*DOE*JANE*Q***MI*MEM001", f"NM1*QC*1*{s.family}*{s.given}*Q***MI*{s.member_id}".encode()
    )
    x12 = {"content-type": "application/edi-x12"}
    responses.append(api.post("/v1/remittances", content=raw, headers=x12))
    responses.append(api.post("/v1/remittances", content=raw[:1200], headers=x12))  # truncated, PHI inside
    broken = raw.replace(b"CLP*", f"CLP*{s.family}*".encode(), 1)  # a malformed claim loop carrying PHI
    responses.append(api.post("/v1/remittances", content=broken, headers=x12))
    journal = factories.journal()
    journal["description"] = f"payment from {s.family}"  # free text a careless client filled with PHI
    responses.append(api.post("/v1/journals", json=journal, headers={"Prefer": "wait=10"}))
    responses.append(api.post("/v1/journals", json={**journal, "lines": [{"account": s.family, "debit": "1.00"}]}))
    return responses


def test_no_sentinel_in_logs_audit_or_problems(stubs: dict[str, Service], chatty_hub: Service) -> None:
    sentinels = Sentinels()
    with httpx.Client(base_url=chatty_hub.url, headers={"X-API-Key": KEY}, timeout=30) as api:
        responses = _exercise(api, sentinels)
        assert responses[0].status_code == 200, responses[0].text  # the valid account went through
        x12 = [r for r in responses if r.request.headers.get("content-type") == "application/edi-x12"]
        assert x12[0].status_code == 201, x12[0].text  # the 835 with sentinel names was ingested
        acknowledgement = api.get(x12[0].json()["acknowledgement_href"]).text
        problems = [r.text for r in responses if r.headers.get("content-type", "").startswith("application/problem")]
        assert len(problems) >= 6
        audit = api.get("/v1/admin/audit", params={"limit": 500}).text
        assert json.loads(audit)["records"]
    chatty_hub.process.terminate()
    logs = chatty_hub.process.communicate(timeout=20)[0].decode(errors="replace")
    assert "ACC-PHI-1" not in audit  # client-chosen identifiers are audited as tags
    texts = (("problem bodies", "\n".join(problems)), ("audit records", audit), ("hub logs", logs),
             ("999 acknowledgement", acknowledgement), ("X12 answers", "\n".join(r.text for r in x12)))  # fmt: skip
    for where, text in texts:
        for value in sentinels.values():
            assert value.lower() not in text.lower(), f"PHI sentinel {value!r} found in {where}"


def test_sentinel_test_can_fail(tmp_path: Path) -> None:
    """The search above is only as good as its sentinels: a leak of each one is found."""
    sentinels = Sentinels()
    for value in sentinels.values():
        leaked = f"some log line ... {value} ..."
        assert any(v.lower() in leaked.lower() for v in sentinels.values())
