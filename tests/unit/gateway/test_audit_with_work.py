"""The audit record of a call that stores work is stored with that work, not queued after the answer.

Queued records are chained a moment after the call is answered; a process killed in that moment
lost them, so an accepted journal could exist with no record of the call that created it. Here the
audit writer's queue is replaced by a recorder that writes nothing, standing in for a process that
dies right after answering: a fresh audit log on the same storage (what the next process opens)
must still hold the record of every 202, a ``Prefer: wait`` call's included (the 202 it would answer
then). Calls that store nothing are still queued, and so is a waiting call's final 200: the recorder
sees them.
Both backends: Redis (the store's script pushes the entry; the next append chains it) and the
embedded SQLite store (chained in the group-commit transaction).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import HUB_DATABASE
from policies.audit import AuditEntry, AuditLog, AuditRecord, RedisAuditLog, SqliteAuditLog, verify_log
from tests import factories
from tests.conftest import KEY, TEST_POLICY

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
FIXTURES = Path(__file__).parents[2] / "fixtures" / "x12"


@dataclass
class Hub:
    client: TestClient[Any]
    settings: Settings
    queued: list[AuditEntry] = field(default_factory=list)

    def records_after_restart(self) -> tuple[list[AuditRecord], bool]:
        """What a new process finds in the audit log (chaining what was left pending), and whether
        the chain verifies."""

        async def read() -> tuple[list[AuditRecord], bool]:
            log: AuditLog
            if self.settings.state_backend == "redis":
                client = Redis.from_url(REDIS_URL)
                log = RedisAuditLog(client, prefix=f"{self.settings.redis_prefix}audit:")
                await log.append_many([])
            else:
                log = SqliteAuditLog(Path(self.settings.data_dir) / HUB_DATABASE, durability="normal")
            try:
                return [r async for r in log.iterate()], (await verify_log(log)).ok
            finally:
                await log.aclose()
                if self.settings.state_backend == "redis":
                    await client.aclose()

        return asyncio.run(read())


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def hub(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> Iterator[Hub]:
    settings = Settings(
        data_dir=str(tmp_path),
        dispatcher_enabled=False,  # nothing delivers: no delivery records in the log
        policy_file=str(TEST_POLICY),
        targets="ehr,erp",
        state_backend=request.param,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        made = Hub(client, settings)
        writer = client.app.state.governance.audit_writer

        async def add(entry: AuditEntry) -> None:
            made.queued.append(entry)  # and writes nothing: the process died after answering

        async def nudge() -> None:
            """Nothing chains what the store left pending: the next process will."""

        writer.add, writer.nudge = add, nudge
        client.headers["X-API-Key"] = KEY
        yield made


def test_every_accepted_write_is_audited_with_its_work(hub: Hub) -> None:
    journal = hub.client.post("/v1/journals", json=factories.journal("AUDIT-WORK-1"))
    idempotent = hub.client.post(
        "/v1/journals", json=factories.journal("AUDIT-WORK-2"), headers={"Idempotency-Key": "audit-work-2"}
    )
    account = hub.client.put("/v1/accounts/ACC-AUDIT-1", json=factories.account_details())
    x12 = hub.client.post(
        "/v1/remittances",
        content=(FIXTURES / "835_full.x12").read_bytes(),
        headers={"content-type": "application/edi-x12", "Idempotency-Key": "audit-work-x12"},
    )
    answers = [journal, idempotent, account, x12]
    assert [a.status_code for a in answers] == [202, 202, 202, 201], [a.text for a in answers]
    assert hub.queued == []  # not one of them waited in the queue

    records, chain_ok = hub.records_after_restart()
    assert chain_ok
    assert [(r.operation, r.status, r.outcome, r.client_id) for r in records] == [
        ("postJournal", 202, "ok", "alpha"),
        ("postJournal", 202, "ok", "alpha"),
        ("putAccount", 202, "ok", "alpha"),
        ("postRemittance", 201, "ok", "alpha"),
    ]
    assert [r.transaction_id for r in records] == [a.headers["location"].rsplit("/", 1)[-1] for a in answers]
    assert records[2].resource_id is not None
    assert "ACC-AUDIT-1" not in records[2].resource_id  # a business id is audited as its hash


def test_calls_that_store_nothing_are_still_queued(hub: Hub) -> None:
    refused = hub.client.post("/v1/journals", content=b"{}", headers={"content-type": "application/json"})
    replayed = [
        hub.client.post("/v1/journals", json=factories.journal("AUDIT-WORK-3"), headers={"Idempotency-Key": "k3"})
        for _ in range(2)
    ]
    assert refused.status_code == 400
    assert replayed[1].headers["idempotent-replayed"] == "true"
    assert [(e.operation, e.status) for e in hub.queued] == [
        ("postJournal", 400),
        ("postJournal", 202),  # the replay: its work was stored by the first call, audited with it
    ]
    records, _ = hub.records_after_restart()
    assert [r.transaction_id for r in records] == [replayed[0].headers["location"].rsplit("/", 1)[-1]]


def test_a_waiting_write_stores_the_record_of_its_202_with_its_work(hub: Hub) -> None:
    """A process killed while a ``Prefer: wait`` call waits must not leave the call's work without
    its record: the 202 it would answer is recorded with the work. A call whose work finishes in
    time answers 200 instead, and that answer gets a record of its own, queued."""
    wait = {"Prefer": "wait=1"}
    timed_out = hub.client.post("/v1/journals", json=factories.journal("AUDIT-WORK-4"), headers=wait)
    finished = hub.client.post("/v1/remittances", json=factories.remittance(), headers=wait)  # no delivery
    assert timed_out.status_code == 202, timed_out.text  # nothing delivers here: the wait runs out
    assert finished.status_code == 200, finished.text
    assert [(e.operation, e.status) for e in hub.queued] == [("postRemittance", 200)]

    records, chain_ok = hub.records_after_restart()
    assert chain_ok
    assert [(r.operation, r.status, r.transaction_id) for r in records] == [
        ("postJournal", 202, timed_out.headers["location"].rsplit("/", 1)[-1]),
        ("postRemittance", 202, finished.headers["location"].rsplit("/", 1)[-1]),
    ]
    # The two records of the call that answered 200 are one call's: they share its trace id.
    assert hub.queued[0].trace_id == records[1].trace_id == finished.headers["x-trace-id"]
