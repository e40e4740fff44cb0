"""Delivery resilience against real processes: SIGKILL chaos, an ERP outage, graceful shutdown.

The hub runs as ``billing-hub serve`` with the embedded SQLite store in a temporary data directory,
the ERP stub as its only target; both are killed, stopped and restarted on the same ports. The
client side retries exactly as a careful client would (same Idempotency-Key, same bytes), so every
journal is eventually accepted, and the ERP stub's ledger is the ground truth for "exactly once".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests import factories
from tests.conftest import KEY
from tests.integration._harness import (
    Proc,
    cleanup,
    clear_faults,
    erp_holding,
    erp_references,
    erp_requests,
    hub_env,
    poll,
    set_faults,
    wait_completed,
)

pytestmark = pytest.mark.integration

SEED = 20261128
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Job:
    reference: str
    key: str
    body: bytes


def _jobs(rng: random.Random, prefix: str, count: int) -> list[Job]:
    jobs = []
    for i in range(count):
        reference = f"{prefix}-{i:04d}"
        body = json.dumps(factories.journal(reference, amount=f"{rng.randint(1, 99999) / 100:.2f}")).encode()
        jobs.append(Job(reference, str(uuid.UUID(int=rng.getrandbits(128), version=4)), body))
    return jobs


@dataclass
class ClientLog:
    """What the client saw: the accepted transaction per reference, and every retry cause."""

    accepted: dict[str, str] = field(default_factory=dict)
    replayed: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    progress: asyncio.Event = field(default_factory=asyncio.Event)


async def _submit_until_accepted(
    client: httpx.AsyncClient, job: Job, log: ClientLog, slots: asyncio.Semaphore, rng: random.Random
) -> None:
    """POST until a 2xx, retrying connection errors, 409 (first attempt still in flight) and 5xx."""
    delay = 0.05
    headers = {"Idempotency-Key": job.key, "content-type": "application/json"}
    while True:
        async with slots:
            try:
                response: httpx.Response | None = await client.post("/v1/journals", content=job.body, headers=headers)
            except httpx.TransportError as exc:
                response = None
                log.retries[type(exc).__name__] += 1
        if response is not None:
            if response.status_code in (200, 202):
                log.accepted[job.reference] = response.json()["id"]
                log.replayed += response.headers.get("idempotent-replayed") == "true"
                log.progress.set()
                return
            assert response.status_code in RETRY_STATUSES, response.text
            log.retries[str(response.status_code)] += 1
        await asyncio.sleep(delay * rng.uniform(0.5, 1.0))  # client back-off, not waiting for an event
        delay = min(delay * 2, 1.0)


async def _kill_at(hub: Proc, log: ClientLog, points: list[int], rng: random.Random) -> list[int]:
    """SIGKILL the hub once the client has had ``point`` journals accepted, for each point; restart it."""
    killed_at = []
    for point in points:
        while len(log.accepted) < point:
            log.progress.clear()
            await log.progress.wait()
        await asyncio.sleep(rng.uniform(0.0, 0.05))  # a random moment inside the following work
        assert hub.alive(), hub.log_tail()
        hub.kill()
        killed_at.append(len(log.accepted))
        await asyncio.to_thread(hub.start)
    return killed_at


async def _chaos(hub: Proc, jobs: list[Job], points: list[int], rng: random.Random) -> tuple[ClientLog, list[int]]:
    log = ClientLog()
    slots = asyncio.Semaphore(8)
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=hub.url, headers={"X-API-Key": KEY}, timeout=10, limits=limits) as client:
        clients = [_submit_until_accepted(client, job, log, slots, random.Random(rng.random())) for job in jobs]
        killer = _kill_at(hub, log, points, random.Random(rng.random()))
        # One gather: a failed restart surfaces at once instead of after the clients' deadline.
        killed_at, *_ = await asyncio.wait_for(asyncio.gather(killer, *clients), timeout=180)
    return log, cast("list[int]", killed_at)


def test_sigkill_at_random_moments_loses_nothing_and_posts_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    count, kills = 500, 6
    erp = Proc.erp(tmp_path)
    hub = Proc.hub("hub", tmp_path, hub_env(erp.url, tmp_path / "data"))
    with cleanup(hub, erp):
        erp.start()
        hub.start()
        jobs = _jobs(rng, f"chaos-{SEED}", count)
        points = sorted(rng.sample(range(count // 20, count - count // 10), kills))
        started = time.monotonic()
        log, killed_at = asyncio.run(_chaos(hub, jobs, points, rng))
        sent_s = time.monotonic() - started

        assert len(killed_at) == kills
        assert set(log.accepted) == {job.reference for job in jobs}  # every journal got its 2xx
        references = poll(
            f"the ERP to hold {count} journals",
            erp_holding(erp, count),
            timeout_s=60,
            every_s=0.25,
        )
        drained_s = time.monotonic() - started
        posted = Counter(references)
        assert [ref for ref, n in posted.items() if n > 1] == []  # nothing posted twice
        assert set(posted) == set(log.accepted)  # nothing missing, nothing the hub did not accept
        with hub.client() as api:
            wait_completed(api, list(log.accepted.values()))

        # The store agrees, including transactions whose 202 a kill swallowed (their client retried
        # and got a transaction of its own once the Idempotency-Key's in-flight lease ran out).
        def store_settled() -> Counter[str] | None:
            transactions, outbox = _store_states(tmp_path / "data" / "hub.sqlite3")
            return transactions if set(outbox) == {"done"} else None

        stored = poll("every stored delivery done", store_settled, timeout_s=30, every_s=0.1)
        assert set(stored) == {"completed"}, stored
        # Every stored transaction has the audit record of the call that stored it, kills or not:
        # the record is written with the work, not queued after the answer.
        transaction_ids, audited = _audited_writes(tmp_path / "data" / "hub.sqlite3")
        assert transaction_ids - audited == set()
        # And every delivery attempt the store holds has its audit record: it is stored with the attempt.
        attempts, audited_attempts = _audited_attempts(tmp_path / "data" / "hub.sqlite3")
        assert attempts == audited_attempts
        with hub.client() as api:
            assert api.get("/v1/admin/dead-letters").json()["items"] == []
        duplicates = sum(1 for r in erp_requests(erp) if r["method"] == "POST" and r["status"] == 200)
        print(
            f"\nchaos: {count} journals, SIGKILL after {killed_at} accepted; all accepted in {sent_s:.1f} s, "
            f"in the ERP after {drained_s:.1f} s; client retries {dict(log.retries)}, replayed answers "
            f"{log.replayed}; hub transactions {stored.total()} ({stored.total() - count} orphaned by a kill); "
            f"posts the ERP answered as duplicates (last 1000 requests) {duplicates}"
        )


def test_a_retry_after_a_crash_mid_wait_replays_the_stored_work(tmp_path: Path) -> None:
    """SIGKILL while a ``Prefer: wait`` request waits for work it has stored: the work has the record
    of the call that stored it, the client's retry (same key, same bytes) is answered with that
    work's 202, and no second transaction is stored."""
    erp = Proc.erp(tmp_path)
    hub = Proc.hub("hub", tmp_path, hub_env(erp.url, tmp_path / "data"))
    (job,) = _jobs(random.Random(SEED + 3), "mid-wait", 1)
    headers = {"content-type": "application/json", "Idempotency-Key": job.key, "Prefer": "wait=20"}

    async def crash_mid_wait() -> None:
        async with httpx.AsyncClient(base_url=hub.url, headers={"X-API-Key": KEY}, timeout=30) as client:
            waiter = asyncio.create_task(client.post("/v1/journals", content=job.body, headers=headers))
            await asyncio.to_thread(poll, "a delivery attempt", lambda: erp_requests(erp), 10)
            hub.kill()
            with pytest.raises(httpx.TransportError):
                await waiter

    with cleanup(hub, erp):
        erp.start()
        hub.start()
        set_faults(erp, error_status=503, path_prefix="/erp/journals")  # the work cannot finish yet
        asyncio.run(crash_mid_wait())
        clear_faults(erp)
        stored, audited = _audited_writes(tmp_path / "data" / "hub.sqlite3")
        assert len(stored) == 1
        assert audited == stored  # the killed call's record was stored with its work
        hub.start()
        with hub.client() as api:
            retry = api.post("/v1/journals", content=job.body, headers=headers)
            assert retry.status_code == 202, retry.text
            assert retry.headers["idempotent-replayed"] == "true"
            (done,) = wait_completed(api, [retry.json()["id"]])
        assert retry.headers["location"] == f"/v1/transactions/{done['id']}"
        transactions, _ = _audited_writes(tmp_path / "data" / "hub.sqlite3")
        assert transactions == {done["id"]}  # the work the crashed request stored, and nothing else
        assert erp_references(erp) == [job.reference]


@contextlib.contextmanager
def _store_file(path: Path) -> Iterator[sqlite3.Connection]:
    """The hub's SQLite file, read-only (WAL: the running hub keeps writing)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield db
    finally:
        db.close()


def _audited_writes(path: Path) -> tuple[set[str], set[str]]:
    """Every transaction id in the hub's file, and those an accepted POST's audit record names."""
    with _store_file(path) as db:
        transactions = {row[0] for row in db.execute("select id from transactions")}
        sql = "select transaction_id from audit_log where operation = 'postJournal' and status = 202"
        return transactions, {row[0] for row in db.execute(sql)}


def _audited_attempts(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Attempts per outbox entry in the store, and delivery audit records per outbox entry."""
    with _store_file(path) as db:
        attempts = Counter(row[0] for row in db.execute("select outbox_id from attempts"))
        sql = "select resource_id from audit_log where operation like 'deliver:%'"
        return attempts, Counter(row[0] for row in db.execute(sql))


def _store_states(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Transaction and outbox states straight from the hub's file."""
    with _store_file(path) as db:
        transactions = Counter(dict(db.execute("select state, count(*) from transactions group by state").fetchall()))
        outbox = Counter(dict(db.execute("select state, count(*) from outbox group by state").fetchall()))
    return transactions, outbox


# --- outage -------------------------------------------------------------------------------------

OUTAGE_PHASES: list[tuple[str, dict[str, Any] | None, tuple[str, ...]]] = [
    # (name, the ERP stub's fault plan or None for "stub stopped", what the hub may record for it)
    ("503", {"error_status": 503, "error_rate": 1.0}, ("HTTP 503",)),
    # The stub hangs past the hub's 1 s timeout; the 503 after the hang keeps it from posting late.
    ("timeout", {"hang_seconds": 5, "error_status": 503}, ("timed out",)),
    # A response cut off mid-body: httpx-aiohttp raises ReadError ("transport error").
    ("drop", {"drop_rate": 1.0}, ("transport error", "connection dropped")),
    # httpx-aiohttp 0.2.0 maps a refused connect to httpx.ConnectTimeout; the connectors see the
    # refusal under it and record it as one.
    ("refused", None, ("connection refused",)),
]


def _histories(api: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    return [api.get(f"/v1/transactions/{txn}").json() for txn in ids]


def _attempts(transactions: list[dict[str, Any]], since: float = 0.0) -> list[dict[str, Any]]:
    return [
        a
        for t in transactions
        for d in t["deliveries"]
        for a in d["history"]
        if datetime.fromisoformat(a["started_at"]).timestamp() >= since
    ]


def test_erp_outage_keeps_work_queued_opens_the_circuit_and_delivers_everything_after(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    per_phase = 25
    erp = Proc.erp(tmp_path)
    hub = Proc.hub("hub", tmp_path, hub_env(erp.url, tmp_path / "data"))
    accepted: dict[str, str] = {}
    breaker_states: set[str] = set()
    ready_details: dict[str, str] = {}
    phase_errors: dict[str, Counter[str]] = {}
    with cleanup(hub, erp), hub.client() as api:
        erp.start()
        hub.start()
        assert api.get("/ready").status_code == 200
        outage_started = time.monotonic()
        for name, faults, signatures in OUTAGE_PHASES:
            phase_started = time.time()
            if faults is None:
                # Nothing got through the faults (the ledger list itself is behind them): so the
                # stub, whose ledger lives in memory, loses nothing when it stops.
                assert not [r for r in erp_requests(erp) if r["path"] == "/erp/journals" and r["status"] in (200, 201)]
                erp.stop()
            else:
                set_faults(erp, **faults, seed=rng.randrange(2**31))
            for job in _jobs(rng, f"outage-{name}", per_phase):
                response = api.post("/v1/journals", content=job.body, headers={"content-type": "application/json"})
                assert response.status_code == 202, response.text
                accepted[job.reference] = response.json()["id"]

            ready = api.get("/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "degraded"
            assert ready.json()["connectors"]["erp"]["ok"] is False
            ready_details[name] = ready.json()["connectors"]["erp"]["detail"]
            breaker_states.add(ready.json()["connectors"]["erp"]["circuit"])  # /ready shows the circuit too

            def attempted_in_this_phase(
                since: float = phase_started, sigs: tuple[str, ...] = signatures
            ) -> list[dict[str, Any]] | None:
                breaker_states.add(api.get("/v1/admin/connectors").json()["erp"]["state"])
                transactions = _histories(api, list(accepted.values()))
                hit = any(any(s in (a["error"] or "") for s in sigs) for a in _attempts(transactions, since))
                return transactions if hit else None

            # The phase lasts until the dispatcher has spent an attempt on this failure and seen it as such.
            transactions = poll(
                f"an attempt failing with {signatures} in the {name} phase", attempted_in_this_phase, 20, 0.2
            )
            attempts = _attempts(transactions, phase_started)
            assert {a["outcome"] for a in attempts} == {"retry"}  # every failure in the outage was retriable
            phase_errors[name] = Counter(a["error"].split(" (")[0] for a in attempts)
            assert {t["state"] for t in transactions} <= {"accepted", "delivering"}, "accepted work failed"
            assert api.get("/v1/admin/dead-letters").json()["items"] == []
        outage_s = time.monotonic() - outage_started

        assert breaker_states & {"open", "half_open"}, f"the circuit never opened: {breaker_states}"
        erp.start()  # recovery: a fresh stub on the same port, no faults
        recovered = time.monotonic()
        references = poll(
            f"the ERP to hold {len(accepted)} journals",
            erp_holding(erp, len(accepted)),
            timeout_s=30,
            every_s=0.2,
        )
        delivered_s = time.monotonic() - recovered
        posted = Counter(references)
        assert len(accepted) == 4 * per_phase
        assert len(references) == len(accepted)
        assert set(posted) == set(accepted)
        assert max(posted.values()) == 1
        transactions = wait_completed(api, list(accepted.values()))
        assert api.get("/ready").status_code == 200
        assert poll(
            "the circuit to close", lambda: api.get("/v1/admin/connectors").json()["erp"]["state"] == "closed", 10
        )
        attempts_per_delivery = [d["attempts"] for t in transactions for d in t["deliveries"]]
        # The half-open probes went to different deliveries: none spent its budget probing for the rest.
        failed_per_delivery = [
            sum(a["outcome"] == "retry" for a in d["history"]) for t in transactions for d in t["deliveries"]
        ]
        assert max(failed_per_delivery) <= 2, Counter(failed_per_delivery)
        print(
            f"\noutage: {len(accepted)} accepted over {outage_s:.1f} s of outage; breaker states seen "
            f"{sorted(breaker_states)}; /ready said {ready_details}; attempts per phase {phase_errors}; "
            f"all delivered {delivered_s:.1f} s after recovery; attempts per delivery max "
            f"{max(attempts_per_delivery)}, total {sum(attempts_per_delivery)}"
        )


# --- graceful shutdown --------------------------------------------------------------------------


def test_sigterm_releases_in_flight_deliveries_and_exits_within_the_bound(tmp_path: Path) -> None:
    grace_s, lease_s = 2.0, 90.0
    erp = Proc.erp(tmp_path)
    env = hub_env(
        erp.url,
        tmp_path / "data",
        BILLING_HUB_SHUTDOWN_GRACE_S=str(grace_s),
        BILLING_HUB_CONNECTOR_TIMEOUT_S="60",  # the hung calls stay in flight until shutdown
        BILLING_HUB_LEASE_S=str(lease_s),  # a redelivery after restart proves a release, not an expiry
    )
    hub = Proc.hub("hub", tmp_path, env)
    rng = random.Random(SEED + 2)
    jobs = _jobs(rng, "graceful", 11)
    with cleanup(hub, erp):
        erp.start()
        hub.start()
        set_faults(erp, hang_seconds=30, path_prefix="/erp/journals")
        with hub.client() as api:
            ids = [
                api.post("/v1/journals", content=job.body, headers={"content-type": "application/json"}).json()["id"]
                for job in jobs[:10]
            ]
        poll(
            "10 deliveries in flight at the ERP",
            lambda: sum(r["method"] == "POST" for r in erp_requests(erp)) >= 10,
            timeout_s=10,
        )

        # One client is still waiting on its answer (Prefer: wait) when the SIGTERM comes.
        async def waiting_client() -> httpx.Response | Exception:
            async with httpx.AsyncClient(base_url=hub.url, headers={"X-API-Key": KEY}, timeout=60) as client:
                try:
                    return await client.post(
                        "/v1/journals",
                        content=jobs[10].body,
                        headers={"content-type": "application/json", "Prefer": "wait=30"},
                    )
                except httpx.TransportError as exc:
                    return exc

        async def sigterm_while_waiting() -> tuple[float, httpx.Response | Exception, bool]:
            waiter = asyncio.create_task(waiting_client())
            await asyncio.to_thread(
                poll,
                "the 11th delivery in flight",
                lambda: sum(r["method"] == "POST" for r in erp_requests(erp)) >= 11,
                10,
            )
            exit_task = asyncio.create_task(asyncio.to_thread(hub.terminate, 60))
            # While it shuts down, the hub stops accepting: a new connection is refused before it exits.
            refused_while_alive = False
            # Every probe opens its own connection: a kept-alive one would be closed by the shutdown
            # under a probe in flight (a read error), which says nothing about new connections.
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=1, limits=no_reuse) as fresh:
                while not exit_task.done():
                    try:
                        await fresh.get(f"{hub.url}/health")
                    except httpx.ConnectError:
                        refused_while_alive = not exit_task.done()
                        break
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        pass  # connected while the listener closed, then reset: probe again
                    await asyncio.sleep(0.02)
            return await exit_task, await waiter, refused_while_alive

        exit_s, answer, refused = asyncio.run(sigterm_while_waiting())
        assert refused, "the hub still accepted connections after SIGTERM"
        # The waiting client is answered at once with what is true: accepted, not finished.
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
        # Bound: uvicorn's graceful timeout for open requests (the grace), then the dispatcher's grace
        # for in-flight deliveries, plus slack for the process's own shutdown.
        bound_s = 2 * grace_s + 2.0
        assert exit_s <= bound_s, f"exit took {exit_s:.1f} s, bound {bound_s} s:\n{hub.log_tail()}"
        assert exit_s >= grace_s  # the in-flight deliveries were given their grace

        clear_faults(erp)  # (the ledger list is behind the fault plan too)
        assert erp_references(erp) == []  # nothing finished: the stub was still hanging
        restarted = time.monotonic()
        hub.start()
        references = poll(
            "the ERP to hold all 11 journals",
            erp_holding(erp, 11),
            timeout_s=20,
            every_s=0.1,
        )
        redelivered_s = time.monotonic() - restarted
        assert redelivered_s < lease_s / 2  # released at shutdown: nobody waited for the lease to run out
        assert sorted(references) == sorted(job.reference for job in jobs)
        with hub.client() as api:
            for transaction in wait_completed(api, ids):
                (delivery,) = transaction["deliveries"]
                # The attempt cut short by the shutdown does not count: one attempt, a success.
                assert delivery["attempts"] == 1, delivery
                assert [a["outcome"] for a in delivery["history"]] == ["success"]
        print(
            f"\ngraceful: SIGTERM with 11 deliveries hung and one Prefer: wait request open -> exit in "
            f"{exit_s:.2f} s (bound {bound_s} s); the waiting client got {answer.status_code}; "
            f"all 11 in the ERP {redelivered_s:.1f} s after restart"
        )
