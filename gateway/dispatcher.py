"""Delivers outbox entries through connectors and records every attempt.

Work is claimed with a lease and a fencing token, so entries that were in flight when a hub died are
picked up again once the lease runs out, and a dispatcher whose lease was taken over cannot record a
stale result. Each target has a circuit breaker: while it is open, claimed work is handed back
untouched (no attempt spent) until the cool-down allows a probe. A retriable failure is rescheduled
by ``RetryPolicy``; a rejection, or a spent budget, dead-letters the entry with its last error.
Waiters (``Prefer: wait``) are woken when a transaction reaches a final state, and observers
(audit, metrics) hear about every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

from canonical import decode
from connectors import Connector, ConnectorError, DeliveryResult, RetriableError
from connectors._base import ATTEMPT
from connectors._breaker import BreakerSettings, CircuitBreaker
from gateway.ids import new_id
from gateway.retry import RetryPolicy
from gateway.settings import Settings
from gateway.store import AttemptRecord, LeaseLost, OutboxRecord, Store, TransactionRecord
from gateway.telemetry import Telemetry
from policies.audit import AuditPush, InTransaction

__all__ = ["AttemptAudit", "AttemptObserver", "Dispatcher"]

log = logging.getLogger("billing_hub.dispatcher")
_tracer = trace.get_tracer("billing_hub.dispatcher")

AttemptObserver = Callable[[OutboxRecord, AttemptRecord, TransactionRecord], Awaitable[None]]
# The audit record of an attempt, in the form the store writes with the attempt (None: not this one).
AttemptAudit = Callable[[OutboxRecord, AttemptRecord], AuditPush | InTransaction | None]
_OUTCOME_BY_KIND = {"retriable": "retry", "rejected": "reject", "misconfigured": "misconfigured"}
# The code of the RetriableError a connector raising anything outside the error tree becomes.
_INTERNAL = "internal"
# How often held deliveries are checked for a finished predecessor that did not release them (a
# process of an earlier release, during a rolling upgrade): rare, and cheap when nothing is wrong.
REPAIR_ORDER_EVERY_S = 30.0
# While a half-open circuit's probe is out, when the deliveries it holds back are looked at again.
PROBE_WAIT_S = 1.0
# An attempt must end, and be recorded, while its lease holds: past it, the entry is claimed again
# and delivered a second time while this attempt runs, and this attempt's result is dropped. A
# connector's timeout bounds one request, not an operation that makes several (the EHR's account
# sync makes up to eight: Patient, Account, and per priority a Coverage or a look-up and a cancel),
# so the dispatcher bounds the attempt itself, leaving part of the lease (a fifth, at most this many
# seconds) for recording it.
RECORD_MARGIN_S = 5.0


def attempt_limit_s(lease_s: float) -> float:
    """How long one delivery attempt may run under a lease of ``lease_s`` seconds."""
    return lease_s - min(lease_s / 5, RECORD_MARGIN_S)


class Dispatcher:
    def __init__(self, store: Store, connectors: Mapping[str, Connector], settings: Settings) -> None:
        self.store = store
        self.connectors = connectors
        self.settings = settings
        self.owner = new_id("dsp")
        self.retry = RetryPolicy(settings)
        breaker_settings = BreakerSettings(
            failure_rate=settings.breaker_failure_rate,
            window_s=settings.breaker_window_s,
            min_calls=settings.breaker_min_calls,
            cool_down_s=settings.breaker_cool_down_s,
        )
        self.breakers = {name: CircuitBreaker(breaker_settings) for name in connectors}
        self.observers: list[AttemptObserver] = []
        self.attempt_audit: AttemptAudit | None = None
        self.telemetry: Telemetry | None = None
        self._wake = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[TransactionRecord]]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-dispatcher")

    @property
    def running(self) -> bool:
        """Delivering in this process (``False`` when another process, ``billing-hub dispatch``, does)."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming; let in-flight deliveries finish within the grace, then hand the rest back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self.settings.shutdown_grace_s if grace_s is None else grace_s)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=5)

    def watch(self, transaction_id: str) -> asyncio.Future[TransactionRecord]:
        """A future resolved when the transaction reaches a final state; pair with ``unwatch``."""
        future: asyncio.Future[TransactionRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(transaction_id, []).append(future)
        return future

    def unwatch(self, transaction_id: str, future: asyncio.Future[TransactionRecord]) -> None:
        waiters = self._waiters.get(transaction_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[transaction_id]

    async def _run(self) -> None:
        repaired_at = -REPAIR_ORDER_EVERY_S
        while True:
            try:
                if time.monotonic() - repaired_at >= REPAIR_ORDER_EVERY_S:
                    repaired_at = time.monotonic()
                    await self._repair_order()
                await self._dispatch_due()
                # In the try too: it asks the store when work is due, and a failure there ended the loop.
                await self._sleep_until_due()
            except Exception as exc:
                # A store failure must not kill the loop: say what kind (never payloads), back off.
                log.error("dispatcher pass failed: %s", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _repair_order(self) -> None:
        released = await self.store.repair_order()
        if released:
            log.warning("released %d deliveries held behind ones an earlier release finished", released)

    async def _dispatch_due(self) -> None:
        free = self.settings.dispatch_concurrency - len(self._in_flight)
        if free <= 0:
            return
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + attempt_limit_s(self.settings.lease_s)  # taken before the lease is
        entries = await self.store.claim_due(
            time.time(), min(free, self.settings.dispatch_batch), self.settings.lease_s, self.owner
        )
        # Fewest attempts first. While a breaker is half-open, the first of these to run is its probe;
        # entries deferred by an open breaker come back due at the same instant and the store breaks
        # such ties by insertion order, so without this the same entry would be the probe every time
        # and spend its whole budget during an outage while the others never got an attempt.
        for entry in sorted(entries, key=lambda e: e.budget_attempts):
            task = loop.create_task(self._deliver(entry, ends_at))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _sleep_until_due(self) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        # Another process (an API node) may have stored work without waking us: look again soon.
        poll = self.settings.dispatch_idle_poll_s
        due = await self.store.next_due_at()
        timeout = poll if due is None else min(poll, max(0.0, due - time.time()))
        if len(self._in_flight) >= self.settings.dispatch_concurrency:
            timeout = poll
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _deliver(self, entry: OutboxRecord, ends_at: float) -> None:
        """One attempt, which must end by ``ends_at`` (event-loop time): while the lease holds."""
        breaker = self.breakers.get(entry.target)
        if breaker is not None and not breaker.allow():
            # Open: back when the cool-down ends. Half-open with the probe out: retry_in() is 0, and
            # handing every other entry back due at once claimed and released them ~50 times a
            # second (a write each) until the probe's answer; a second's wait costs little after one.
            await self._give_back(entry, time.time() + (breaker.retry_in() or PROBE_WAIT_S))
            return
        started = time.time()
        entry.attempts += 1
        entry.budget_attempts += 1
        entry.budget_started_at = entry.budget_started_at or started
        try:
            with self._span(entry) as span:
                span.set_attribute("billing_hub.attempt", entry.attempts)
                attempt_token = ATTEMPT.set(entry.attempts)
                try:
                    result = await self._call(entry, ends_at)
                finally:
                    ATTEMPT.reset(attempt_token)
        except asyncio.CancelledError:
            # Shutting down mid-call: the attempt did not finish, so it does not count.
            if breaker is not None:
                breaker.release_probe()
            entry.attempts -= 1
            entry.budget_attempts -= 1
            await asyncio.shield(self._give_back(entry, time.time()))
            raise
        except ConnectorError as exc:
            if breaker is not None:
                if exc.code == _INTERNAL:  # our failure says nothing about the target's health
                    breaker.release_probe()
                else:
                    breaker.record(success=not isinstance(exc, RetriableError))
            await self._failed(entry, started, exc)
            return
        if breaker is not None:
            breaker.record(success=True)
        entry.state = "done"
        entry.result = {"reference": result.reference or "", **result.details}
        entry.error_kind = entry.error = None
        await self._record(entry, started, "success", result.status, None, next_attempt_at=None)

    def _span(self, entry: OutboxRecord) -> Any:
        """The dispatch span: in the accepting request's trace, linked to that request's span."""
        if self.telemetry is None or not self.telemetry.tracing:
            return contextlib.nullcontext(trace.INVALID_SPAN)  # tracing off: not even a no-op span
        parent = propagate.extract({"traceparent": entry.traceparent}) if entry.traceparent else None
        accepted = trace.get_current_span(parent).get_span_context() if parent is not None else None
        return _tracer.start_as_current_span(
            f"deliver {entry.target}.{entry.operation}",
            context=parent,
            kind=SpanKind.INTERNAL,
            links=[Link(accepted)] if accepted is not None and accepted.is_valid else [],
            attributes={
                "billing_hub.transaction_id": entry.transaction_id,
                "billing_hub.delivery_id": entry.id,
                "billing_hub.connector": entry.target,
                "billing_hub.operation": entry.operation,
            },
        )

    async def _call(self, entry: OutboxRecord, ends_at: float) -> DeliveryResult:
        connector = self.connectors.get(entry.target)
        if connector is None:
            raise ConnectorError(f"no connector configured for target {entry.target!r}")
        operation = connector.operations.get(entry.operation)
        if operation is None:
            raise ConnectorError(f"{entry.target} offers no operation {entry.operation!r}")
        deadline = asyncio.timeout_at(ends_at)
        try:
            async with deadline:
                return await operation.handler(decode(entry.payload, operation.payload_type), entry.external_ref)
        except ConnectorError:
            raise
        except Exception as exc:
            if deadline.expired():  # a slow target, as a timeout is: retried, and counted by the breaker
                raise RetriableError(
                    f"{entry.target}: the delivery did not finish within its lease "
                    f"({self.settings.lease_s:g} s, BILLING_HUB_LEASE_S)",
                    code="lease",
                ) from None
            log.error("delivery %s raised %s", entry.id, type(exc).__name__)
            raise RetriableError(f"internal error ({type(exc).__name__})", code=_INTERNAL) from None

    async def _give_back(self, entry: OutboxRecord, at: float) -> None:
        with contextlib.suppress(LeaseLost):
            await self.store.release(entry, at)

    async def _failed(self, entry: OutboxRecord, started: float, exc: ConnectorError) -> None:
        outcome = _OUTCOME_BY_KIND.get(exc.kind, "reject")
        entry.error_kind, entry.error = exc.kind, exc.message
        delay = None
        if isinstance(exc, RetriableError):
            elapsed = time.time() - (entry.budget_started_at or started)
            delay = self.retry.next_delay(entry.budget_attempts, elapsed, exc.retry_after)
            if delay is None:
                entry.error = f"{exc.message}; retry budget spent after {entry.budget_attempts} attempts"
        entry.state = "pending" if delay is not None else "dead"
        next_at = time.time() + delay if delay is not None else None
        await self._record(entry, started, outcome, exc.status, exc.message, next_attempt_at=next_at)

    async def _record(
        self,
        entry: OutboxRecord,
        started: float,
        outcome: str,
        status: int | None,
        error: str | None,
        *,
        next_attempt_at: float | None,
    ) -> None:
        entry.updated_at = time.time()
        attempt = AttemptRecord(
            outbox_id=entry.id,
            number=entry.attempts,
            started_at=started,
            duration_ms=round((entry.updated_at - started) * 1000, 3),
            outcome=outcome,  # type: ignore[arg-type]
            status=status,
            error=error,
        )
        if self.telemetry is not None:
            labels = {"connector": entry.target, "operation": entry.operation, "outcome": outcome}
            self.telemetry.attempt_duration.record(attempt.duration_ms / 1000, labels)
            self.telemetry.attempts.add(1, labels)
            if entry.state == "pending":
                self.telemetry.retries.add(1, {"connector": entry.target, "operation": entry.operation})
        try:
            audit = self.attempt_audit(entry, attempt) if self.attempt_audit is not None else None
            transaction = await self.store.record_attempt(
                entry, attempt, next_attempt_at=next_attempt_at, audit_record=audit
            )
        except LeaseLost:
            log.warning("lease on %s was taken over; result of attempt %d dropped", entry.id, entry.attempts)
            return
        for observer in self.observers:
            try:
                await observer(entry, attempt, transaction)
            except Exception as exc:  # an observer (audit, metrics) must not undo a delivery
                log.error("attempt observer failed: %s", type(exc).__name__)
        if transaction.state in ("completed", "failed"):
            for future in self._waiters.pop(transaction.id, []):
                if not future.done():
                    future.set_result(transaction)
