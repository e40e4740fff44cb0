"""What the EHR connector leaves in the EHR, read back from a real FHIR stub process."""

from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from canonical import decode
from canonical.v1 import PatientAccount
from connectors import ConnectorConfig, RejectedError, make_client
from connectors.ehr import FhirEhrConnector
from connectors.ehr._fhir import coverage_resource
from tests import factories
from tests.processes import free_port, running, stub_argv

SECONDARY = {"payer_id": "60054", "payer_name": "Beta Insurance", "member_id": "B999", "priority": "secondary"}


@pytest.fixture(scope="module")
def ehr_url() -> Iterator[str]:
    port = free_port()
    with running("ehr-stub", stub_argv("ehr", port), port, "/fhir/metadata") as service:
        yield service.url


async def _sync(ehr_url: str, details: dict[str, Any], account_number: str) -> None:
    account = decode(msgspec.json.encode({**details, "account_number": account_number}), PatientAccount)
    config = ConnectorConfig(base_url=ehr_url)
    ehr = FhirEhrConnector(config, make_client(config.base_url, timeout_s=5, connect_timeout_s=5))
    try:
        await ehr.sync_account(account, f"ref-{account_number}")
    finally:
        await ehr.aclose()


async def _coverage(ehr_url: str, account_number: str, priority: str) -> dict[str, Any]:
    identifier = f"urn:billing-hub:MAIN:coverage|{account_number}-{priority}"
    async with httpx.AsyncClient() as client:
        bundle = (await client.get(f"{ehr_url}/fhir/Coverage", params={"identifier": identifier})).json()
    assert bundle["total"] == 1
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    return resource


async def test_a_coverage_removed_from_the_account_is_cancelled_in_the_ehr(ehr_url: str) -> None:
    details = factories.account_details()
    details["coverages"] = [*details["coverages"], SECONDARY]
    await _sync(ehr_url, details, "ACC-DROP-1")
    assert (await _coverage(ehr_url, "ACC-DROP-1", "secondary"))["status"] == "active"

    details["coverages"] = details["coverages"][:1]  # the patient no longer has the secondary payer
    await _sync(ehr_url, details, "ACC-DROP-1")
    dropped = await _coverage(ehr_url, "ACC-DROP-1", "secondary")
    assert dropped["status"] == "cancelled"
    assert dropped["subscriberId"] == "B999"  # the rest of the resource is kept: it is history
    assert (await _coverage(ehr_url, "ACC-DROP-1", "primary"))["status"] == "active"

    await _sync(ehr_url, details, "ACC-DROP-1")  # a redelivery does not write the cancelled one again
    assert (await _coverage(ehr_url, "ACC-DROP-1", "secondary"))["meta"]["versionId"] == dropped["meta"]["versionId"]


async def test_a_coverage_added_back_is_active_again(ehr_url: str) -> None:
    details = factories.account_details()
    details["coverages"] = [*details["coverages"], SECONDARY]
    await _sync(ehr_url, details, "ACC-BACK-1")
    await _sync(ehr_url, {**details, "coverages": []}, "ACC-BACK-1")
    assert (await _coverage(ehr_url, "ACC-BACK-1", "primary"))["status"] == "cancelled"
    assert (await _coverage(ehr_url, "ACC-BACK-1", "secondary"))["status"] == "cancelled"

    await _sync(ehr_url, details, "ACC-BACK-1")
    assert (await _coverage(ehr_url, "ACC-BACK-1", "primary"))["status"] == "active"
    assert (await _coverage(ehr_url, "ACC-BACK-1", "secondary"))["status"] == "active"


def test_coverage_codes_name_their_code_systems() -> None:
    details = factories.account_details()
    details["coverages"] = [{**SECONDARY, "relationship": "child", "group_number": "GRP-9", "plan_name": "Gold"}]
    account = decode(msgspec.json.encode({**details, "account_number": "ACC-CODES-1"}), PatientAccount)
    resource = coverage_resource(account, account.coverages[0], "p1")
    # Coverage.relationship: SubscriberRelationshipCodes; Coverage.class.type: CoverageClassCodes (FHIR R4)
    assert resource["relationship"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "child"}
    ]
    assert [c["type"]["coding"] for c in resource["class"]] == [
        [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}],
        [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}],
    ]


async def test_an_identifier_that_matches_two_resources_is_a_rejection_not_a_retry(ehr_url: str) -> None:
    # Another system stored a second Patient under the hub's identifier: the conditional update
    # answers 412 (FHIR R4 http.html, conditional update, multiple matches). No retry can mend that.
    twin = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:billing-hub:MAIN:patient-account", "value": "ACC-TWIN-1"}],
    }
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            assert (await client.post(f"{ehr_url}/fhir/Patient", json=twin)).status_code == 201
    with pytest.raises(RejectedError) as raised:
        await _sync(ehr_url, factories.account_details(), "ACC-TWIN-1")
    assert (raised.value.status, raised.value.code) == (412, "multiple-matches")
