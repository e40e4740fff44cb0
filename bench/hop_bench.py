"""CPU cost of one connector hop: httpx's own transport vs httpx on aiohttp vs raw aiohttp.

The hub's connectors talk to the systems of record through an ``httpx.AsyncClient`` made by
``connectors._http.make_client``; its transport is either httpx's default ``AsyncHTTPTransport`` or
``httpx_aiohttp.AiohttpTransport``. This measures, in the client process, the CPU time per request
(``time.process_time()``) and the wall time per request for:

* (a) ``make_client(..., transport="httpx")``  - httpx's default transport (httpcore);
* (b) ``make_client(..., transport="aiohttp")`` - the httpx API on aiohttp (the hub's default);
* (c) a raw ``aiohttp.ClientSession``          - the floor, for reference;

each against the same ERP stub process (a separate process, see ``connectors/erp/_stub.py``), with
sequential requests on one kept-alive connection, for two operations: ``GET /erp/health`` (tiny) and
``POST /erp/journals`` with a ~1 KB JSON journal (as the ERP connector sends it: ``json=`` body plus an
``x-external-reference`` header, each journal with its own reference so every post is a 201). The
measured requests are split into rounds that interleave the clients in rotating order, so that a noisy
neighbour hits all three alike; the table gives the total and the per-round spread.

    python bench/hop_bench.py [--requests 3000] [--warmup 300] [--rounds 3] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _proc import cpu_seconds, free_port  # this directory is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
STUB_CODE = (
    "from connectors._stubkit import run_stub; from connectors.erp._stub import create_app; "
    "run_stub(create_app(), '127.0.0.1', {port})"
)
START_TIMEOUT_S = 30.0

Send = Callable[[str, str, dict[str, Any] | None, dict[str, str]], Awaitable[int]]


def journal(reference: str) -> dict[str, Any]:
    """A balanced journal of about 1 KB of JSON, shaped like the ERP connector's body."""
    memo = "patient payment applied to account AC-{:04d}, remit trace 1EFT{:08d}"
    lines: list[dict[str, Any]] = [
        {"account": "1000", "cost_center": "CC-100", "debit": "482.35", "credit": None, "memo": "lockbox"}
    ]
    lines += [
        {
            "account": "1100",
            "cost_center": "CC-100",
            "debit": None,
            "credit": amount,
            "memo": memo.format(i, i),
        }
        for i, amount in enumerate(["120.00", "95.10", "88.25", "74.00", "60.00", "45.00"], start=1)
    ]
    return {
        "ledger": "PRIMARY",
        "accounting_date": datetime.now(UTC).date().isoformat(),
        "currency": "USD",
        "description": "lockbox batch 2024-11-02: patient payments applied to accounts receivable",
        "external_reference": reference,
        "lines": lines,
    }


# --- the three clients -----------------------------------------------------------------------------


@dataclass
class Client:
    name: str
    send: Send
    close: Callable[[], Awaitable[None]]


def httpx_client(base_url: str, transport: str) -> Client:
    from connectors._http import make_client

    client = make_client(base_url, timeout_s=5.0, connect_timeout_s=2.0, transport=transport)  # type: ignore[arg-type]

    async def send(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> int:
        response = await client.request(method, path, json=body, headers=headers)
        _ = response.content
        return response.status_code

    label = "httpx default (AsyncHTTPTransport)" if transport == "httpx" else "httpx + AiohttpTransport"
    return Client(label, send, client.aclose)


def aiohttp_client(base_url: str) -> Client:
    import aiohttp

    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0, connect=2.0))

    async def send(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> int:
        async with session.request(method, base_url + path, json=body, headers=headers) as response:
            await response.read()
            return response.status

    return Client("raw aiohttp (reference)", send, session.close)


# --- measuring -------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    stub_cpu_s: float = 0.0
    failures: int = 0
    per_round_cpu_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Operation:
    label: str
    method: str
    path: str
    with_body: bool


OPERATIONS = {
    "health": Operation("GET /erp/health", "GET", "/erp/health", with_body=False),
    "journal": Operation("POST /erp/journals ~1KB", "POST", "/erp/journals", with_body=True),
}


async def burst(client: Client, op: Operation, count: int, tag: str) -> int:
    """``count`` sequential requests; returns how many did not answer 2xx."""
    failures = 0
    for i in range(count):
        if op.with_body:
            reference = f"hop-{tag}-{i}"
            status = await client.send(op.method, op.path, journal(reference), {"x-external-reference": reference})
        else:
            status = await client.send(op.method, op.path, None, {})
        failures += not 200 <= status < 300
    return failures


async def measure(args: argparse.Namespace, base_url: str, stub_pid: int) -> dict[tuple[str, str], Tally]:
    clients = [httpx_client(base_url, "httpx"), httpx_client(base_url, "aiohttp"), aiohttp_client(base_url)]
    results: dict[tuple[str, str], Tally] = {}
    per_round = max(1, args.requests // args.rounds)
    deadline = time.monotonic() + args.time_limit
    try:
        for key in args.ops:
            op = OPERATIONS[key]
            for index, client in enumerate(clients):
                failures = await burst(client, op, args.warmup, f"warm{index}")
                results[(key, client.name)] = Tally(failures=failures)
            for round_no in range(args.rounds):
                order = clients[round_no % len(clients) :] + clients[: round_no % len(clients)]
                for client in order:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"over the --time-limit of {args.time_limit:g} s")
                    tally = results[(key, client.name)]
                    stub0, cpu0, wall0 = cpu_seconds(stub_pid), time.process_time(), time.perf_counter()
                    tally.failures += await burst(client, op, per_round, f"{clients.index(client)}-{round_no}")
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                    tally.stub_cpu_s += cpu_seconds(stub_pid) - stub0
                    tally.requests += per_round
                    tally.cpu_s += cpu
                    tally.wall_s += wall
                    tally.per_round_cpu_ms.append(1000 * cpu / per_round)
    finally:
        for client in clients:
            await client.close()
    return results


def print_table(results: dict[tuple[str, str], Tally], ops: list[str]) -> None:
    header = (
        f"{'operation':<24} {'client':<36} {'requests':>8} {'CPU ms/req':>10} {'(rounds min-max)':>17} "
        f"{'wall ms/req':>11} {'stub CPU ms/req':>15} {'non-2xx':>7} {'CPU vs raw aiohttp':>18}"
    )
    print(header)
    print("-" * len(header))
    for key in ops:
        rows = {name: t for (k, name), t in results.items() if k == key}
        floor = next((t for name, t in rows.items() if name.startswith("raw aiohttp")), None)
        floor_ms = 1000 * floor.cpu_s / floor.requests if floor and floor.requests else 0.0
        for name, t in rows.items():
            cpu_ms = 1000 * t.cpu_s / t.requests
            spread = f"{min(t.per_round_cpu_ms):.3f}-{max(t.per_round_cpu_ms):.3f}"
            ratio = f"{cpu_ms / floor_ms:.2f}x" if floor_ms else "-"
            print(
                f"{OPERATIONS[key].label:<24} {name:<36} {t.requests:>8} {cpu_ms:>10.3f} {spread:>17} "
                f"{1000 * t.wall_s / t.requests:>11.3f} {1000 * t.stub_cpu_s / t.requests:>15.3f} "
                f"{t.failures:>7} {ratio:>18}"
            )
        default = next((t for name, t in rows.items() if name.startswith("httpx default")), None)
        on_aiohttp = next((t for name, t in rows.items() if name.startswith("httpx + Aiohttp")), None)
        if default and on_aiohttp:
            cpu_x = (default.cpu_s / default.requests) / (on_aiohttp.cpu_s / on_aiohttp.requests)
            wall = (default.wall_s / default.requests) / (on_aiohttp.wall_s / on_aiohttp.requests)
            print(
                f"{'':<24} => httpx default transport / AiohttpTransport: {cpu_x:.2f}x client CPU "
                f"per request, {wall:.2f}x wall time"
            )
    print("CPU = client process time.process_time(); stub CPU from /proc of the stub process; wall = elapsed.")


# --- the stub process ------------------------------------------------------------------------------


def start_stub(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", STUB_CODE.format(port=port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the ERP stub exited with {process.returncode}:\n{err[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/erp/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the ERP stub did not answer on {url} within {START_TIMEOUT_S:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per client and operation")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests per client and operation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the requests are split into")
    parser.add_argument("--ops", default="health,journal", help="comma list of: health, journal")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="the hub runs on uvloop")
    parser.add_argument("--time-limit", type=float, default=300.0, help="abort after this many seconds")
    args = parser.parse_args(argv)
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    if not set(args.ops) <= set(OPERATIONS) or not args.ops:
        parser.error(f"--ops must be among {', '.join(OPERATIONS)}")
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("need --requests >= 1, --rounds >= 1, --warmup >= 0")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` still stops the stub
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    stub = start_stub(port)
    try:
        wait_ready(stub, base_url)
        size = len(json.dumps(journal("hop-0-0000")))
        print(
            f"ERP stub pid {stub.pid} on {base_url}; loop {args.loop}; {args.requests} sequential requests "
            f"per client and operation in {args.rounds} interleaved rounds after {args.warmup} warm-up; "
            f"journal body {size} bytes; {os.cpu_count()} CPUs"
        )
        print()
        runner: Any = asyncio.run
        if args.loop == "uvloop":
            import uvloop

            runner = uvloop.run
        results = runner(measure(args, base_url, stub.pid))
        print_table(results, args.ops)
    finally:
        stop(stub)
    return 0


if __name__ == "__main__":
    sys.exit(main())
