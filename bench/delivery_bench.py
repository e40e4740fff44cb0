"""Delivery throughput: how fast the dispatcher empties a backlog into the ERP stub.

For each scenario, N journals are accepted through ``POST /v1/journals`` with the dispatcher off
(``BILLING_HUB_DISPATCHER_ENABLED=false``); the hub processes are stopped and started again with it
on, and the clock runs until every outbox entry is done. Everything is a real process on loopback:
the ERP stub (fresh per scenario), ``billing-hub serve`` (default settings otherwise: aiohttp
transport, 64 deliveries in flight, audit record per attempt, ``durability=full`` for SQLite).

Scenarios: ``embedded-1`` (SQLite store, one hub), ``redis-1`` (Redis store, one hub) and ``redis-2``
(two hubs sharing one Redis prefix, as behind a load balancer).

Reported per scenario:

* wall seconds from launching the hub(s) to the last delivery recorded (includes ~1 s start-up);
* deliveries/s over the ERP's own posting times: the whole drain (first to last ``posted_at``) and the
  sustained middle (10th to 90th percentile of ``posted_at``);
* CPU seconds per delivery of each process (hubs, ERP stub, redis-server) over the drain after the
  hub answered ``/health``, from /proc; the sum tells whether the box (2 cores here) was the limit;
* the ERP's check: N journals, each external reference exactly once.

    python bench/delivery_bench.py [--journals 3000] [--scenarios embedded-1,redis-1,redis-2]
                                   [--redis-url redis://127.0.0.1:6379/0] [--profile DIR]

``--profile DIR`` runs ``py-spy record`` (when installed) on each hub during the drain and writes
a flame graph (SVG) and the top functions (raw text) per hub into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _proc import cpu_seconds, free_port  # this directory is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "fixtures" / "policy.toml"
API_KEY = "alpha-key-0123456789"  # the test policy's client "alpha"
STUB_CODE = (
    "from connectors._stubkit import run_stub; from connectors.erp._stub import create_app; "
    "run_stub(create_app(), '127.0.0.1', {port})"
)
SCENARIOS = ("embedded-1", "redis-1", "redis-2")
START_TIMEOUT_S = 45.0


class BenchError(RuntimeError):
    pass


@dataclass
class Proc:
    name: str
    argv: list[str]
    port: int
    ready_path: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> Proc:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self) -> Proc:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=0.5).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise BenchError(f"{self.name} did not answer {self.ready_path} in {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def journal(reference: str) -> bytes:
    return json.dumps(
        {
            "ledger": "HOSPITAL-GL",
            "accounting_date": datetime.now().strftime("%Y-%m-15"),
            "currency": "USD",
            "description": "Patient payment batch",
            "external_reference": reference,
            "lines": [
                {"account": "1000", "cost_center": "CC-100", "debit": "125.00", "memo": "cash"},
                {"account": "1100", "cost_center": "CC-100", "credit": "125.00"},
            ],
        }
    ).encode()


async def preload(urls: list[str], references: list[str], concurrency: int) -> float:
    """Accept every journal (round-robin over the hubs); returns accepted journals per second."""
    headers = {"X-API-Key": API_KEY, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=u, headers=headers, timeout=30, limits=limits) for u in urls]
    queue = list(enumerate(references))
    queue.reverse()

    async def worker() -> None:
        while queue:
            i, reference = queue.pop()
            response = await clients[i % len(clients)].post("/v1/journals", content=journal(reference))
            if response.status_code != 202:
                raise BenchError(f"preload got {response.status_code}: {response.text[:300]}")

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        for client in clients:
            await client.aclose()
    return len(references) / (time.perf_counter() - started)


@dataclass
class Result:
    scenario: str
    journals: int
    accept_per_s: float
    wall_s: float
    span_per_s: float
    sustained_per_s: float
    cpu_ms: dict[str, float]  # per delivery, per process
    duplicates: int


def redis_pid(url: str) -> int | None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def run_scenario(name: str, count: int, redis_url: str, workdir: Path, profile: Path | None) -> Result:
    backend, instances = name.split("-")
    hubs_count = int(instances)
    stub_port = free_port()
    stub_argv = [sys.executable, "-c", STUB_CODE.format(port=stub_port)]
    erp = Proc("erp", stub_argv, stub_port, "/erp/health", {}, workdir / f"{name}-erp.log")
    prefix = f"bench-delivery-{uuid.uuid4().hex[:8]}:"
    hubs: list[Proc] = []
    for k in range(hubs_count):
        port = free_port()
        env = {
            "BILLING_HUB_DATA_DIR": str(workdir / f"{name}-data-{k}"),
            "BILLING_HUB_POLICY_FILE": str(POLICY),
            "BILLING_HUB_TARGETS": "erp",
            "BILLING_HUB_ERP_URL": erp.url,
            "BILLING_HUB_LOG_LEVEL": "WARNING",
            "BILLING_HUB_STATE_BACKEND": "redis" if backend == "redis" else "embedded",
            "BILLING_HUB_REDIS_URL": redis_url,
            "BILLING_HUB_REDIS_PREFIX": prefix,
        }
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        hubs.append(Proc(f"hub{k}", argv, port, "/health", env, workdir / f"{name}-hub{k}.log"))
    references = [f"bench-{name}-{i:06d}" for i in range(count)]
    spies: list[subprocess.Popen[bytes]] = []
    try:
        erp.launch().wait_ready()
        for hub in hubs:
            hub.env["BILLING_HUB_DISPATCHER_ENABLED"] = "false"
            hub.launch()
        for hub in hubs:
            hub.wait_ready()
        accept_per_s = asyncio.run(preload([h.url for h in hubs], references, 32))
        for hub in hubs:
            hub.stop()

        done = _done_counter(backend, hubs[0], redis_url, prefix, count)
        pids = {"erp stub": erp.pid}
        if backend == "redis" and (pid := redis_pid(redis_url)) is not None:
            pids["redis-server"] = pid
        launched = time.perf_counter()
        for hub in hubs:
            hub.env["BILLING_HUB_DISPATCHER_ENABLED"] = "true"
            hub.launch()
        for hub in hubs:
            hub.wait_ready()
            pids[f"{hub.name}"] = hub.pid
        if profile is not None and shutil.which("py-spy"):
            for hub in hubs:
                out = profile / f"{name}-{hub.name}.txt"
                command = ["py-spy", "record", "--pid", str(hub.pid), "--rate", "200", "--format", "raw"]
                command += ["--output", str(out), "--nonblocking"]
                spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ready_done = done()
        cpu_before = {label: cpu_seconds(pid) for label, pid in pids.items()}
        while (delivered := done()) < count:
            if time.perf_counter() - launched > 600:
                raise BenchError(f"{name}: only {delivered}/{count} delivered after 600 s")
            for hub in hubs:
                if hub.process is not None and hub.process.poll() is not None:
                    raise BenchError(f"{hub.name} died: {hub.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)
        wall_s = time.perf_counter() - launched
        cpu_after = {label: cpu_seconds(pid) for label, pid in pids.items()}
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        measured = max(1, count - ready_done)
        cpu_ms = {label: (cpu_after[label] - cpu_before[label]) * 1000 / measured for label in pids}

        items = httpx.get(f"{erp.url}/erp/journals", timeout=60).json()["items"]
        posted = Counter(item["external_reference"] for item in items)
        if set(posted) != set(references):
            raise BenchError(f"{name}: the ERP holds {len(posted)} of {count} references")
        times = sorted(datetime.fromisoformat(item["posted_at"]).timestamp() for item in items)
        span = max(times[-1] - times[0], 1e-3)
        lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
        return Result(
            scenario=name,
            journals=count,
            accept_per_s=accept_per_s,
            wall_s=wall_s,
            span_per_s=(len(times) - 1) / span,
            sustained_per_s=(len(times) * 8 // 10) / max(hi - lo, 1e-3),
            cpu_ms=cpu_ms,
            duplicates=sum(n - 1 for n in posted.values()),
        )
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
        for hub in hubs:
            hub.stop()
        erp.stop()
        if backend == "redis":
            _delete_prefix(redis_url, prefix)


def _done_counter(backend: str, hub: Proc, redis_url: str, prefix: str, count: int) -> Any:
    """A function returning how many outbox entries are done, read straight from the store."""
    if backend == "embedded":
        path = Path(hub.env["BILLING_HUB_DATA_DIR"]) / "hub.sqlite3"

        def sqlite_done() -> int:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return int(db.execute("select count(*) from outbox where state in ('done', 'dead')").fetchone()[0])
            finally:
                db.close()

        return sqlite_done
    import redis

    client = redis.Redis.from_url(redis_url)

    def redis_done() -> int:
        return count - int(client.zcard(f"{prefix}store:waiting"))

    return redis_done


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journals", type=int, default=3000)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--profile", type=Path, help="py-spy output directory (needs py-spy on PATH)")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        if not shutil.which("py-spy"):
            print("py-spy not on PATH: --profile ignored", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as tmp:
        for name in scenarios:
            print(f"{name}: preloading {args.journals} journals, then draining ...", flush=True)
            result = run_scenario(name, args.journals, args.redis_url, Path(tmp), args.profile)
            results.append(result)
            cpu = ", ".join(f"{label} {ms:.2f}" for label, ms in result.cpu_ms.items())
            print(
                f"  preloaded at {result.accept_per_s:,.0f}/s (one in-process httpx client; not a load test, see "
                f"api_bench.py); drained in {result.wall_s:.2f} s from launch; "
                f"delivered {result.span_per_s:,.0f}/s over the whole posting span, "
                f"{result.sustained_per_s:,.0f}/s sustained (middle 80 %); CPU ms per delivery: {cpu} "
                f"(total {sum(result.cpu_ms.values()):.2f}); duplicates in the ERP {result.duplicates}",
                flush=True,
            )
    print("\nscenario     journals  deliveries/s (span)  (sustained)  CPU ms/delivery (all processes)")
    for r in results:
        print(
            f"{r.scenario:<12} {r.journals:>8}  {r.span_per_s:>19,.0f}  {r.sustained_per_s:>11,.0f}  "
            f"{sum(r.cpu_ms.values()):>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
