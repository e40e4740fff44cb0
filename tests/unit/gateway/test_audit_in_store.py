"""The audit chain kept in the hub's SQLite store, appended through the store's group commit."""

import asyncio
import sqlite3
import time
from pathlib import Path

from gateway.store import HUB_DATABASE, SqliteStore
from policies.audit import AuditEntry, SqliteAuditLog, verify_log


async def test_concurrent_appends_through_the_writer_form_one_chain(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / HUB_DATABASE, durability="normal")
    log = SqliteAuditLog(tmp_path / HUB_DATABASE, durability="normal", submit=store.submit)
    try:
        entries = [
            AuditEntry(
                client_id="c",
                operation=f"op{i}",
                resource_id=None,
                outcome="ok",
                status=200,
                trace_id=None,
                at=time.time(),
            )
            for i in range(60)
        ]
        records = await asyncio.gather(*(log.append(e) for e in entries))
        assert sorted(r.seq for r in records) == list(range(1, 61))
        result = await verify_log(log)
        assert (result.ok, result.checked) == (True, 60)
        with sqlite3.connect(tmp_path / HUB_DATABASE) as db:  # the same file as the transactions
            assert {row[0] for row in db.execute("select name from sqlite_master")} >= {"audit_log", "outbox"}
            db.execute("update audit_log set outcome = 'forged' where seq = 30")
        broken = await verify_log(log)
        assert (broken.ok, broken.first_bad_seq) == (False, 30)
    finally:
        await log.aclose()
        await store.close()
