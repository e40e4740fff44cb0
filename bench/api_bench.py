"""Load benchmark: a bare ping vs the hub's ``GET /v1/transactions/{id}`` vs ``POST /v1/journals``.

Everything runs as real processes on free loopback ports, in one run, so the ratios are measured side by
side on the same (possibly noisy) machine:

* the ERP and EHR stub servers (plus the clearinghouse stub when it is a target and exists);
* the hub, ``billing-hub serve``, with a throw-away data directory and the stubs as its targets;
* a bare Litestar app with ``GET /ping`` (``bench/ping_app.py``) under the same uvicorn settings;
* the load generator: ``wrk`` when it is on PATH, else an aiohttp load generator in its own process.

Each route gets a warm-up, then the same measured duration and concurrency. The table gives requests,
req/s, p50/p99 latency, non-2xx responses, socket errors, the serving process's CPU per request and
utilisation (from /proc), and each route's ratio to ping. After the POST load the ERP stub's journal
count is polled (during the load and until the backlog drains, at most ``--drain-timeout`` s) to report
how fast the dispatcher delivers.

    python bench/api_bench.py [--duration 10] [--concurrency 32] [--routes ping,get,post]

Exits non-zero when a server fails to start or dies during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REF = "@REF@"  # placeholder for the per-request external reference in a body template
RESULT_MARK = "BENCH_JSON "
API_KEY = "demo-key-0123456789abcdef"  # the demo client of policies/default.toml
STUB_CODE = (
    "from connectors._stubkit import run_stub; from connectors.{kind}._stub import create_app; "
    "run_stub(create_app(), '127.0.0.1', {port})"
)
KNOWN_STUBS = ("ehr", "erp", "clearinghouse")
START_TIMEOUT_S = 45.0
SAMPLE_INTERVAL_S = 1.0
STALL_S = 20.0
QUIET_S = 3.0


class BenchError(RuntimeError):
    """A server did not start, died, or the load generator failed."""


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0.0 when unavailable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Servers:
    """The processes this run started; ``stop_all`` ends each of them, by its own pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.items: list[Server] = []

    def start(self, name: str, argv: list[str], port: int, env: dict[str, str]) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
            )
        server = Server(name, port, process, log)
        self.items.append(server)
        return server

    def stop_all(self, grace_s: float = 15.0) -> None:
        for server in self.items:
            if server.alive():
                with contextlib.suppress(ProcessLookupError):
                    server.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for server in self.items:
            try:
                server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=5)


def wait_ready(server: Server, path: str, *, need_200: bool, deadline: float) -> None:
    import httpx

    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            response = httpx.get(server.url + path, timeout=1.0)
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        else:
            if response.status_code == 200 or not need_200:
                return
            last = f"HTTP {response.status_code}"
        time.sleep(0.1)
    raise BenchError(f"{server.name} not ready on {server.url}{path} ({last}):\n{server.log_tail()}")


# --- load generation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str
    label: str
    method: str
    url: str
    headers: dict[str, str]
    body_template: str | None = None  # JSON text with REF where a unique reference goes


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    ok: int
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


WRK_COMMON = r"""
local threads = {}
local next_tid = 1
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end
function init(args)
  ok_count = 0
  bad_count = 0
end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok_count = ok_count + 1 else bad_count = bad_count + 1 end
end
function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok_count")
    bad = bad + t:get("bad_count")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, '
    .. '"ok": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    ok, bad, e.connect + e.read + e.write + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    return f"[==[{text}]==]"


def wrk_script(route: Route, tag: str) -> str:
    lines = [f"wrk.method = {_lua_string(route.method)}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in route.headers.items()]
    if route.body_template is not None:
        prefix, suffix = route.body_template.split(REF)
        lines += [
            f"local prefix = {_lua_string(prefix)}",
            f"local suffix = {_lua_string(suffix)}",
            "local counter = 0",
            "function request()",
            "  counter = counter + 1",
            f'  return wrk.format(nil, nil, nil, prefix .. "{tag}-" .. tid .. "-" .. counter .. suffix)',
            "end",
        ]
    return "\n".join(lines) + "\n" + WRK_COMMON


class Loader:
    """Starts one load run as a separate process and parses its one-line JSON result."""

    def __init__(self, kind: str, workdir: Path, concurrency: int, threads: int) -> None:
        self.kind = kind
        self.workdir = workdir
        self.concurrency = concurrency
        self.threads = threads
        self._scripts = itertools.count(1)

    def start(self, route: Route, duration_s: float, tag: str) -> subprocess.Popen[str]:
        if self.kind == "wrk":
            script = self.workdir / f"load-{next(self._scripts)}.lua"
            script.write_text(wrk_script(route, tag))
            argv = [
                "wrk",
                f"--threads={self.threads}",
                f"--connections={self.concurrency}",
                f"--duration={max(1, round(duration_s))}s",
                "--timeout=5s",
                f"--script={script}",
                route.url,
            ]
        else:
            spec = {
                "method": route.method,
                "url": route.url,
                "headers": route.headers,
                "body_template": route.body_template,
                "concurrency": self.concurrency,
                "duration_s": duration_s,
                "tag": tag,
            }
            argv = [sys.executable, str(Path(__file__).resolve()), "--loadgen-worker", json.dumps(spec)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    @staticmethod
    def finish(process: subprocess.Popen[str], timeout_s: float) -> LoadResult:
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=5)
            raise BenchError("the load generator did not finish in time") from None
        line = next((ln for ln in out.splitlines() if ln.startswith(RESULT_MARK)), None)
        if process.returncode != 0 or line is None:
            raise BenchError(
                f"load generator failed (rc {process.returncode}):\n{out[-2000:]}\n{err[-2000:]}"
            )
        data = json.loads(line[len(RESULT_MARK) :])
        return LoadResult(
            requests=data["requests"],
            duration_s=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            ok=data["ok"],
            non_2xx=data["non_2xx"],
            socket_errors=data["socket_errors"],
        )


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    method, url, headers = spec["method"], spec["url"], spec["headers"]
    template: str | None = spec["body_template"]
    tag, concurrency = spec["tag"], int(spec["concurrency"])
    latencies: list[float] = []
    counts = Counter[str]()
    numbers = itertools.count(1)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + float(spec["duration_s"])

        async def worker() -> None:
            while time.perf_counter() < deadline:
                data = (
                    None if template is None else template.replace(REF, f"{tag}-1-{next(numbers)}").encode()
                )
                sent = time.perf_counter()
                try:
                    async with session.request(method, url, headers=headers, data=data) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    counts["socket_errors"] += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append(time.perf_counter() - sent)
                counts["ok" if 200 <= status < 300 else "non_2xx"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "p50_us": _percentile(latencies, 50) * 1e6,
        "p99_us": _percentile(latencies, 99) * 1e6,
        "ok": counts["ok"],
        "non_2xx": counts["non_2xx"],
        "socket_errors": counts["socket_errors"],
    }


def loadgen_worker(spec_json: str) -> int:
    """The Python load generator's process entry point: prints one ``BENCH_JSON`` line."""
    spec = json.loads(spec_json)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(_loadgen(spec))
    else:
        result = uvloop.run(_loadgen(spec))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


# --- ERP delivery sampling -----------------------------------------------------------------------


class ErpCounter:
    """Polls the ERP stub's journal count: what the hub's dispatcher has delivered so far."""

    def __init__(self, erp_url: str) -> None:
        import httpx
        import msgspec

        class _Count(msgspec.Struct):
            count: int

        self._client = httpx.Client(base_url=erp_url, timeout=10.0)
        self._decoder = msgspec.json.Decoder(_Count)
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> tuple[float, int]:
        """(when, journals in the ERP); a failed poll repeats the last count."""
        import httpx

        at = time.monotonic()
        try:
            response = self._client.get("/erp/journals")
            count = self._decoder.decode(response.content).count
        except (httpx.HTTPError, ValueError):
            count = self.samples[-1][1] if self.samples else 0
        self.samples.append((at, count))
        return at, count

    def recent_posts(self) -> tuple[Counter[int | None], int]:
        """Statuses of the last journal POSTs the stub journaled (its /_control ring buffer, 1000
        requests) and how many distinct delivery references (x-external-reference) they carried."""
        try:
            records = self._client.get("/_control/requests").json()
        except Exception:
            return Counter(), 0
        posts = [r for r in records if r.get("method") == "POST" and r.get("path") == "/erp/journals"]
        return Counter(r.get("status") for r in posts), len({r.get("idempotency") for r in posts})

    def close(self) -> None:
        self._client.close()


# --- the run -------------------------------------------------------------------------------------


def journal_template() -> str:
    today = datetime.now(UTC).date().isoformat()
    body = {
        "ledger": "PRIMARY",
        "accounting_date": today,
        "currency": "USD",
        "description": "bench journal: patient payment applied to AR",
        "external_reference": f"bench-{REF}",
        "lines": [
            {"account": "1000", "debit": "125.40", "memo": "lockbox deposit"},
            {"account": "1100", "credit": "100.00", "memo": "patient AR"},
            {"account": "2100", "credit": "25.40", "memo": "unapplied"},
        ],
    }
    return json.dumps(body)


@dataclass
class Measured:
    route: Route
    result: LoadResult
    server_cpu_s: float
    warmup_ok: int


def run_route(
    loader: Loader,
    route: Route,
    server: Server,
    args: argparse.Namespace,
    erp: ErpCounter | None,
    watched: list[Server],
) -> tuple[Measured, float, float]:
    """Warm up, then measure; returns the measurement and the measured window's start and end."""

    def run(duration_s: float, tag: str) -> tuple[LoadResult, float, float]:
        started = erp.sample()[0] if erp is not None else time.monotonic()
        process = loader.start(route, duration_s, tag)
        limit = started + duration_s + 30
        next_sample = time.monotonic() + SAMPLE_INTERVAL_S
        try:
            while process.poll() is None and time.monotonic() < limit:
                if erp is not None and time.monotonic() >= next_sample:
                    next_sample += SAMPLE_INTERVAL_S
                    erp.sample()
                time.sleep(0.02)
            result = loader.finish(process, timeout_s=max(1.0, limit - time.monotonic()))
        finally:
            if process.poll() is None:  # interrupted: do not leave the load generator running
                process.kill()
                process.wait(timeout=5)
        ended = erp.sample()[0] if erp is not None else time.monotonic()
        dead = [s.name for s in watched if not s.alive()]
        if dead:
            raise BenchError(f"server(s) died during the {route.label} load: {', '.join(dead)}")
        return result, started, ended

    warm = run(args.warmup, "w")[0] if args.warmup > 0 else None
    cpu_before = cpu_seconds(server.process.pid)
    result, started, ended = run(args.duration, "m")
    cpu = cpu_seconds(server.process.pid) - cpu_before
    return Measured(route, result, cpu, warm.ok if warm else 0), started, ended


def print_table(measured: list[Measured]) -> None:
    def cpu_ms(m: Measured) -> float:
        return 1000 * m.server_cpu_s / m.result.requests if m.result.requests else float("nan")

    ping = next((m for m in measured if m.route.key == "ping"), None)
    header = (
        f"{'route':<27} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} "
        f"{'sock err':>8} {'srv CPU ms/req':>14} {'srv CPU%':>8} {'req/s vs ping':>13} "
        f"{'CPU/req vs ping':>15}"
    )
    print(header)
    print("-" * len(header))
    for m in measured:
        r = m.result
        util = 100 * m.server_cpu_s / r.duration_s if r.duration_s else float("nan")
        ratio = f"{r.rps / ping.result.rps:.3f}x" if ping and ping.result.rps else "-"
        cpu_ratio = f"{cpu_ms(m) / cpu_ms(ping):.1f}x" if ping and cpu_ms(ping) > 0 else "-"
        print(
            f"{m.route.label:<27} {r.requests:>8} {r.rps:>7.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.non_2xx:>7} {r.socket_errors:>8} {cpu_ms(m):>14.3f} {util:>7.0f}% {ratio:>13} "
            f"{cpu_ratio:>15}"
        )
    print(
        "srv CPU = CPU time of the serving process (the ping app or the hub) over the measured window, from\n"
        "/proc; for POST it includes the dispatcher delivering the journals to the ERP at the same time.\n"
        "On a shared machine req/s moves with the neighbours' load; CPU per request is the steadier ratio."
    )


def report_delivery(
    erp: ErpCounter, accepted: int, window: tuple[float, float], args: argparse.Namespace
) -> None:
    """Poll until the ERP count covers every accepted journal and stays put (bounded); print rates.

    ``accepted`` is a lower bound: requests in flight when the load generator stopped were accepted by
    the hub but never counted by the generator, so the drain also waits for the count to go quiet.
    """
    load_start, load_end = window
    limit = load_end + args.drain_timeout
    stalled = False
    _, count = erp.sample()
    last_change = time.monotonic()
    while time.monotonic() < limit:
        quiet = time.monotonic() - last_change
        if count >= accepted and quiet >= QUIET_S:
            break
        if quiet >= STALL_S:
            stalled = True
            break
        time.sleep(SAMPLE_INTERVAL_S)
        previous, (_, count) = count, erp.sample()
        if count != previous:
            last_change = time.monotonic()

    def count_at(moment: float) -> int:
        before = [c for t, c in erp.samples if t <= moment]
        return before[-1] if before else erp.samples[0][1]

    c_start, c_end = count_at(load_start), count_at(load_end)
    final = erp.samples[-1][1]
    reached = next(t for t, c in erp.samples if c == final)
    print()
    print("delivery: hub dispatcher -> ERP stub (journal count from GET /erp/journals, polled every ~1 s)")
    print(
        f"  journals the hub accepted: >= {accepted} (2xx counted by the load generator, incl. warm-up and "
        f"setup); journals in the ERP at the end: {final}"
    )
    span = load_end - load_start
    print(
        f"  during the measured POST load: {c_end - c_start} delivered in {span:.1f} s "
        f"= {(c_end - c_start) / span:.0f} journals/s"
    )
    print(f"  in the ERP at the end of the load: {c_end}; backlog then: {final - c_end}")
    after = reached - load_end
    if final > c_end and after < 1.5 * SAMPLE_INTERVAL_S:
        print(f"  after the load: the backlog of {final - c_end} was gone by the next poll ({after:.1f} s)")
    elif final > c_end:
        print(
            f"  after the load: {final - c_end} more in {after:.1f} s "
            f"= {(final - c_end) / after:.0f} journals/s "
            f"(all {final} in the ERP {reached - load_start:.1f} s after the measured load began)"
        )
    if stalled:
        print(f"  !! STALL: the ERP count stayed at {final} for {STALL_S:.0f} s with >= {accepted} accepted")
    elif final < accepted:
        print(f"  !! NOT DRAINED within {args.drain_timeout:.0f} s: {final} of >= {accepted}")
    timeline = " ".join(f"{t - load_start:+.1f}:{c}" for t, c in erp.samples if t >= load_start - 3)
    print(f"  timeline (s from the measured load start : ERP count): {timeline}")
    statuses, distinct = erp.recent_posts()
    if statuses:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))
        print(
            f"  ERP stub, its last {sum(statuses.values())} POST /erp/journals: statuses {shown} "
            f"(200 = duplicate of an already posted reference); {distinct} distinct delivery references"
        )


def report_logs(servers: Servers) -> None:
    print()
    for server in servers.items:
        try:
            lines = server.log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        bad = [ln for ln in lines if any(w in ln for w in ("Traceback", "ERROR", "Error", "CRITICAL"))]
        state = "running" if server.alive() else f"exited {server.process.returncode}"
        print(f"log {server.name:<14} {len(lines):>6} lines, {len(bad):>5} error lines ({state})")
        for line in bad[:5]:
            print(f"    {line[:200]}")


def start_all(servers: Servers, args: argparse.Namespace, targets: list[str]) -> dict[str, Server]:
    env = dict(os.environ)
    started: dict[str, Server] = {}
    for kind in targets:
        if not (ROOT / "connectors" / kind / "_stub.py").exists():
            print(f"note: no stub for target {kind!r}; the hub will dead-letter work for it")
            continue
        port = free_port()
        code = STUB_CODE.format(kind=kind, port=port)
        started[kind] = servers.start(f"stub-{kind}", [sys.executable, "-c", code], port, env)
    port = free_port()
    ping_argv = [sys.executable, str(ROOT / "bench" / "ping_app.py"), "--port", str(port)]
    started["ping"] = servers.start("ping", ping_argv, port, env)

    hub_env = dict(env)
    hub_env.update(
        {
            "BILLING_HUB_DATA_DIR": str(servers.workdir / "data"),
            "BILLING_HUB_TARGETS": ",".join(targets),
            # The packaged default policy holds the demo client's key hash.
        }
    )
    for kind in KNOWN_STUBS:
        if kind in started:
            hub_env[f"BILLING_HUB_{kind.upper()}_URL"] = started[kind].url
    if args.durability:
        hub_env["BILLING_HUB_DURABILITY"] = args.durability
    billing_hub = shutil.which("billing-hub") or str(ROOT / ".venv" / "bin" / "billing-hub")
    port = free_port()
    started["hub"] = servers.start("hub", [billing_hub, "serve", "--port", str(port)], port, hub_env)

    deadline = time.monotonic() + START_TIMEOUT_S
    for kind in KNOWN_STUBS:
        if kind in started:
            wait_ready(started[kind], "/", need_200=False, deadline=deadline)  # any answer: it listens
    wait_ready(started["ping"], "/ping", need_200=True, deadline=deadline)
    wait_ready(started["hub"], "/health", need_200=True, deadline=deadline)
    return started


def create_transaction(hub: Server) -> str:
    import httpx

    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    body = journal_template().replace(REF, "setup-1")
    response = httpx.post(f"{hub.url}/v1/journals", content=body, headers=headers, timeout=10)
    location = response.headers.get("location")
    if response.status_code != 202 or not location:
        raise BenchError(f"setup POST /v1/journals -> {response.status_code}: {response.text[:500]}")
    check = httpx.get(hub.url + location, headers={"X-API-Key": API_KEY}, timeout=10)
    if check.status_code != 200:
        raise BenchError(f"setup GET {location} -> {check.status_code}: {check.text[:500]}")
    return str(location)


def run(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(KNOWN_STUBS))
    if unknown or "erp" not in targets:
        print(f"targets must be among {KNOWN_STUBS} and include erp (got {targets})", file=sys.stderr)
        return 2
    wanted = [r.strip() for r in args.routes.split(",") if r.strip()]
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    if args.loadgen == "wrk" and shutil.which("wrk") is None:
        print("wrk is not on PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` still stops the servers
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        workdir = Path(tmp)
        servers = Servers(workdir)
        try:
            return _run(args, targets, wanted, use_wrk, servers)
        except BenchError as exc:
            print(f"\nBENCH FAILED: {exc}", file=sys.stderr)
            report_logs(servers)
            return 1
        finally:
            servers.stop_all()
            if args.keep_logs:
                keep = Path(args.keep_logs)
                keep.mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    shutil.copy(log, keep / log.name)


def _run(
    args: argparse.Namespace, targets: list[str], wanted: list[str], use_wrk: bool, servers: Servers
) -> int:
    t0 = time.monotonic()
    started = start_all(servers, args, targets)
    hub, ping = started["hub"], started["ping"]
    location = create_transaction(hub)
    loader = Loader("wrk" if use_wrk else "python", servers.workdir, args.concurrency, args.threads)
    durability = args.durability or os.environ.get("BILLING_HUB_DURABILITY") or "full (default)"
    transport = os.environ.get("BILLING_HUB_HTTP_TRANSPORT", "aiohttp (default)")
    generator = f"wrk ({args.threads} thread)" if use_wrk else "python aiohttp process"
    print(
        f"load generator: {generator}; "
        f"concurrency {args.concurrency}; warm-up {args.warmup:g} s; measured {args.duration:g} s per route; "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"hub targets: {','.join(targets)}; durability: {durability}; connector transport: {transport}; "
        f"servers up in {time.monotonic() - t0:.1f} s"
    )
    print()

    json_headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    get_headers = {"X-API-Key": API_KEY}
    post_url, body = hub.url + "/v1/journals", journal_template()
    routes = {
        "ping": (Route("ping", "GET /ping (bare Litestar)", "GET", ping.url + "/ping", {}), ping),
        "get": (Route("get", "GET /v1/transactions/{id}", "GET", hub.url + location, get_headers), hub),
        "post": (Route("post", "POST /v1/journals (202)", "POST", post_url, json_headers, body), hub),
    }
    measured: list[Measured] = []
    erp: ErpCounter | None = None
    window = (0.0, 0.0)
    try:
        for key in wanted:
            if key not in routes:
                raise BenchError(f"unknown route {key!r}; choose from {', '.join(routes)}")
            route, server = routes[key]
            if key == "post":
                erp = ErpCounter(started["erp"].url)
            m, start, end = run_route(
                loader, route, server, args, erp if key == "post" else None, servers.items
            )
            measured.append(m)
            if key == "post":
                window = (start, end)
        print_table(measured)
        post = next((m for m in measured if m.route.method == "POST"), None)
        if erp is not None and post is not None:
            accepted = 1 + post.warmup_ok + post.result.ok
            report_delivery(erp, accepted, window, args)
    finally:
        if erp is not None:
            erp.close()
    dead = [s.name for s in servers.items if not s.alive()]
    report_logs(servers)
    print(f"\ntotal run time {time.monotonic() - t0:.1f} s")
    if dead:
        print(f"servers that died: {', '.join(dead)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--loadgen-worker"]:
        return loadgen_worker(argv[1])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per route")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per route (0: none)")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--routes", default="ping,get,post", help="comma list of ping, get, post")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--targets",
        default=os.environ.get("BILLING_HUB_TARGETS", "ehr,erp"),
        help="hub targets; default $BILLING_HUB_TARGETS or ehr,erp",
    )
    parser.add_argument("--durability", choices=["normal", "full"], help="BILLING_HUB_DURABILITY for the hub")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the servers' logs to DIR at the end")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="max s to wait for deliveries")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or args.concurrency < 1 or not 0 <= args.warmup <= 30:
        parser.error("need 0 < duration <= 120, concurrency >= 1, 0 <= warmup <= 30")
    args.drain_timeout = min(max(args.drain_timeout, 0.0), 60.0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
