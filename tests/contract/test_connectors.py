"""The three connectors of this repository against the shared connector contract
(``connectors.testing.ConnectorContract``), each against its stub server run as a real process."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec
import pytest

from canonical import decode
from canonical.v1 import Claim, JournalEntry, PatientAccount
from connectors.clearinghouse import X12ClearinghouseConnector
from connectors.ehr import FhirEhrConnector
from connectors.erp import LedgerErpConnector
from connectors.testing import ConnectorContract
from tests import factories
from tests.conftest import READY_PATHS
from tests.processes import free_port, running, stub_argv

pytestmark = pytest.mark.integration

_numbers = itertools.count(1)


def _as(type_: type[Any], payload: dict[str, Any]) -> Any:
    return decode(msgspec.json.encode(payload), type_)


def _account() -> PatientAccount:
    number = f"ACC-CT-{next(_numbers)}-{uuid.uuid4().hex[:6]}"
    account: PatientAccount = _as(
        PatientAccount, {"account_number": number, **factories.account_details(family="Contractsen")}
    )
    return account


class _AgainstOurStub(ConnectorContract):
    """The contract against this repository's stub server of kind ``stub``, one process per class."""

    stub: ClassVar[str]

    @pytest.fixture(scope="class")
    @classmethod
    def target_url(cls) -> Iterator[str]:
        port = free_port()
        with running(f"contract-stub-{cls.stub}", stub_argv(cls.stub, port), port, READY_PATHS[cls.stub]) as service:
            yield service.url


class TestFhirEhrConnector(_AgainstOurStub):
    connector_class = FhirEhrConnector
    entry_point = "ehr-fhir"
    stub = "ehr"

    @pytest.fixture
    def samples(self) -> dict[str, Any]:
        return {"sync_account": _account()}


class TestLedgerErpConnector(_AgainstOurStub):
    connector_class = LedgerErpConnector
    entry_point = "erp-ledger"
    stub = "erp"

    @pytest.fixture
    def samples(self) -> dict[str, Any]:
        return {
            "post_journal": _as(JournalEntry, factories.journal(reference=f"contract-{uuid.uuid4().hex[:12]}")),
            "upsert_customer": _account(),
        }


class TestX12ClearinghouseConnector(_AgainstOurStub):
    connector_class = X12ClearinghouseConnector
    entry_point = "clearinghouse-x12"
    stub = "clearinghouse"

    @pytest.fixture
    def samples(self) -> dict[str, Any]:
        return {"submit_claim": _as(Claim, factories.claim(claim_id=f"CT{next(_numbers):05d}{uuid.uuid4().hex[:6]}"))}
