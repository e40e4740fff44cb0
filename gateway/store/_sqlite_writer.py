"""Group commit for SQLite: one thread owns the write connection and commits batches.

A durable commit costs an fsync (about 0.4 ms on these disks). Doing it on the event loop would stall
every request for that long; doing one per request would cap the hub at a few thousand writes a second.
Instead each write is a function queued to this thread, which runs everything queued so far inside
one transaction and commits once; when one write in a batch fails, the batch is redone with a
savepoint per write, so that one failing write does not undo the others. Callers' futures resolve
only after the commit, so "accepted" still means "on disk".
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SqliteWriter", "connect"]

T = TypeVar("T")
_MAX_BATCH = 256
_STOP = object()


def connect(path: Path, durability: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("pragma journal_mode=wal")
    db.execute(f"pragma synchronous={'full' if durability == 'full' else 'normal'}")
    db.execute("pragma foreign_keys=on")
    db.execute("pragma busy_timeout=5000")
    return db


class SqliteWriter:
    def __init__(self, path: Path, durability: str) -> None:
        self._db = connect(path, durability)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def run_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """For start-up only (schema), before any async caller exists."""
        return work(self._db)

    async def submit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((work, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        self._db.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[Any]) -> None:
        try:
            outcomes = self._all_at_once(batch)
        except Exception:
            outcomes = self._one_by_one(batch)  # something in the batch failed: isolate it
        for (_, future, loop), (ok, value) in zip(batch, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    def _all_at_once(self, batch: list[Any]) -> list[tuple[bool, Any]]:
        """The common case, with the fewest statements: every write in one transaction."""
        db = self._db
        db.execute("begin immediate")
        try:
            outcomes = [(True, work(db)) for work, _, _ in batch]
            db.execute("commit")
        except BaseException:
            if db.in_transaction:
                db.execute("rollback")
            raise
        return outcomes

    def _one_by_one(self, batch: list[Any]) -> list[tuple[bool, Any]]:
        """A savepoint per write, so one failing write does not undo the others."""
        outcomes: list[tuple[bool, Any]] = []
        db = self._db
        try:
            db.execute("begin immediate")
            for work, _, _ in batch:
                db.execute("savepoint one")
                try:
                    outcomes.append((True, work(db)))
                    db.execute("release one")
                except Exception as exc:
                    db.execute("rollback to one")
                    db.execute("release one")
                    outcomes.append((False, exc))
            db.execute("commit")
        except Exception as exc:  # the commit itself failed: nothing in the batch is durable
            if db.in_transaction:
                db.execute("rollback")
            outcomes = [(False, exc)] * len(batch)
        return outcomes


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
