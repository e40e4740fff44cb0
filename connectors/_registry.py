"""Find connector classes by name through the ``billing_hub.connectors`` entry-point group.

A third-party package adds a connector by declaring, in its own pyproject.toml::

    [project.entry-points."billing_hub.connectors"]
    my-payer = "my_package:MyPayerConnector"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from connectors._errors import MisconfiguredError

__all__ = ["ENTRY_POINT_GROUP", "available_connectors", "load_connector_class"]

ENTRY_POINT_GROUP = "billing_hub.connectors"


@cache
def available_connectors() -> dict[str, str]:
    """Name -> ``module:attr`` of every installed connector."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_connector_class(name: str) -> type[Any]:
    matches = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not matches:
        known = ", ".join(sorted(available_connectors())) or "none"
        raise MisconfiguredError(f"no connector named {name!r} is installed (installed: {known})")
    (entry,) = tuple(matches)[:1]
    loaded: type[Any] = entry.load()
    return loaded
