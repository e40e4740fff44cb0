"""What the dispatcher does with a delivery its target's circuit holds back."""

from __future__ import annotations

import time
from pathlib import Path

from connectors._breaker import BreakerSettings, CircuitBreaker
from gateway.api._resources import new_resource
from gateway.dispatcher import PROBE_WAIT_S
from gateway.hub import Delivery, Hub
from gateway.settings import Settings


async def test_a_delivery_held_back_by_a_half_open_probe_waits_for_it(tmp_path: Path) -> None:
    """It was handed back due at once (retry_in() is 0 while half-open), so every held delivery was
    claimed and released about 50 times a second, a store write each, until the probe answered."""
    settings = Settings(data_dir=str(tmp_path), dispatcher_enabled=False, targets="erp", erp_url="http://127.0.0.1:9")
    hub = Hub.open(settings)
    now = [1000.0]
    breaker = CircuitBreaker(BreakerSettings(min_calls=2, cool_down_s=10.0), clock=lambda: now[0])
    hub.dispatcher.breakers["erp"] = breaker
    try:
        resource = new_resource("journal", "jnl_00000000000000000000000001", "alpha", "{}", "txn_x")
        transaction, outbox = hub.prepare(
            client_id="alpha",
            kind="journal.post",
            resource=resource,
            deliveries=[Delivery("erp", "post_journal", b"{}")],
        )
        await hub.commit(transaction, [resource], outbox)
        for _ in range(2):
            breaker.record(False)
        now[0] += 10.0
        assert breaker.allow()  # the probe: now half-open with it in flight
        [entry] = await hub.store.claim_due(time.time(), 10, settings.lease_s, hub.dispatcher.owner)
        before = time.time()
        await hub.dispatcher._deliver(entry, ends_at=float("inf"))
        due = await hub.store.next_due_at()
        assert due is not None
        assert due >= before + PROBE_WAIT_S - 0.01
    finally:
        await hub.close()
