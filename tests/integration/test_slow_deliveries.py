"""Deliveries that take longer than their lease, against a real EHR stub and hub.

A connector's timeout bounds one HTTP request, and start-up checks it is shorter than the lease. An
operation can make several requests, though: the EHR's ``sync_account`` makes up to eight (Patient,
Account, and per priority a Coverage, or a look-up and a cancel of one the account no longer lists),
each within the timeout, so the delivery as a whole can outlast
the lease. Then the entry is claimed again while its first attempt still runs, that attempt's result
is dropped as coming from a lost lease, and so is the next one's: the account was sent to the EHR
again and again, no attempt was ever recorded, and the transaction stayed ``delivering`` for good.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.integration._harness import Proc, cleanup, hub_env, poll
from tests.processes import free_port, stub_argv

pytestmark = pytest.mark.integration

LATENCY_MS = 700  # under the connector's 1 s timeout; five of them outlast the 3 s lease


def _account_with_three_coverages() -> dict[str, Any]:
    body = factories.account_details()
    first = body["coverages"][0]
    body["coverages"] = [
        {**first, "priority": priority, "member_id": f"MBR{n}00001"}
        for n, priority in enumerate(("primary", "secondary", "tertiary"), start=1)
    ]
    return body


def test_a_delivery_longer_than_its_lease_ends_as_an_attempt_instead_of_repeating_forever(tmp_path: Path) -> None:
    port = free_port()
    ehr = Proc("stub-ehr", stub_argv("ehr", port), port, "/fhir/metadata", tmp_path, {})
    env = hub_env(
        "http://127.0.0.1:9",  # no ERP here: the account's ERP delivery is dead-lettered, not our concern
        tmp_path / "data",
        BILLING_HUB_TARGETS="ehr",
        BILLING_HUB_EHR_URL=ehr.url,
        BILLING_HUB_RETRY_MAX_ATTEMPTS="2",
    )
    assert env["BILLING_HUB_LEASE_S"] == "3"
    assert env["BILLING_HUB_CONNECTOR_TIMEOUT_S"] == "1"
    hub = Proc.hub("hub", tmp_path, env)
    with cleanup(hub, ehr):
        ehr.start()
        hub.start()
        httpx.put(f"{ehr.url}/_control/faults", json={"path_prefix": "/fhir/", "latency_ms": LATENCY_MS}, timeout=5)
        api = hub.client()
        accepted = api.put("/v1/accounts/ACC-SLOW-1", json=_account_with_three_coverages())
        assert accepted.status_code == 202, accepted.text
        href = accepted.headers["location"]

        def ehr_delivery_settled() -> dict[str, Any] | None:
            deliveries = api.get(href).json()["deliveries"]
            ehr_delivery: dict[str, Any] = next(d for d in deliveries if d["target"] == "ehr")
            return ehr_delivery if ehr_delivery["state"] in ("done", "dead") else None

        # Two attempts of at most the lease each, and the backoff between them: well within 20 s.
        # Before the fix it stayed in flight with no attempt recorded, sent again every 3 s.
        delivery = poll("the EHR delivery to be done or dead-lettered", ehr_delivery_settled, timeout_s=20, every_s=0.2)
        assert delivery["state"] == "dead", delivery
        assert delivery["error_kind"] == "retriable"
        assert "lease" in delivery["error"]
        assert [h["outcome"] for h in delivery["history"]] == ["retry", "retry"]
        requests = httpx.get(f"{ehr.url}/_control/requests", timeout=5).json()
        patients = Counter(r["path"] for r in requests)["/fhir/Patient"]
        assert patients <= 2, patients  # one per recorded attempt, no unrecorded repeats
        assert "was taken over" not in hub.log_tail(chars=100_000)
