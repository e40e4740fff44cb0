"""EHR connector: keeps FHIR R4 Patient, Account and Coverage in step with a canonical account.

Every write is a conditional update on a business identifier (``PUT Type?identifier=system|value``),
so a redelivery updates the same resources instead of creating duplicates.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import msgspec

from canonical.v1 import PatientAccount
from connectors._base import HttpConnector, decode_body
from connectors._protocol import ConnectorConfig, DeliveryResult
from connectors.ehr._fhir import (
    account_identifier,
    account_resource,
    coverage_identifier,
    coverage_resource,
    patient_resource,
)

__all__ = ["FhirEhrConnector"]

FHIR_JSON = "application/fhir+json"


class _Stored(msgspec.Struct):
    id: str


def _issue_code(response: httpx.Response) -> str | None:
    """OperationOutcome issue codes only; diagnostics text can quote patient data."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    issues = body.get("issue") if isinstance(body, dict) else None
    if not isinstance(issues, list):
        return None
    return ",".join(sorted({str(i.get("code")) for i in issues if isinstance(i, dict) and i.get("code")})) or None


class FhirEhrConnector(HttpConnector):
    kind: ClassVar[str] = "ehr"
    config_type: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    health_path: ClassVar[str] = "/fhir/metadata"

    def __init__(self, config: ConnectorConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self.offer("sync_account", PatientAccount, self.sync_account)

    async def _upsert(
        self, resource_type: str, identifier: tuple[str, str], resource: dict[str, Any], external_ref: str
    ) -> tuple[str, int]:
        """The stored resource's id and the EHR's status for the upsert (200 updated, 201 created)."""
        response = await self.send(
            "PUT",
            f"/fhir/{resource_type}",
            params={"identifier": f"{identifier[0]}|{identifier[1]}"},
            content=msgspec.json.encode(resource),
            headers={"content-type": FHIR_JSON, "accept": FHIR_JSON, "x-external-reference": external_ref},
            error_code=_issue_code,
        )
        return decode_body(self.kind, response, _Stored).id, response.status_code

    async def sync_account(self, account: PatientAccount, external_ref: str) -> DeliveryResult:
        patient_id, _ = await self._upsert(
            "Patient",
            (f"urn:billing-hub:{account.facility}:patient-account", account.account_number),
            patient_resource(account),
            external_ref,
        )
        account_id, status = await self._upsert(
            "Account", account_identifier(account), account_resource(account, patient_id), external_ref
        )
        coverage_ids = []
        for coverage in account.coverages:
            coverage_id, status = await self._upsert(
                "Coverage",
                coverage_identifier(account, coverage),
                coverage_resource(account, coverage, patient_id),
                external_ref,
            )
            coverage_ids.append(coverage_id)
        return DeliveryResult(
            status=status,
            reference=f"Patient/{patient_id}",
            details={
                "patient_id": patient_id,
                "account_id": account_id,
                "coverage_ids": ",".join(coverage_ids),
            },
        )
