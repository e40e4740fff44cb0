"""ERP connector: AR customers and general-ledger journals over the ledger's JSON API.

Exactly-once in the ledger rests on the external reference: a journal carries the client's
``external_reference`` and a customer is keyed by the account number, and the ERP answers a repeat
with the original document instead of posting twice.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx
import msgspec

from canonical import to_builtins
from canonical.v1 import JournalEntry, PatientAccount
from connectors._base import HttpConnector, decode_body
from connectors._protocol import ConnectorConfig, DeliveryResult

__all__ = ["LedgerErpConfig", "LedgerErpConnector"]


class LedgerErpConfig(ConnectorConfig, kw_only=True, frozen=True):
    currency: str = "USD"


class _Posted(msgspec.Struct):
    document_number: str
    duplicate: bool = False


class _Customer(msgspec.Struct):
    customer_number: str
    created: bool = False


# The ledger's error codes: capitals then digits (EP01, EU02, SYS01). An ERP that echoes the request
# can put any text where a code belongs (a customer's name): what has not this form is dropped.
_ERROR_CODE = re.compile(r"[A-Z]{1,4}[0-9]{1,4}")


def _error_codes(response: httpx.Response) -> str | None:
    """The ERP's error codes (EP01, EU02, ...) — codes only, its messages stay out of our records."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return None
    codes = {e.get("code") for e in errors if isinstance(e, dict)}
    return ",".join(sorted(c for c in codes if isinstance(c, str) and _ERROR_CODE.fullmatch(c))) or None


class LedgerErpConnector(HttpConnector):
    kind: ClassVar[str] = "erp"
    config_type: ClassVar[type[ConnectorConfig]] = LedgerErpConfig
    health_path: ClassVar[str] = "/erp/health"

    def __init__(self, config: ConnectorConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self.currency = config.currency if isinstance(config, LedgerErpConfig) else "USD"
        self.offer("post_journal", JournalEntry, self.post_journal)
        self.offer("upsert_customer", PatientAccount, self.upsert_customer)

    async def post_journal(self, entry: JournalEntry, external_ref: str) -> DeliveryResult:
        body: dict[str, Any] = to_builtins(entry)
        response = await self.send(
            "POST",
            "/erp/journals",
            json=body,
            headers={"x-external-reference": external_ref},
            error_code=_error_codes,
        )
        posted = decode_body(self.kind, response, _Posted)
        return DeliveryResult(
            status=response.status_code,
            reference=posted.document_number,
            details={"document_number": posted.document_number, "duplicate": str(posted.duplicate).lower()},
        )

    async def upsert_customer(self, account: PatientAccount, external_ref: str) -> DeliveryResult:
        guarantor = account.guarantor
        who = guarantor.name if guarantor is not None else account.patient.name
        address = guarantor.address if guarantor is not None else account.patient.address
        if address is None and guarantor is not None and guarantor.relationship == "self":
            address = account.patient.address  # a self guarantor is the patient: the same address
        body = {
            "name": f"{who.family}, {who.given}",
            "account_number": account.account_number,
            "currency": self.currency,
            "address": to_builtins(address) if address is not None else None,
        }
        response = await self.send(
            "PUT",
            f"/erp/customers/{account.account_number}",
            json=body,
            headers={"x-external-reference": external_ref},
            error_code=_error_codes,
        )
        customer = decode_body(self.kind, response, _Customer)
        return DeliveryResult(
            status=response.status_code,
            reference=customer.customer_number,
            details={"customer_number": customer.customer_number, "created": str(customer.created).lower()},
        )
