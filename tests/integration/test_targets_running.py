"""A hub whose ERP target is served by a connector from another package, chosen by settings alone;
and a hub whose connector settings are wrong, which does not start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import factories
from tests.conftest import KEY, TEST_POLICY
from tests.integration._harness import poll
from tests.processes import Service, free_port, hub_argv, running
from tests.third_party import ACME_ERP, install_acme_erp

pytestmark = pytest.mark.integration


def _env(stubs: dict[str, Service], tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "BILLING_HUB_DATA_DIR": str(tmp_path / "data"),
        "BILLING_HUB_POLICY_FILE": str(TEST_POLICY),
        "BILLING_HUB_TARGETS": "erp",
        "BILLING_HUB_ERP_URL": stubs["erp"].url,
        "BILLING_HUB_BACKOFF_BASE_S": "0.05",
        **extra,
    }


def test_a_connector_from_another_package_posts_the_journals(stubs: dict[str, Service], tmp_path: Path) -> None:
    site = install_acme_erp(tmp_path / "site")
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = _env(stubs, tmp_path, BILLING_HUB_ERP_CONNECTOR=ACME_ERP, PYTHONPATH=path)
    port = free_port()
    with running("acme-hub", hub_argv(port), port, "/health", env=env) as hub:
        answer = httpx.post(
            f"{hub.url}/v1/journals",
            json=factories.journal(),
            headers={"X-API-Key": KEY, "Prefer": "wait=10"},
            timeout=20,
        )
    assert answer.status_code == 200, answer.text
    (delivery,) = answer.json()["deliveries"]
    assert delivery["details"]["via"] == ACME_ERP
    assert delivery["details"]["document_number"].startswith("JE-")


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("BILLING_HUB_ERP_CONNECTOR", "sap-s4", "sap-s4"),
        ("BILLING_HUB_ERP_OPTIONS", '{"surprise": 1}', "surprise"),
    ],
)
def test_a_hub_with_a_wrong_connector_setting_does_not_start(
    stubs: dict[str, Service], tmp_path: Path, setting: str, value: str, named: str
) -> None:
    env = {**os.environ, **_env(stubs, tmp_path, **{setting: value})}
    command = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port())]
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode != 0
    assert setting in started.stdout + started.stderr
    assert named in started.stdout + started.stderr


def test_work_for_a_target_left_out_waits_dead_lettered_until_a_replay(
    stubs: dict[str, Service], tmp_path: Path
) -> None:
    """Only the ERP is configured: the account's EHR delivery is dead-lettered, not dropped; once the
    hub runs with the EHR too, a replay delivers it."""
    port = free_port()
    headers = {"X-API-Key": KEY, "Prefer": "wait=10"}
    with running("erp-only-hub", hub_argv(port), port, "/health", env=_env(stubs, tmp_path)) as hub:
        answer = httpx.put(
            f"{hub.url}/v1/accounts/ACC-LATER-1", json=factories.account_details(), headers=headers, timeout=20
        )
    assert answer.status_code == 200, answer.text
    by_target = {d["target"]: d for d in answer.json()["deliveries"]}
    assert (by_target["erp"]["state"], by_target["ehr"]["state"]) == ("done", "dead")
    assert by_target["ehr"]["error"] == "no connector configured for target 'ehr'"

    both = _env(stubs, tmp_path, BILLING_HUB_TARGETS="ehr,erp", BILLING_HUB_EHR_URL=stubs["ehr"].url)
    with (
        running("full-hub", hub_argv(port), port, "/health", env=both) as hub,
        httpx.Client(base_url=hub.url, headers={"X-API-Key": KEY}, timeout=20) as api,
    ):
        (dead,) = api.get("/v1/admin/dead-letters", params={"target": "ehr"}).json()["items"]
        assert api.post(f"/v1/admin/dead-letters/{dead['id']}/replay").status_code == 200
        done = poll(
            "the replayed EHR delivery",
            lambda: (t := api.get(answer.headers["location"]).json())["state"] == "completed" and t,
            timeout_s=15,
        )
        account = api.get("/v1/accounts/ACC-LATER-1").json()
    assert {d["target"]: d["state"] for d in done["deliveries"]} == {"ehr": "done", "erp": "done"}
    patient = httpx.get(f"{stubs['ehr'].url}/fhir/Patient/{account['ehr_patient_id']}", timeout=5)
    assert patient.json()["identifier"][0]["value"] == "ACC-LATER-1"
