"""Delivers outbox entries through connectors and records every attempt.

Work is claimed with a lease, so entries that were in flight when a hub died are picked up again
once the lease runs out. A retriable failure is rescheduled with exponential backoff and full
jitter (never earlier than the target's ``Retry-After``); a rejection, or a spent attempt budget,
dead-letters the entry with its last error. Waiters (``Prefer: wait``) are woken when a
transaction reaches a final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping

from canonical import decode
from connectors import Connector, ConnectorError, RetriableError
from gateway.ids import new_id
from gateway.settings import Settings
from gateway.store import AttemptRecord, OutboxRecord, Store, TransactionRecord

__all__ = ["Dispatcher"]

log = logging.getLogger("billing_hub.dispatcher")

_OUTCOME_BY_KIND = {"retriable": "retry", "rejected": "reject", "misconfigured": "misconfigured"}


class Dispatcher:
    def __init__(self, store: Store, connectors: Mapping[str, Connector], settings: Settings) -> None:
        self.store = store
        self.connectors = connectors
        self.settings = settings
        self.owner = new_id("dsp")
        self._wake = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[TransactionRecord]]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.dispatch_concurrency)
        self._random = random.Random()  # noqa: S311 - jitter, not security
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=grace_s)
        for task in self._in_flight:
            task.cancel()

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
        while True:
            try:
                await self._dispatch_due()
            except Exception:
                # A store failure must not kill the loop: log (no payload), back off, try again.
                log.exception("dispatcher pass failed")
                await asyncio.sleep(1.0)
            await self._sleep_until_due()

    async def _dispatch_due(self) -> None:
        free = self.settings.dispatch_concurrency - len(self._in_flight)
        if free <= 0:
            return
        entries = await self.store.claim_due(
            time.time(), min(free, self.settings.dispatch_batch), self.settings.lease_s, self.owner
        )
        for entry in entries:
            task = asyncio.get_running_loop().create_task(self._deliver(entry))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _sleep_until_due(self) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        due = await self.store.next_due_at()
        timeout = 1.0 if due is None else min(1.0, max(0.0, due - time.time()))
        if len(self._in_flight) >= self.settings.dispatch_concurrency:
            timeout = 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _deliver(self, entry: OutboxRecord) -> None:
        started = time.time()
        number = entry.attempts + 1
        status: int | None = None
        try:
            connector = self.connectors.get(entry.target)
            if connector is None:
                raise ConnectorError(f"no connector configured for target {entry.target!r}")
            operation = connector.operations[entry.operation]
            result = await operation.handler(
                decode(entry.payload, operation.payload_type), entry.external_ref
            )
        except ConnectorError as exc:
            status = exc.status
            await self._failed(entry, started, number, exc)
            return
        except Exception as exc:
            log.exception("delivery %s raised unexpectedly", entry.id)
            await self._failed(
                entry, started, number, RetriableError(f"internal error ({type(exc).__name__})")
            )
            return
        entry.state, entry.attempts = "done", number
        entry.result = {"reference": result.reference or "", **result.details}
        entry.error_kind = entry.error = None
        await self._record(entry, started, number, "success", status, None, next_attempt_at=None)

    async def _failed(self, entry: OutboxRecord, started: float, number: int, exc: ConnectorError) -> None:
        outcome = _OUTCOME_BY_KIND.get(exc.kind, "reject")
        entry.attempts, entry.error_kind, entry.error = number, exc.kind, exc.message
        next_at: float | None = None
        if isinstance(exc, RetriableError) and number < self.settings.max_attempts:
            entry.state = "pending"
            next_at = time.time() + self._backoff(number, exc.retry_after)
        else:
            entry.state = "dead"
        await self._record(entry, started, number, outcome, exc.status, exc.message, next_attempt_at=next_at)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2 ** (attempt - 1))
        delay = self._random.uniform(0, ceiling)  # full jitter
        return max(delay, retry_after or 0.0)

    async def _record(
        self,
        entry: OutboxRecord,
        started: float,
        number: int,
        outcome: str,
        status: int | None,
        error: str | None,
        *,
        next_attempt_at: float | None,
    ) -> None:
        entry.updated_at = time.time()
        attempt = AttemptRecord(
            outbox_id=entry.id,
            number=number,
            started_at=started,
            duration_ms=round((entry.updated_at - started) * 1000, 3),
            outcome=outcome,  # type: ignore[arg-type]
            status=status,
            error=error,
        )
        transaction = await self.store.record_attempt(entry, attempt, next_attempt_at=next_attempt_at)
        if transaction.state in ("completed", "failed"):
            for future in self._waiters.pop(transaction.id, []):
                if not future.done():
                    future.set_result(transaction)
