"""``billing-hub connectors``: what is installed and how each target is served, as start-up sees it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port, running, stub_argv
from tests.third_party import ACME_ERP, BROKEN_ERP, install_acme_erp


def _report(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", "connectors", *args]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)


def test_a_third_party_connector_is_listed_and_a_refused_target_named(tmp_path: Path) -> None:
    site = install_acme_erp(tmp_path / "site")
    report = _report({
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "BILLING_HUB_ERP_CONNECTOR": ACME_ERP,
        "BILLING_HUB_ERP_OPTIONS": '{"currency": "EUR"}',
        "BILLING_HUB_EHR_CONNECTOR": "no-such-ehr",
        "BILLING_HUB_TARGETS": "ehr,erp",
    })  # fmt: skip
    assert report.returncode == 2, report.stdout + report.stderr  # what serve would refuse to start with
    out = report.stdout
    assert f"{ACME_ERP:<20} acme_erp:AcmeErpConnector (kind acme-erp)" in out
    assert f"{BROKEN_ERP:<20} broken_erp:BrokenErpConnector (kind broken-erp)" in out
    assert 'own options: currency="USD"' in out  # the spec's own keys; base_url and timeouts are settings
    assert "erp            acme-erp at http://127.0.0.1:8083: accepted (post_journal, upsert_customer)" in out
    assert "ehr            REFUSED: BILLING_HUB_EHR_CONNECTOR: no connector named 'no-such-ehr' is installed" in out
    assert "clearinghouse  left out" in out


def test_check_runs_each_target_connectors_health_check(tmp_path: Path) -> None:
    port = free_port()
    with running("erp-stub", stub_argv("erp", port), port, "/erp/health"):
        env = {"BILLING_HUB_ERP_URL": f"http://127.0.0.1:{port}", "BILLING_HUB_TARGETS": "erp"}
        healthy = _report(env, "--check")
        closed = _report({**env, "BILLING_HUB_TARGETS": "erp,ehr", "BILLING_HUB_EHR_URL": f"http://127.0.0.1:{free_port()}"},
                         "--check")  # fmt: skip
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert (
        f"erp-ledger at http://127.0.0.1:{port}: accepted (post_journal, upsert_customer); check: ok" in healthy.stdout
    )
    assert closed.returncode == 2
    assert "check: FAILED (ehr: connection refused or unreachable)" in closed.stdout
