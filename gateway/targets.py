"""Which connector serves each target system: chosen by settings, built and checked at start-up.

The v1 routes deliver to three targets by name (``ehr``, ``erp``, ``clearinghouse``). Which installed
connector serves a target is a setting (``BILLING_HUB_ERP_CONNECTOR``: a name in the
``billing_hub.connectors`` entry-point group), and so are that connector's own config keys
(``BILLING_HUB_ERP_OPTIONS``: a JSON object its config spec checks, e.g. ``{"currency": "EUR"}``): a
different ERP is a package and two settings, not a change to the hub. A connector that is not
installed, options its spec refuses, or a connector without an operation the routes deliver to its
target stop start-up with a message naming the setting, rather than dead-lettering work later.
"""

from __future__ import annotations

from typing import Any

import msgspec

from canonical.v1 import Claim, JournalEntry, PatientAccount
from connectors import Connector, ConnectorConfig, MisconfiguredError, load_connector_class, make_client
from gateway.settings import PREFIX, Settings, SettingsError

__all__ = ["TARGET_OPERATIONS", "build_connector", "build_connectors", "enabled_targets"]

# What the v1 routes deliver to each target: operation name -> the canonical type of its payload.
TARGET_OPERATIONS: dict[str, dict[str, type[Any]]] = {
    "ehr": {"sync_account": PatientAccount},
    "erp": {"post_journal": JournalEntry, "upsert_customer": PatientAccount},
    "clearinghouse": {"submit_claim": Claim},
}


def build_connectors(settings: Settings) -> dict[str, Connector]:
    """The connector of every target named in ``BILLING_HUB_TARGETS``, or a ``SettingsError``."""
    return {target: build_connector(settings, target) for target in enabled_targets(settings)}


def enabled_targets(settings: Settings) -> list[str]:
    """The targets ``BILLING_HUB_TARGETS`` names, in the routes' order, or a ``SettingsError``."""
    enabled = {t.strip() for t in settings.targets.split(",") if t.strip()}
    if not enabled:  # "," or " ": every delivery would be dead-lettered as having no connector
        raise SettingsError(f"{PREFIX}TARGETS names no target (known: {', '.join(TARGET_OPERATIONS)})")
    unknown = enabled - TARGET_OPERATIONS.keys()
    if unknown:
        known = ", ".join(TARGET_OPERATIONS)
        raise SettingsError(f"{PREFIX}TARGETS names unknown targets {sorted(unknown)} (known: {known})")
    return [target for target in TARGET_OPERATIONS if target in enabled]


def build_connector(settings: Settings, target: str) -> Connector:
    """The connector the settings choose for ``target``, checked, or a ``SettingsError`` naming the setting."""
    setting = f"{PREFIX}{target.upper()}"
    name: str = getattr(settings, f"{target}_connector")
    try:
        cls: Any = load_connector_class(name)
    except MisconfiguredError as exc:
        raise SettingsError(f"{setting}_CONNECTOR: {exc.message}") from None
    config = _config(cls.config_type, settings, target, setting)
    client = make_client(
        config.base_url,
        timeout_s=config.timeout_s,
        connect_timeout_s=config.connect_timeout_s,
        transport=settings.http_transport,
        max_connections=settings.dispatch_concurrency,
    )
    connector: Connector = cls(config, client)
    _check_operations(connector, target, f"{setting}_CONNECTOR={name}")
    return connector


def _config(config_type: type[ConnectorConfig], settings: Settings, target: str, setting: str) -> ConnectorConfig:
    try:
        options = msgspec.json.decode(getattr(settings, f"{target}_options") or "{}", type=dict[str, Any])
    except msgspec.DecodeError:  # not JSON, or JSON but not an object (ValidationError is a DecodeError)
        raise SettingsError(f"{setting}_OPTIONS must be a JSON object") from None
    if "base_url" in options:
        raise SettingsError(f"{setting}_OPTIONS: the address is {setting}_URL, not an option")
    raw = {"timeout_s": settings.connector_timeout_s, **options, "base_url": getattr(settings, f"{target}_url")}
    try:
        config = msgspec.convert(raw, config_type)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{setting}_OPTIONS: {exc}") from None
    if max(config.timeout_s, config.connect_timeout_s) >= settings.lease_s:  # else a live attempt is taken over
        raise SettingsError(
            f"{PREFIX}LEASE_S must be longer than the {target} connector's timeouts "
            f"(timeout_s {config.timeout_s:g} s: {setting}_OPTIONS, else {PREFIX}CONNECTOR_TIMEOUT_S; "
            f"connect_timeout_s {config.connect_timeout_s:g} s)"
        )
    return config


def _check_operations(connector: Connector, target: str, chosen: str) -> None:
    offered = connector.operations
    for operation, payload_type in TARGET_OPERATIONS[target].items():
        found = offered.get(operation)
        if found is None or found.payload_type is not payload_type:
            raise SettingsError(
                f"{chosen}: the {target} target needs operation {operation!r} taking {payload_type.__name__}; "
                f"the connector offers {sorted(offered) or 'none'}"
            )
