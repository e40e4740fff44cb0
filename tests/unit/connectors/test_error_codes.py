"""A target's error codes reach attempt records and dead letters; its free text never does. An EHR
or ERP that echoes the request in its error body (the patient it choked on) can put that text where
a code belongs, so only what has a code's form is kept."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from canonical import decode
from canonical.v1 import PatientAccount
from connectors import RejectedError
from connectors._http import ConnectorClient
from connectors._protocol import ConnectorConfig
from connectors.ehr import FhirEhrConnector
from connectors.erp import LedgerErpConfig, LedgerErpConnector
from tests import factories

FAMILY, GIVEN, MEMBER_ID = "Famsentinel", "Givsentinel", "MEMSENTINEL77"


def _account() -> PatientAccount:
    details = factories.account_details(family=FAMILY, given=GIVEN, member_id=MEMBER_ID)
    return decode(msgspec.json.encode({**details, "account_number": "ACC-CODES-1"}), PatientAccount)


def _answering(body: dict[str, Any]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(422, json=body))


async def _rejection(connector: Any, operation: str) -> RejectedError:
    try:
        with pytest.raises(RejectedError) as raised:
            await connector.operations[operation].handler(_account(), "ref-1")
    finally:
        await connector.aclose()
    return raised.value


@pytest.mark.parametrize(
    ("codes", "kept"),
    [
        ([FAMILY, "invalid"], "invalid"),
        ([f"{FAMILY}, {GIVEN}", MEMBER_ID], None),
        (["business-rule", "required"], "business-rule,required"),
    ],
)
async def test_ehr_keeps_only_fhir_issue_type_codes(codes: list[str], kept: str | None) -> None:
    issues = [{"severity": "error", "code": code, "diagnostics": f"no such patient {FAMILY}"} for code in codes]
    client = ConnectorClient(
        base_url="http://ehr.test", transport=_answering({"resourceType": "OperationOutcome", "issue": issues})
    )
    error = await _rejection(FhirEhrConnector(ConnectorConfig(base_url="http://ehr.test"), client), "sync_account")
    assert error.code == kept
    for value in (FAMILY, GIVEN, MEMBER_ID):
        assert value not in error.message


@pytest.mark.parametrize(
    ("codes", "kept"),
    [
        ([FAMILY, "EU02"], "EU02"),
        ([f"{FAMILY} {GIVEN}", "12 Elm St", ""], None),
        (["EP01", "SYS01"], "EP01,SYS01"),
    ],
)
async def test_erp_keeps_only_codes_of_the_ledgers_form(codes: list[str], kept: str | None) -> None:
    errors = [{"code": code, "message": f"customer {FAMILY} {GIVEN} refused"} for code in codes]
    client = ConnectorClient(base_url="http://erp.test", transport=_answering({"errors": errors}))
    connector = LedgerErpConnector(LedgerErpConfig(base_url="http://erp.test"), client)
    error = await _rejection(connector, "upsert_customer")
    assert error.code == kept
    for value in (FAMILY, GIVEN):
        assert value not in error.message
