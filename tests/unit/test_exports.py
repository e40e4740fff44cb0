"""The public surface is explicit: every package's __all__ names things that exist, and nothing
private leaks into it."""

import ast
import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "canonical",
    "canonical.v1",
    "connectors",
    "connectors.ehr",
    "connectors.erp",
    "connectors.clearinghouse",
    "connectors.clearinghouse.x12",
    "connectors.testing",
    "gateway.store",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, f"{name} exports nothing"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for item in exported:
        assert not item.startswith("_"), f"{name} exports private {item}"
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("canonical.v1", {"gateway", "connectors", "policies"}),
        ("connectors", {"gateway", "policies"}),
        ("connectors.testing", {"gateway", "policies"}),  # a third-party connector's tests import it alone
    ],
)
def test_dependency_direction(package: str, forbidden: set[str]) -> None:
    """gateway -> policies, connectors, canonical; connectors -> canonical; canonical -> nothing."""
    code = f"import sys, {package}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not forbidden & set(ast.literal_eval(loaded))
