"""The hub's working parts for one process: the hub (store, connectors, dispatcher) and its governance.

Both ``billing-hub serve`` (through the app's lifespan) and ``billing-hub dispatch`` (a process that
only delivers) open the same runtime, so a delivery is audited and measured the same way wherever
it runs.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

from gateway.dispatcher import AttemptAudit, AttemptObserver
from gateway.governance_state import Governance
from gateway.hub import Hub
from gateway.settings import Settings
from gateway.store import AttemptRecord, OutboxRecord, RedisStore, Store, TransactionRecord
from gateway.telemetry import Telemetry
from policies.audit import AuditEntry, AuditPush, InTransaction

__all__ = ["Runtime", "open_runtime", "settle_heap"]

log = logging.getLogger("billing_hub.runtime")
GC_GEN0_THRESHOLD = 20_000  # CPython's default is 700 allocations between first-generation passes

_CIRCUIT_LEVEL = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(slots=True)
class Runtime:
    hub: Hub
    governance: Governance

    async def close(self) -> None:
        # Order matters: deliveries stop (and are audited), the audit queue drains into the store,
        # and only then does the store close.
        await self.hub.dispatcher.stop()
        await self.governance.aclose()
        await self.hub.close()


def _delivery_entry(entry: OutboxRecord, attempt: AttemptRecord, client_id: str, trace_id: str | None) -> AuditEntry:
    return AuditEntry(
        client_id=client_id,
        operation=f"deliver:{entry.operation}",
        resource_id=entry.id,
        outcome={"success": "delivered", "retry": "retry"}.get(attempt.outcome, "failed"),
        status=attempt.status,
        trace_id=trace_id,
        at=attempt.started_at,
        target=entry.target,
        transaction_id=entry.transaction_id,
    )


def _attempt_audit(governance: Governance) -> AttemptAudit:
    """An attempt's audit record goes into the store's write of the attempt, so a crash right after
    it cannot lose the record; an entry accepted before entries named their client cannot say
    whose it is, and is audited after its attempt (below)."""

    def record(entry: OutboxRecord, attempt: AttemptRecord) -> AuditPush | InTransaction | None:
        if entry.client_id is None:
            return None
        return governance.audit_log.with_work(_delivery_entry(entry, attempt, entry.client_id, entry.trace_id))

    return record


def _audit_deliveries(governance: Governance) -> AttemptObserver:
    async def observe(entry: OutboxRecord, attempt: AttemptRecord, transaction: TransactionRecord) -> None:
        if entry.client_id is not None:  # stored with the attempt: chain it now
            await governance.audit_writer.nudge()
            return
        await governance.audit(_delivery_entry(entry, attempt, transaction.client_id, transaction.trace_id))

    return observe


async def open_runtime(
    settings: Settings,
    operations: frozenset[str],
    telemetry: Telemetry,
    *,
    hub: Hub | None = None,
    store: Store | None = None,
    keyed: frozenset[str] | None = None,
) -> Runtime:
    """Open and start everything; the dispatcher runs when ``settings.dispatcher_enabled``."""
    running = hub or Hub.open(settings, store)
    governance = Governance.open(settings, operations, running.store, keyed=keyed)
    governance.start()
    running.dispatcher.attempt_audit = _attempt_audit(governance)
    running.dispatcher.observers.append(_audit_deliveries(governance))
    running.dispatcher.telemetry = telemetry
    telemetry.gauges["billing_hub.circuit.state"] = lambda: [
        (_CIRCUIT_LEVEL[b.state], {"connector": name}) for name, b in running.dispatcher.breakers.items()
    ]
    if isinstance(running.store, RedisStore) and (why := await running.store.volatility()):
        log.warning("%s; give it AOF persistence (appendonly yes)", why)
    await running.start()
    return Runtime(running, governance)


def settle_heap() -> None:
    """Once started: keep the collector off the start-up heap, and run it less often.

    Why: py-spy showed the cyclic collector at ~7% of the serving process under load, mostly
    re-scanning what start-up allocated (the app, its routes and schemas, the SDKs) in every older-
    generation pass. ``gc.freeze()`` moves those objects out of the collector's sight for good; a
    larger first-generation threshold trades a little memory for fewer passes. Cycles made while
    serving are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
