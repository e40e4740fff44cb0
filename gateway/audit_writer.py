"""Audit records are written in batches by one background task.

Every governed call and every delivery attempt adds a record, and each append is a write to the
chain's head: done one by one (and on Redis with several round trips each) the appends fall behind
the calls they record. Here calls enqueue their entry and carry on; the writer chains whatever has
queued up in one append. The queue is bounded, so a store that cannot keep up slows the callers
down instead of losing records or growing without limit. ``flush`` waits until everything queued so
far is written (the audit read API calls it, so a caller reads its own records).

A call that stored work has its record stored with the work instead (``AuditLog.with_work``); on
Redis that record waits on a pending list until an append chains it, so such a call ``nudge``s the
writer, and the writer chains what is pending once when it starts (left by a process that died).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from policies.audit import AuditEntry, AuditLog

__all__ = ["AuditWriter"]

log = logging.getLogger("billing_hub.audit")
MAX_BATCH = 500


class AuditWriter:
    def __init__(self, audit_log: AuditLog, capacity: int = 10_000) -> None:
        self.audit_log = audit_log
        # None in the queue: append nothing of its own, but chain what is pending.
        self._queue: asyncio.Queue[AuditEntry | None] = asyncio.Queue(maxsize=capacity)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")
        if self.audit_log.chains_pending:
            self._queue.put_nowait(None)  # chain what a process that died left pending

    async def nudge(self) -> None:
        """Chain what is pending soon (a record was just stored with its work), where records stored
        with work wait to be chained. One queued nudge is enough: the writer chains everything
        pending when it gets to it, so a call whose nudge is already queued adds none (a queue put
        and a wake-up of the writer per accepted write, 1 % of its CPU)."""
        if self._task is not None and self.audit_log.chains_pending and self._queue.empty():
            self._queue.put_nowait(None)

    async def add(self, entry: AuditEntry) -> None:
        if self._task is None:  # not started (tools, tests): write straight through
            await self.audit_log.append(entry)
            return
        await self._queue.put(entry)

    async def flush(self) -> None:
        if self._task is not None:
            await self._queue.join()

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=10)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            entries = [entry for entry in batch if entry is not None]
            try:
                await self.audit_log.append_many(entries)
            except Exception as exc:  # the calls have been answered; losing their records must be loud
                log.error("audit append of %d records failed: %s", len(entries), type(exc).__name__)
            finally:
                for _ in batch:
                    self._queue.task_done()
