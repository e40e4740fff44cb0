from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.processes import Service, free_port, hub_argv, running, stub_argv

KEY = "alpha-key-0123456789"  # client "alpha", every scope (tests/fixtures/policy.toml)
BETA_KEY = "beta-key-0123456789"  # client "beta", every scope but admin
READER_KEY = "reader-key-0123456789"  # client "reader", read scopes only
TEST_POLICY = Path(__file__).parent / "fixtures" / "policy.toml"
READY_PATHS = {"ehr": "/fhir/metadata", "erp": "/erp/health", "clearinghouse": "/x12/health"}


def _available_stubs() -> list[str]:
    return [k for k in ("ehr", "erp", "clearinghouse") if importlib.util.find_spec(f"connectors.{k}._stub")]


@pytest.fixture(scope="session")
def stubs() -> Iterator[dict[str, Service]]:
    with ExitStack() as stack:
        services = {}
        for kind in _available_stubs():
            port = free_port()
            services[kind] = stack.enter_context(
                running(f"stub-{kind}", stub_argv(kind, port), port, READY_PATHS[kind])
            )
        yield services


@pytest.fixture(scope="session")
def hub(stubs: dict[str, Service], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir: Path = tmp_path_factory.mktemp("hub-data")
    port = free_port()
    env = {
        "BILLING_HUB_DATA_DIR": str(data_dir),
        "BILLING_HUB_POLICY_FILE": str(TEST_POLICY),
        "BILLING_HUB_TARGETS": ",".join(stubs),
        "BILLING_HUB_BACKOFF_BASE_S": "0.05",
        **{f"BILLING_HUB_{kind.upper()}_URL": service.url for kind, service in stubs.items()},
    }
    with running("hub", hub_argv(port), port, "/health", env=env) as service:
        yield service


@pytest.fixture
def api(hub: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, headers={"X-API-Key": KEY}, timeout=40) as client:
        yield client
