"""Two quick updates of one account reach the ERP in the order the hub accepted them.

The first update's delivery is slow (the ERP stub sleeps on it); the second is accepted meanwhile.
Were they delivered independently, the second would overtake the first and the ERP would end with
the older data while the hub shows the newer. Over both backends, with the hub delivering.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.integration._harness import Proc, cleanup, hub_env, poll, set_faults

pytestmark = pytest.mark.integration

ACCOUNT = "ACC-ORDER-1"


def erp_delivery(api: httpx.Client, transaction_id: str) -> dict[str, Any]:
    """The transaction's ERP delivery once it is done (this hub has no EHR: that delivery fails)."""

    def done() -> dict[str, Any] | None:
        transaction = api.get(f"/v1/transactions/{transaction_id}").json()
        delivery = next(d for d in transaction["deliveries"] if d["target"] == "erp")
        return delivery if delivery["state"] == "done" else None

    return poll(f"the ERP delivery of {transaction_id}", done, timeout_s=15)


@contextmanager
def erp_and_hub(tmp_path: Path, backend: dict[str, str]) -> Iterator[tuple[Proc, httpx.Client]]:
    """An ERP stub and a hub delivering only to it, running; the ERP and a client of the hub."""
    erp = Proc.erp(tmp_path)
    hub = Proc.hub("hub", tmp_path, hub_env(erp.url, tmp_path / "data", **backend))
    with cleanup(hub, erp):
        erp.start()
        hub.start()
        with hub.client() as api:
            yield erp, api


def test_a_newer_update_waits_for_the_older_ones_delivery(tmp_path: Path, backend: dict[str, str]) -> None:
    with erp_and_hub(tmp_path, backend) as (erp, api):
        set_faults(erp, latency_ms=1500, remaining=1, path_prefix="/erp/customers")
        older = api.put(f"/v1/accounts/{ACCOUNT}", json=factories.account_details(family="Older"))
        assert older.status_code == 202, older.text
        time.sleep(0.3)  # its delivery is now sleeping inside the ERP
        newer = api.put(f"/v1/accounts/{ACCOUNT}", json=factories.account_details(family="Newer"))
        assert newer.status_code == 202, newer.text
        # Its transaction says what its ERP delivery waits for (the EHR one, to no EHR here, does not wait).
        held = {d["target"]: d for d in api.get(f"/v1/transactions/{newer.json()['id']}").json()["deliveries"]}
        assert held["erp"]["state"] == "pending", held
        assert held["erp"]["held_behind"] == older.json()["id"]
        assert held["ehr"].get("held_behind") is None
        deliveries = [erp_delivery(api, older.json()["id"]), erp_delivery(api, newer.json()["id"])]

        customer = httpx.get(f"{erp.url}/erp/customers/{ACCOUNT}", timeout=5).json()
        assert customer["name"] == "Newer, Ana"  # what the hub holds, not the update that was slow
        first, second = (d["history"][-1] for d in deliveries)
        first_ended = datetime.fromisoformat(first["started_at"]) + timedelta(milliseconds=first["duration_ms"])
        assert datetime.fromisoformat(second["started_at"]) >= first_ended  # one at a time


def test_a_dead_update_is_not_replayed_over_a_newer_one(tmp_path: Path, backend: dict[str, str]) -> None:
    """The ERP rejects the first update of an account; a second is delivered. Replaying the first
    would leave the ERP with the older data: both replays refuse it and say why."""
    with erp_and_hub(tmp_path, backend) as (erp, api):
        set_faults(erp, error_status=422, remaining=1, path_prefix="/erp/customers")
        wait = {"Prefer": "wait=10"}
        older = api.put("/v1/accounts/ACC-OLD-1", json=factories.account_details(family="Older"), headers=wait)
        assert next(d for d in older.json()["deliveries"] if d["target"] == "erp")["state"] == "dead", older.text
        newer = api.put("/v1/accounts/ACC-OLD-1", json=factories.account_details(family="Newer"), headers=wait)
        assert next(d for d in newer.json()["deliveries"] if d["target"] == "erp")["state"] == "done", newer.text
        (dead,) = api.get("/v1/admin/dead-letters", params={"target": "erp"}).json()["items"]
        assert dead["transaction_id"] == older.json()["id"]

        one = api.post(f"/v1/admin/dead-letters/{dead['id']}/replay")
        assert one.status_code == 409, one.text
        assert newer.json()["id"] in one.json()["detail"]
        bulk = api.post("/v1/admin/dead-letters/replay", json={"target": "erp"})
        assert bulk.json() == {"replayed": [], "superseded": [dead["id"]]}
        customer = httpx.get(f"{erp.url}/erp/customers/ACC-OLD-1", timeout=5).json()
        assert customer["name"] == "Newer, Ana"
