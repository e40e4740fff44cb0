"""Connectors are found by name through the billing_hub.connectors entry-point group."""

import pytest

from connectors import (
    Connector,
    MisconfiguredError,
    available_connectors,
    load_connector_class,
)
from connectors.clearinghouse import X12ClearinghouseConnector
from connectors.ehr import FhirEhrConnector
from connectors.erp import LedgerErpConnector


def test_the_three_connectors_are_registered_by_name() -> None:
    assert {"ehr-fhir", "erp-ledger", "clearinghouse-x12"} <= set(available_connectors())
    assert load_connector_class("ehr-fhir") is FhirEhrConnector
    assert load_connector_class("erp-ledger") is LedgerErpConnector
    assert load_connector_class("clearinghouse-x12") is X12ClearinghouseConnector


def test_an_unknown_connector_is_a_configuration_error_naming_what_is_installed() -> None:
    with pytest.raises(MisconfiguredError, match="erp-ledger"):
        load_connector_class("no-such-connector")


@pytest.mark.parametrize("cls", [FhirEhrConnector, LedgerErpConnector, X12ClearinghouseConnector])
def test_each_connector_class_declares_the_contract(cls: type) -> None:
    assert isinstance(cls.kind, str)
    assert cls.config_type is not None
    for method in ("check", "aclose"):
        assert callable(getattr(cls, method))
    assert {"operations", "check", "aclose"} <= set(dir(cls))
    assert Connector is not None
