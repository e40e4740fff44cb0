"""``billing-hub connectors``: what is installed, and how the settings serve each target.

For an integration engineer adding a connector package: is it installed under the entry point, what
config keys does its spec take, and will ``serve`` accept it for the target it is meant for. Each
target is built exactly as start-up builds it (``gateway.targets``), so a target this report calls
accepted is one ``serve`` starts with, and one it refuses carries the same one-line reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from connectors import Connector, ConnectorConfig, Health, available_connectors, load_connector_class
from gateway.settings import PREFIX, Settings, SettingsError
from gateway.targets import TARGET_OPERATIONS, build_connector, enabled_targets

__all__ = ["connectors_report"]


def connectors_report(settings: Settings, *, check: bool = False) -> tuple[list[str], bool]:
    """The report's lines, and whether every enabled target is accepted (and, with ``check``,
    answers its connector's health check)."""
    lines = ["installed connectors (entry-point group billing_hub.connectors):"]
    for name, where in sorted(available_connectors().items()):
        lines += _installed(name, where)
    targets = enabled_targets(settings)
    lines += ["", f"targets ({PREFIX}TARGETS={','.join(targets)}):"]
    ready = True
    for target in TARGET_OPERATIONS:
        if target not in targets:
            lines.append(f"  {target:<14} left out: its work is stored and dead-lettered until it is configured")
            continue
        try:
            connector = build_connector(settings, target)
        except SettingsError as exc:
            lines.append(f"  {target:<14} REFUSED: {exc}")
            ready = False
            continue
        chosen = getattr(settings, f"{target}_connector")
        needed = ", ".join(TARGET_OPERATIONS[target])
        line = f"  {target:<14} {chosen} at {getattr(settings, f'{target}_url')}: accepted ({needed})"
        if check:
            health = asyncio.run(_check(connector))
            ready = ready and health.ok
            line += f"; check: {'ok' if health.ok else 'FAILED'}{f' ({health.detail})' if health.detail else ''}"
        else:
            asyncio.run(connector.aclose())  # built only to be checked: closing releases its HTTP client
        lines.append(line)
    return lines, ready


async def _check(connector: Connector) -> Health:
    try:
        return await connector.check()
    finally:
        await connector.aclose()


def _installed(name: str, where: str) -> list[str]:
    try:
        cls: Any = load_connector_class(name)
        config = msgspec.structs.fields(cls.config_type)
    except Exception as exc:  # a broken third-party package must not hide the others
        return [f"  {name:<20} {where}: cannot be loaded ({type(exc).__name__}: {exc})"]
    keys = ", ".join(_key(f) for f in config if f.encode_name not in _EVERY_CONNECTORS)
    return [f"  {name:<20} {where} (kind {cls.kind})", f"  {'':<20} own options: {keys or 'none'}"]


# Keys every connector's spec has, set by the hub's own settings: the address is {TARGET}_URL and the
# timeouts default to BILLING_HUB_CONNECTOR_TIMEOUT_S, whatever a spec's own defaults say.
_EVERY_CONNECTORS = frozenset(f.encode_name for f in msgspec.structs.fields(ConnectorConfig))


def _key(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return f"{field.encode_name} (required)"
    default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    return f"{field.encode_name}={msgspec.json.encode(default).decode()}"
