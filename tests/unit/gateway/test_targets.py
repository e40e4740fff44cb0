"""Which connector serves each target is chosen by settings and checked before the hub starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar.testing import TestClient

from connectors import Connector
from connectors.clearinghouse import X12ClearinghouseConnector
from connectors.ehr import FhirEhrConnector
from connectors.erp import LedgerErpConnector
from gateway.app import create_app
from gateway.settings import Settings, SettingsError, load_settings
from gateway.targets import build_connectors
from tests import factories
from tests.conftest import KEY, TEST_POLICY
from tests.processes import free_port
from tests.third_party import ACME_ERP, BROKEN_ERP, install_acme_erp


def _built(**env: str) -> dict[str, Connector]:
    connectors = build_connectors(load_settings({f"BILLING_HUB_{k.upper()}": v for k, v in env.items()}))
    for connector in connectors.values():  # nothing was sent: closing only releases the clients
        asyncio.run(connector.aclose())
    return connectors


def _refused(**env: str) -> str:
    with pytest.raises(SettingsError) as refused:
        _built(**env)
    return str(refused.value)


def test_the_defaults_are_this_repositorys_three_connectors() -> None:
    connectors = _built()
    assert {t: type(c) for t, c in connectors.items()} == {
        "ehr": FhirEhrConnector,
        "erp": LedgerErpConnector,
        "clearinghouse": X12ClearinghouseConnector,
    }


def test_options_reach_the_connectors_own_config() -> None:
    erp = _built(targets="erp", erp_options='{"currency": "EUR", "timeout_s": 1.5}')["erp"]
    assert isinstance(erp, LedgerErpConnector)
    assert erp.currency == "EUR"
    assert erp.config.timeout_s == 1.5


def test_a_connector_that_is_not_installed_is_refused_naming_the_setting() -> None:
    message = _refused(erp_connector="sap-s4")
    assert "BILLING_HUB_ERP_CONNECTOR" in message
    assert "sap-s4" in message
    assert "erp-ledger" in message  # what is installed


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ('{"surprise": 1}', "surprise"),
        ('{"currency": 978}', "currency"),
        ("currency=EUR", "JSON object"),
        ('["EUR"]', "JSON object"),
        ('{"base_url": "http://elsewhere"}', "BILLING_HUB_ERP_URL"),
    ],
)
def test_options_the_config_spec_refuses_stop_start_up(options: str, named: str) -> None:
    message = _refused(erp_options=options)
    assert "BILLING_HUB_ERP_OPTIONS" in message
    assert named in message


def test_a_connector_without_the_targets_operations_is_refused() -> None:
    message = _refused(erp_connector="ehr-fhir")  # installed, but an EHR cannot post journals
    assert "BILLING_HUB_ERP_CONNECTOR=ehr-fhir" in message
    assert "'post_journal' taking JournalEntry" in message


def test_an_unknown_target_is_refused() -> None:
    message = _refused(targets="erp,payroll")
    assert "BILLING_HUB_TARGETS" in message
    assert "payroll" in message


def test_a_connector_from_another_package_serves_a_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(install_acme_erp(tmp_path / "site")))
    erp = _built(targets="erp", erp_connector=ACME_ERP)["erp"]
    assert type(erp).__name__ == "AcmeErpConnector"
    assert erp.operations["post_journal"].handler.__func__ is type(erp).post_journal  # type: ignore[attr-defined]


def test_a_filing_indicator_outside_the_x12_code_list_is_refused() -> None:
    message = _refused(targets="clearinghouse", clearinghouse_options='{"filing_indicator": "Medicare"}')
    assert "BILLING_HUB_CLEARINGHOUSE_OPTIONS" in message
    assert "filing_indicator" in message
    house = _built(targets="clearinghouse", clearinghouse_options='{"filing_indicator": "MB"}')["clearinghouse"]
    assert isinstance(house, X12ClearinghouseConnector)
    assert house.filing_indicator == "MB"


def test_a_connector_bug_does_not_open_the_targets_circuit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve journals whose connector raises a plain exception: each is dead-lettered as an internal
    error, and the ERP's breaker (which opens once half of 2+ calls failed) stays closed for other work."""
    monkeypatch.syspath_prepend(str(install_acme_erp(tmp_path / "site")))
    settings = Settings(
        data_dir=str(tmp_path / "data"), policy_file=str(TEST_POLICY), targets="erp", erp_connector=BROKEN_ERP,
        erp_url=f"http://127.0.0.1:{free_port()}", retry_max_attempts=1, breaker_min_calls=2,
    )  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        for _ in range(12):
            answer = client.post("/v1/journals", json=factories.journal(), headers={"Prefer": "wait=5"})
            (delivery,) = answer.json()["deliveries"]
            assert delivery["state"] == "dead", delivery
            assert delivery["error"].startswith("internal error (RuntimeError)")
        states = client.get("/v1/admin/connectors").json()
    assert states["erp"]["state"] == "closed", states
