"""What the ERP connector sends the ledger, read back from a real ERP stub process."""

from collections.abc import Iterator

import httpx
import msgspec
import pytest

from canonical import decode
from canonical.v1 import PatientAccount
from connectors import make_client
from connectors.erp import LedgerErpConfig, LedgerErpConnector
from tests import factories
from tests.processes import free_port, running, stub_argv


@pytest.fixture(scope="module")
def erp_url() -> Iterator[str]:
    port = free_port()
    with running("erp-stub", stub_argv("erp", port), port, "/erp/health") as service:
        yield service.url


async def _upsert(erp_url: str, details: dict[str, object], account_number: str) -> dict[str, object]:
    account = decode(msgspec.json.encode({**details, "account_number": account_number}), PatientAccount)
    config = LedgerErpConfig(base_url=erp_url)
    erp = LedgerErpConnector(config, make_client(config.base_url, timeout_s=5, connect_timeout_s=5))
    try:
        await erp.upsert_customer(account, account_number)
    finally:
        await erp.aclose()
    async with httpx.AsyncClient() as client:
        customer: dict[str, object] = (await client.get(f"{erp_url}/erp/customers/{account_number}")).json()
    return customer


async def test_a_self_guarantor_is_billed_at_the_patients_address(erp_url: str) -> None:
    customer = await _upsert(erp_url, factories.account_details(), "ACC-SELF-1")
    assert customer["address"] is not None  # the guarantor is the patient, who has one
    assert customer["address"]["city"] == "Springfield"  # type: ignore[index]


async def test_another_guarantor_without_an_address_is_not_given_the_patients(erp_url: str) -> None:
    details = factories.account_details()
    details["guarantor"] = {"name": {"family": "Rivera", "given": "Luis"}, "relationship": "parent"}
    assert (await _upsert(erp_url, details, "ACC-PARENT-1"))["address"] is None
