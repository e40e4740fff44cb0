"""EHR connector: keeps FHIR R4 Patient, Account and Coverage in step with a canonical account.

Every write is a conditional update on a business identifier (``PUT Type?identifier=system|value``),
so a redelivery updates the same resources instead of creating duplicates. A coverage the account no
longer lists is cancelled, not left in force: its stored Coverage is updated to ``cancelled`` under
``If-Match`` on the version read, so a change made meanwhile is a 412 and the delivery is retried.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx
import msgspec

from canonical.v1 import PatientAccount
from connectors._base import HttpConnector, decode_body
from connectors._errors import RejectedError, RetriableError
from connectors._protocol import ConnectorConfig, DeliveryResult
from connectors.ehr._fhir import (
    PRIORITIES,
    account_identifier,
    account_resource,
    cancelled_coverage,
    coverage_identifier,
    coverage_resource,
    patient_resource,
    priority_identifier,
)

__all__ = ["FhirEhrConnector"]

FHIR_JSON = "application/fhir+json"


class _Stored(msgspec.Struct):
    id: str


class _Meta(msgspec.Struct):
    versionId: str  # noqa: N815 - FHIR's name


class _Found(msgspec.Struct):
    id: str
    meta: _Meta
    status: str = ""


class _Entry(msgspec.Struct):
    resource: msgspec.Raw


class _Bundle(msgspec.Struct):
    entry: list[_Entry] = []


_FHIR_ID = re.compile(r"[A-Za-z0-9.-]{1,64}")


# FHIR R4 IssueType (http://hl7.org/fhir/issue-type), a closed value set. An EHR that echoes the
# request can put any text in ``issue.code`` too (the patient it choked on): only these are kept.
_ISSUE_TYPES = frozenset(
    (  # noqa: SIM905 - one readable block of codes
        "invalid structure required value invariant security login unknown expired forbidden "
        "suppressed processing not-supported duplicate multiple-matches not-found deleted too-long "
        "code-invalid extension too-costly business-rule conflict transient lock-error no-store "
        "exception timeout incomplete throttled informational"
    ).split()
)


def _issue_code(response: httpx.Response) -> str | None:
    """OperationOutcome issue codes only, and only the IssueType ones; diagnostics text can quote
    patient data."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    issues = body.get("issue") if isinstance(body, dict) else None
    if not isinstance(issues, list):
        return None
    codes = {i.get("code") for i in issues if isinstance(i, dict)}
    return ",".join(sorted(code for code in codes if isinstance(code, str) and code in _ISSUE_TYPES)) or None


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
        try:
            response = await self.send(
                "PUT",
                f"/fhir/{resource_type}",
                params={"identifier": f"{identifier[0]}|{identifier[1]}"},
                content=msgspec.json.encode(resource),
                headers={"content-type": FHIR_JSON, "accept": FHIR_JSON, "x-external-reference": external_ref},
                error_code=_issue_code,
            )
        except RetriableError as exc:
            if exc.status != 412:
                raise
            # No If-Match was sent, so a 412 is no ETag race: the identifier matches more than one
            # resource (FHIR R4 conditional update), which a retry cannot mend.
            raise RejectedError(exc.message, status=exc.status, code=exc.code) from None
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
        listed = {coverage.priority for coverage in account.coverages}
        cancelled_ids = []
        for priority in PRIORITIES:
            if priority not in listed:
                cancelled_ids += await self._cancel_coverage(priority_identifier(account, priority), external_ref)
        return DeliveryResult(
            status=status,
            reference=f"Patient/{patient_id}",
            details={
                "patient_id": patient_id,
                "account_id": account_id,
                "coverage_ids": ",".join(coverage_ids),
                "cancelled_coverage_ids": ",".join(cancelled_ids),
            },
        )

    async def _cancel_coverage(self, identifier: tuple[str, str], external_ref: str) -> list[str]:
        """Cancel what is stored under ``identifier`` and still in force; the ids of those cancelled."""
        response = await self.send(
            "GET",
            "/fhir/Coverage",
            params={"identifier": f"{identifier[0]}|{identifier[1]}"},
            headers={"accept": FHIR_JSON, "x-external-reference": external_ref},
            error_code=_issue_code,
        )
        cancelled = []
        for entry in decode_body(self.kind, response, _Bundle).entry:
            found = _decoded(self.kind, entry.resource, _Found)
            if found.status == "cancelled":
                continue  # cancelled already: a redelivery writes nothing
            if not _FHIR_ID.fullmatch(found.id):
                raise RejectedError(f"{self.kind} answered with an unexpected body", status=response.status_code)
            await self.send(
                "PUT",
                f"/fhir/Coverage/{found.id}",
                content=msgspec.json.encode(cancelled_coverage(_decoded(self.kind, entry.resource, dict[str, Any]))),
                headers={
                    "content-type": FHIR_JSON,
                    "accept": FHIR_JSON,
                    "if-match": f'W/"{found.meta.versionId}"',
                    "x-external-reference": external_ref,
                },
                error_code=_issue_code,
            )
            cancelled.append(found.id)
        return cancelled


def _decoded(target: str, raw: msgspec.Raw, type_: type[Any]) -> Any:
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.DecodeError:
        raise RejectedError(f"{target} answered with an unexpected body") from None
