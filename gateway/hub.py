"""The hub's working parts in one object: store, connectors, dispatcher, and the write path.

The write path is the one promise the hub makes: a transaction, its resources and its outbox entries
are stored in one atomic write *before* the client hears ``202 Accepted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from connectors import Connector
from connectors.clearinghouse import NumbersInterchanges, SequenceNumbers
from gateway.dispatcher import Dispatcher
from gateway.ids import new_id
from gateway.settings import Settings
from gateway.store import (
    HUB_DATABASE,
    OutboxRecord,
    RedisStore,
    ResourceRecord,
    SqliteStore,
    Store,
    TransactionRecord,
    TransactionSnapshot,
    WriteCondition,
)
from gateway.targets import build_connectors
from gateway.tracing import current_span_id, current_trace_id, current_traceparent
from policies.audit import AuditPush, InTransaction
from policies.idempotency import FinalStatement, FinalWrite

__all__ = ["Delivery", "Hub", "RecordsWithWork", "parse_prefer_wait"]

_POLL_FIRST_S, _POLL_MAX_S = 0.02, 0.25  # Prefer: wait while another process delivers
# delta-seconds only, the whole value: "wait=1e3" or "wait=1.5" is a preference not understood
# (ignored, as RFC 7240 asks), not a wait of one second.
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\"?)(\d+)\1(?=$|[,;\s])", re.IGNORECASE)


def parse_prefer_wait(prefer: str | None, ceiling: float) -> float | None:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), capped at ``ceiling``; ``None`` when absent."""
    match = _PREFER_WAIT.search(prefer) if prefer else None
    return min(float(match.group(2)), ceiling) if match else None


class RecordsWithWork(Protocol):
    """Records a write stores together with its work (``gateway.api._common.WithWork``)."""

    @property
    def idempotency_record(self) -> FinalWrite | FinalStatement | None: ...

    @property
    def audit_record(self) -> AuditPush | InTransaction | None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    target: str
    operation: str
    payload: bytes


@dataclass(slots=True)
class Hub:
    settings: Settings
    store: Store
    connectors: dict[str, Connector]
    dispatcher: Dispatcher = field(init=False)
    _draining: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.store, self.connectors, self.settings)

    @classmethod
    def open(cls, settings: Settings, store: Store | None = None) -> Hub:
        if store is None and settings.state_backend == "redis":
            store = RedisStore.from_url(
                settings.redis_url,
                prefix=f"{settings.redis_prefix}store:",
                max_connections=settings.dispatch_concurrency + 64,
            )
        store = store or SqliteStore(Path(settings.data_dir) / HUB_DATABASE, durability=settings.durability)
        connectors = build_connectors(settings)
        for target, connector in connectors.items():
            if isinstance(connector, NumbersInterchanges):  # one sequence per trading partner
                connector.numbers = SequenceNumbers(store.next_number, f"x12-interchange:{target}")
        return cls(settings=settings, store=store, connectors=connectors)

    def reply_numbers(self) -> SequenceNumbers:
        """Control numbers of the 999s the hub answers received X12 with (the hub is their sender)."""
        return SequenceNumbers(self.store.next_number, "x12-interchange:replies")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.settings.dispatcher_enabled:
            self.dispatcher.start()

    async def close(self) -> None:
        await self.dispatcher.stop()
        for connector in self.connectors.values():
            await connector.aclose()
        await self.store.close()

    def prepare(
        self,
        *,
        client_id: str,
        kind: str,
        resource: ResourceRecord,
        deliveries: list[Delivery],
        written_once: bool = False,
    ) -> tuple[TransactionRecord, list[OutboxRecord]]:
        """The records of a new piece of work, nothing written yet (so the answer can be built first).

        Deliveries of one resource to one target go one at a time, in order (their ``order_key``).
        ``written_once`` says no later work can deliver this resource again (its id was minted for
        this request): then there is no order to keep, and the store skips the queue it would keep.
        """
        now = time.time()
        transaction = TransactionRecord(
            id=resource.transaction_id or new_id("txn"),
            client_id=client_id,
            kind=kind,
            resource_type=resource.kind,
            resource_id=resource.id,
            state="accepted" if deliveries else "completed",
            trace_id=current_trace_id(),
            span_id=current_span_id(),
            created_at=now,
            updated_at=now,
        )
        outbox = [
            OutboxRecord(
                id=new_id("dlv"),
                transaction_id=transaction.id,
                target=d.target,
                operation=d.operation,
                payload=d.payload,
                external_ref=f"{transaction.id}:{d.target}:{d.operation}",
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
                traceparent=current_traceparent(),
                client_id=client_id,
                trace_id=transaction.trace_id,
                order_key=None if written_once else f"{d.target}:{resource.kind}:{resource.id}",
            )
            for d in deliveries
        ]
        return transaction, outbox

    async def commit(
        self,
        transaction: TransactionRecord,
        resources: list[ResourceRecord],
        outbox: list[OutboxRecord],
        records: RecordsWithWork | None = None,
        only_if: Mapping[tuple[str, str], WriteCondition] | None = None,
    ) -> None:
        """Store prepared work in one atomic write (with the idempotency record answering for it and
        the audit record of the call, when ``records`` has them) and wake the dispatcher. Raises the
        store's ``ResourceTaken`` (nothing written) for another client's resource, or one that does
        not meet its condition in ``only_if``."""
        idempotency_record = records.idempotency_record if records is not None else None
        audit_record = records.audit_record if records is not None else None
        await self.store.accept(transaction, resources, outbox, idempotency_record, audit_record, only_if)
        if outbox:
            self.dispatcher.wake()

    async def submit(
        self,
        *,
        client_id: str,
        kind: str,
        resource: ResourceRecord,
        deliveries: list[Delivery],
        extra_resources: list[ResourceRecord] | None = None,
        records: RecordsWithWork | None = None,
        only_if: Mapping[tuple[str, str], WriteCondition] | None = None,
    ) -> None:
        """Prepare and store the work, for a caller whose answer does not come from the records
        (the X12 remittance intake); the JSON write routes use ``accept_work``."""
        transaction, outbox = self.prepare(client_id=client_id, kind=kind, resource=resource, deliveries=deliveries)
        await self.commit(transaction, [resource, *(extra_resources or [])], outbox, records, only_if)

    def drain(self) -> None:
        """The server is shutting down: every ``Prefer: wait`` answers now (202) instead of at its end.

        Safe to call from a signal handler. Without it, the server's graceful timeout would cancel
        those requests and their clients would get a 500 for work that was accepted and stored.
        """
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._draining.set)

    async def settle(self, transaction_id: str, wait_s: float | None) -> TransactionSnapshot:
        """The transaction as it stands, after waiting up to ``wait_s`` for it to finish."""
        if wait_s and not self.dispatcher.running:
            return await self._poll(transaction_id, wait_s)
        future = self.dispatcher.watch(transaction_id)  # before reading, so no completion is missed
        try:
            snapshot = await self._snapshot(transaction_id)
            if not wait_s or self._draining.is_set() or snapshot[0].state in ("completed", "failed"):
                return snapshot
            # Our dispatcher resolves the future when it finishes the work; another process on this
            # store (a second hub, a dispatch worker) may finish it instead, and tells us nothing: so
            # the store is looked at too, every _POLL_MAX_S.
            deadline = time.monotonic() + wait_s
            draining = asyncio.ensure_future(self._draining.wait())
            try:
                while (left := deadline - time.monotonic()) > 0:
                    done, _ = await asyncio.wait(
                        (future, draining), timeout=min(left, _POLL_MAX_S), return_when=asyncio.FIRST_COMPLETED
                    )
                    if done:
                        break
                    snapshot = await self._snapshot(transaction_id)
                    if snapshot[0].state in ("completed", "failed"):
                        return snapshot
            finally:
                draining.cancel()
            return await self._snapshot(transaction_id)
        finally:
            self.dispatcher.unwatch(transaction_id, future)

    async def _poll(self, transaction_id: str, wait_s: float) -> TransactionSnapshot:
        """Another process delivers: nothing here will say when it is done, so look every so often."""
        deadline = time.monotonic() + wait_s
        interval = _POLL_FIRST_S
        while True:
            snapshot = await self._snapshot(transaction_id)
            left = deadline - time.monotonic()
            if snapshot[0].state in ("completed", "failed") or left <= 0 or self._draining.is_set():
                return snapshot
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._draining.wait(), min(interval, left))
            interval = min(interval * 2, _POLL_MAX_S)

    async def _snapshot(self, transaction_id: str) -> TransactionSnapshot:
        snapshot = await self.store.get_transaction(transaction_id)
        if snapshot is None:  # pragma: no cover - we stored it a moment ago
            raise LookupError(transaction_id)
        return snapshot
