"""Load benchmark: the hub's routes against a bare ping, over several hub configurations, in one run.

Everything runs as real processes on free loopback ports, in one run, so the ratios are measured side by
side on the same (possibly noisy) machine:

* the ERP and EHR stub servers (plus the clearinghouse stub when it is a target and exists);
* a bare Litestar app with ``GET /ping`` (``bench/ping_app.py``) under the same uvicorn settings;
* the hub, ``billing-hub serve``, once per configuration ("variant"), one after another, each with a
  fresh data directory, the stubs as its targets and a bench policy file (below);
* the load generator: ``wrk`` when it is on PATH, else an aiohttp load generator in its own process.

Scenarios (``--scenarios``, default all three):

* ``foundation``: the embedded store (SQLite), tracing off: ``GET /v1/transactions/{id}`` and
  ``POST /v1/journals`` (202 path), plus how fast the dispatcher delivers the journals to the ERP stub.
* ``policy``: the full policy chain of the policies issue: key auth + Redis rate limit + idempotency,
  i.e. ``BILLING_HUB_STATE_BACKEND=redis`` (which also moves the store to Redis) and a unique
  ``Idempotency-Key`` on every POST. Goals: read path >= 40 %, 202 write path >= 25 % of bare ping.
  Measured twice: ``redis chain`` (the hub also delivers, as ``make run`` does) and ``redis+worker``
  (the hub only accepts, ``BILLING_HUB_DISPATCHER_ENABLED=false``, and a ``billing-hub dispatch``
  process delivers; its CPU is reported in a column of its own, and on a 2-core machine it competes
  with the hub, the load generator, Redis and the ERP stub for the same cores), and a third time as
  ``redis, later`` (the hub only accepts and nothing delivers while the loads run, the 202 path alone
  on the cores, as on an API node whose delivery workers run on other machines; once the loads are
  over a ``billing-hub dispatch`` process drains the backlog, and the run reports how fast and
  whether every accepted journal reached the ERP).
* ``tracing``: the embedded hub with tracing off, on at 10 % and at 100 % sampling (the SDK pipeline
  with a discarding exporter). Goal: <= 10 % throughput loss at 10 % sampling.

The bare ping is measured before the first hub and after every hub variant (``--ping bracket``): each
hub row's ratios are to the mean of the pings right before and after it, so the neighbours' drift on a
shared machine largely divides out. Every measured and warm-up request must answer 2xx: the run fails
loudly (exit 1) on any non-2xx or socket error.

The bench policy (written to the temp dir, ``BILLING_HUB_POLICY_FILE``) is the packaged
``policies/default.toml`` with one bench client (a fresh random key, its SHA-256 in the file, every
scope) and rate limits far above what one hub process can serve, so no request is refused with 429
while rate limiting still runs on every call. Redis keys live under a unique
``BILLING_HUB_REDIS_PREFIX`` per run and variant (each variant starts with an empty store) and are
deleted at the end.

Each route gets a warm-up, then the same measured duration and concurrency. The tables give requests,
req/s, p50/p99 latency, non-2xx responses, socket errors, the serving process's CPU per request and
utilisation (from /proc), and each route's ratio to ping.

    python bench/api_bench.py [--scenarios foundation,policy,tracing] [--duration 8] [--concurrency 32]

Exits non-zero when a server fails to start or dies, or when any request was not answered 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _proc import cpu_seconds, free_port, machine_jiffies  # this directory is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
REF = "@REF@"  # placeholder for the per-request external reference in a body template
RESULT_MARK = "BENCH_JSON "
STUB_CODE = (
    "from connectors._stubkit import run_stub; from connectors.{kind}._stub import create_app; "
    "run_stub(create_app(), '127.0.0.1', {port})"
)
KNOWN_STUBS = ("ehr", "erp", "clearinghouse")
SOURCE_PACKAGES = ("gateway", "connectors", "canonical", "policies")  # pyproject's packages.find
SCENARIOS = ("foundation", "policy", "tracing")
START_TIMEOUT_S = 45.0
SAMPLE_INTERVAL_S = 1.0
STALL_S = 20.0
QUIET_S = 3.0
# Per rate-limit rule of the bench policy: 10 M per 60 s (~170k req/s), far above one hub process;
# window * limit stays inside the GCRA's exact-integer range.
BENCH_RATE_LIMIT = 10_000_000
HUB_SHUTDOWN_GRACE_S = 2  # a stopped variant's leftover backlog is abandoned, not drained
GOALS = {"policy_read": 0.40, "policy_write": 0.25, "tracing_10_loss": 0.10}


class BenchError(RuntimeError):
    """A server did not start, died, or the load generator failed."""


# --- processes -----------------------------------------------------------------------------------


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
    """The processes this run started; ``stop``/``stop_all`` end them, each by its own pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.items: list[Server] = []
        self.stopped: set[str] = set()  # stopped on purpose (a finished hub variant), not died
        self.cwd = ROOT  # the work dir when the source is snapshotted: `python -c` puts the cwd first

    def start(self, name: str, argv: list[str], port: int, env: dict[str, str]) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.cwd, start_new_session=True
            )
        server = Server(name, port, process, log)
        self.items.append(server)
        return server

    def stop(self, servers: list[Server], grace_s: float = 15.0) -> None:
        for server in servers:
            self.stopped.add(server.name)
            if server.alive():
                with contextlib.suppress(ProcessLookupError):
                    server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for server in servers:
            try:
                server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=5)

    def stop_all(self) -> None:
        self.stop(self.items)

    def died(self) -> list[str]:
        return [s.name for s in self.items if not s.alive() and s.name not in self.stopped]


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


def snapshot_source(workdir: Path, attempts: int = 6) -> Path:
    """Copy the hub's packages once, so every server of the run imports the same code.

    The tree may be edited while a run of several minutes starts hub after hub; a copy on PYTHONPATH
    (ahead of the editable install's finder) pins it. A copy that does not import (caught mid-edit)
    is retried a few times, then the run fails with the import error.
    """
    target = workdir / "src"
    error = ""
    for attempt in range(attempts):
        shutil.rmtree(target, ignore_errors=True)
        for package in SOURCE_PACKAGES:
            shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
        check = subprocess.run(
            [sys.executable, "-c", "import gateway.app"],
            check=False,
            env={**os.environ, "PYTHONPATH": str(target)},
            capture_output=True,
            text=True,
            cwd=workdir,
            timeout=60,
        )
        if check.returncode == 0:
            return target
        error = check.stderr.strip().splitlines()[-1] if check.stderr.strip() else f"rc {check.returncode}"
        if attempt < attempts - 1:
            print(f"note: the source tree does not import ({error}); retrying in 5 s", flush=True)
            time.sleep(5)
    raise BenchError(f"the hub's source does not import: {error}")


# --- the bench policy ----------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_dumps(table: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """Just enough TOML for a policy file: nested tables of scalars and lists of scalars."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines: list[str] = []
    if path and (scalars or not tables):
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    text = "\n".join(lines) + ("\n\n" if lines else "")
    return text + "".join(toml_dumps(v, (*path, k)) for k, v in tables.items())


def bench_policy(api_key: str) -> str:
    """The packaged default policy with one bench client (every scope) and rate limits nobody hits.

    Derived from ``policies/default.toml`` so it names every operation the hub has (start-up refuses
    a policy without one); validated here so a format change fails with the policy's own message.
    """
    import tomllib

    from policies.config import SCOPES, parse_policy

    raw: dict[str, Any] = tomllib.loads((ROOT / "policies" / "default.toml").read_text())
    raw.pop("jwt", None)
    raw["clients"] = {
        "bench": {
            "description": "bench/api_bench.py load client",
            "api_key_sha256": [hashlib.sha256(api_key.encode()).hexdigest()],
            "scopes": sorted(SCOPES),
        }
    }
    raw["rate_limits"] = {
        name: {
            "limit": BENCH_RATE_LIMIT,
            "window_s": 60,
            "on_backend_error": rule.get("on_backend_error", "open"),
        }
        for name, rule in raw["rate_limits"].items()
    }
    text = "# Written by bench/api_bench.py for one run: huge rate limits, one bench client.\n" + toml_dumps(raw)
    parse_policy(text, "bench policy")
    return text


# --- load generation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str
    label: str
    method: str
    url: str
    headers: dict[str, str]
    body_template: str | None = None  # JSON text with REF where a unique reference goes
    idempotency_key: bool = False  # a unique Idempotency-Key header per request


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    ok: int
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int] = field(default_factory=dict)  # non-2xx status -> count

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
  bad_statuses = {}
end
function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok_count = ok_count + 1
  else
    bad_count = bad_count + 1
    local k = tostring(status)
    bad_statuses[k] = (bad_statuses[k] or 0) + 1
  end
end
function done(summary, latency, requests)
  local ok, bad, statuses = 0, 0, {}
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok_count")
    bad = bad + t:get("bad_count")
    for k, v in pairs(t:get("bad_statuses")) do statuses[k] = (statuses[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(statuses) do table.insert(parts, string.format('"%s": %d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, '
    .. '"ok": %d, "non_2xx": %d, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    ok, bad, e.connect + e.read + e.write + e.timeout, table.concat(parts, ", ")))
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
            f'  local ref = "{tag}-" .. tid .. "-" .. counter',
        ]
        if route.idempotency_key:
            lines += [
                "  local headers = {}",
                "  for k, v in pairs(wrk.headers) do headers[k] = v end",
                '  headers["Idempotency-Key"] = "bench-" .. ref',
                "  return wrk.format(nil, nil, headers, prefix .. ref .. suffix)",
            ]
        else:
            lines.append("  return wrk.format(nil, nil, nil, prefix .. ref .. suffix)")
        lines.append("end")
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
                "idempotency_key": route.idempotency_key,
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
            raise BenchError(f"load generator failed (rc {process.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
        data = json.loads(line[len(RESULT_MARK) :])
        return LoadResult(
            requests=data["requests"],
            duration_s=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            ok=data["ok"],
            non_2xx=data["non_2xx"],
            socket_errors=data["socket_errors"],
            statuses={str(k): int(v) for k, v in data.get("statuses", {}).items()},
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
    with_key = bool(spec.get("idempotency_key"))
    tag, concurrency = spec["tag"], int(spec["concurrency"])
    latencies: list[float] = []
    counts = Counter[str]()
    statuses = Counter[str]()
    numbers = itertools.count(1)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + float(spec["duration_s"])

        async def worker() -> None:
            while time.perf_counter() < deadline:
                ref = f"{tag}-1-{next(numbers)}"
                data = None if template is None else template.replace(REF, ref).encode()
                sent_headers = {**headers, "Idempotency-Key": f"bench-{ref}"} if with_key else headers
                sent = time.perf_counter()
                try:
                    async with session.request(method, url, headers=sent_headers, data=data) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    counts["socket_errors"] += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append(time.perf_counter() - sent)
                if 200 <= status < 300:
                    counts["ok"] += 1
                else:
                    counts["non_2xx"] += 1
                    statuses[str(status)] += 1

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
        "statuses": dict(statuses),
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

    def count_at(self, moment: float) -> int:
        before = [c for t, c in self.samples if t <= moment]
        return before[-1] if before else (self.samples[0][1] if self.samples else 0)

    def recent_posts(self) -> tuple[Counter[int | None], int]:
        """Statuses of the last journal POSTs the stub journaled (its /_control ring buffer, 1000
        requests) and how many distinct delivery references (x-external-reference) they carried."""
        try:
            records = self._client.get("/_control/requests").json()
        except Exception:
            return Counter(), 0
        posts = [r for r in records if r.get("method") == "POST" and r.get("path") == "/erp/journals"]
        return Counter(r.get("status") for r in posts), len({r.get("idempotency") for r in posts})

    def trace_context(self) -> str:
        """How the last journal deliveries the stub journaled carried W3C trace context: proof of
        what the hub's tracing did (off: none; on: a traceparent whose flags have bit 0x01 when sampled)."""
        try:
            records = self._client.get("/_control/requests").json()
        except Exception:
            return "unknown"
        posts = [r for r in records if r.get("method") == "POST" and r.get("path") == "/erp/journals"]
        if not posts:
            return "no deliveries seen"
        parents = [str(r.get("traceparent") or "") for r in posts]
        carried = [p for p in parents if p]
        sampled = sum(1 for p in carried if int(p[-2:], 16) & 1) if all(len(p) == 55 for p in carried) else 0
        return (
            f"of the last {len(posts)} deliveries {len(carried)} carried a traceparent, "
            f"{sampled} sampled ({100 * sampled / len(posts):.0f}%)"
        )

    def close(self) -> None:
        self._client.close()


# --- Redis ---------------------------------------------------------------------------------------


class RedisSide:
    """The run's Redis: reachability, the server's CPU (when local), and the run's keys (deleted)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.url, self.prefix = url, prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)
        self.pid: int | None = None

    def check(self) -> str:
        import redis

        try:
            info = self.client.info("server")
        except (redis.RedisError, OSError) as exc:
            raise BenchError(f"Redis at {self.url} does not answer ({exc}); the policy scenario needs it") from None
        pid = int(info.get("process_id") or 0)
        with contextlib.suppress(OSError):
            if pid and "redis" in Path(f"/proc/{pid}/comm").read_text():
                self.pid = pid
        local = f"pid {self.pid}" if self.pid else "not a local process: its CPU is not measured"
        return f"Redis {info.get('redis_version')} at {self.url} ({local}); key prefix {self.prefix!r}"

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid) if self.pid else None

    def key_counts(self, sub: str = "") -> dict[str, int]:
        counts = Counter[str]()
        for key in self.client.scan_iter(match=self.prefix + sub + "*", count=1000):
            rest = key.decode(errors="replace")[len(self.prefix + sub) :]
            counts[rest.split(":", 1)[0]] += 1
        return dict(sorted(counts.items()))

    def audit_records(self, sub: str = "") -> int:
        """Records in the audit chain's record hash (calls and delivery attempts)."""
        total = 0
        for key in self.client.scan_iter(match=self.prefix + sub + "*audit*records*", count=1000):
            if self.client.type(key) == b"hash":
                total += int(self.client.hlen(key))
        return total

    def cleanup(self) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += int(self.client.delete(*batch))
                batch = []
        if batch:
            removed += int(self.client.delete(*batch))
        return removed

    def close(self) -> None:
        self.client.close()


def sqlite_audit_records(data_dir: Path) -> int | None:
    """Rows in the embedded audit log (read-only; the hub keeps writing in WAL mode)."""
    for path in sorted(data_dir.glob("*.sqlite3")):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                return int(db.execute("select count(*) from audit_log").fetchone()[0])
        except sqlite3.Error:
            continue
    return None


# --- hub variants and measurements ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One hub configuration: started, measured (GET then POST), stopped."""

    key: str
    scenario: str
    label: str
    env: dict[str, str]
    idempotency_key: bool = False
    full_delivery_report: bool = False
    # The hub only accepts (BILLING_HUB_DISPATCHER_ENABLED=false); a `billing-hub dispatch` process delivers.
    worker: bool = False
    # The hub only accepts and nothing delivers during the loads; a `billing-hub dispatch` process starts
    # after them and drains the backlog, timed and counted (the 202 path alone on the machine's cores).
    deferred_worker: bool = False


def variants(scenarios: list[str]) -> list[Variant]:
    off = {"BILLING_HUB_TRACE_EXPORTER": "off"}
    discard = {"BILLING_HUB_TRACE_EXPORTER": "discard"}
    out: list[Variant] = []
    if "foundation" in scenarios:
        out.append(
            Variant(
                "embedded",
                "foundation",
                "embedded",
                {"BILLING_HUB_STATE_BACKEND": "embedded", **off},
                full_delivery_report=True,
            )
        )
    if "policy" in scenarios:
        out.append(
            Variant(
                "redis-chain",
                "policy",
                "redis chain",
                {"BILLING_HUB_STATE_BACKEND": "redis", **off},
                idempotency_key=True,
            )
        )
        out.append(
            Variant(
                "redis-chain-worker",
                "policy",
                "redis+worker",
                {"BILLING_HUB_STATE_BACKEND": "redis", "BILLING_HUB_DISPATCHER_ENABLED": "false", **off},
                idempotency_key=True,
                worker=True,
            )
        )
        out.append(
            Variant(
                "redis-chain-deferred",
                "policy",
                "redis, later",
                {"BILLING_HUB_STATE_BACKEND": "redis", "BILLING_HUB_DISPATCHER_ENABLED": "false", **off},
                idempotency_key=True,
                deferred_worker=True,
            )
        )
    if "tracing" in scenarios:
        out += [
            Variant("trace-off", "tracing", "trace off", {"BILLING_HUB_STATE_BACKEND": "embedded", **off}),
            Variant(
                "trace-10",
                "tracing",
                "trace 10%",
                {
                    "BILLING_HUB_STATE_BACKEND": "embedded",
                    **discard,
                    "OTEL_TRACES_SAMPLER": "traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": "0.1",
                },
            ),
            Variant(
                "trace-100",
                "tracing",
                "trace 100%",
                {"BILLING_HUB_STATE_BACKEND": "embedded", **discard, "OTEL_TRACES_SAMPLER": "always_on"},
            ),
        ]
    return out


@dataclass
class Measured:
    variant: str  # "ping" or a Variant.key
    label: str  # what the table shows in its first column
    route: Route
    result: LoadResult
    server_cpu_s: float
    warmup: LoadResult | None
    redis_cpu_s: float | None = None
    worker_cpu_s: float | None = None  # the `billing-hub dispatch` process, when the variant has one
    window: tuple[float, float] = (0.0, 0.0)
    erp_cpu_s: float | None = None  # the ERP stub's, during a POST load (it is on the same cores)
    busy_cores: float | None = None  # the whole machine's average over the measured load
    # The bare ping this row is compared with: for a hub row the mean of the pings measured right
    # before and after its hub ran (the machine is shared and drifts); for a ping row, ping #1.
    ref_rps: float = 0.0
    ref_cpu_ms: float = 0.0

    @property
    def rps_vs_ping(self) -> float:
        return self.result.rps / self.ref_rps if self.ref_rps else float("nan")

    @property
    def ping_cpu_share(self) -> float:
        """Ping's CPU per request over this row's: the req/s ratio if both were CPU-bound alone."""
        return self.ref_cpu_ms / self.cpu_ms if self.cpu_ms else float("nan")

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu_s / self.result.requests if self.result.requests else float("nan")

    @property
    def redis_cpu_ms(self) -> float | None:
        return self._per_request_ms(self.redis_cpu_s)

    @property
    def worker_cpu_ms(self) -> float | None:
        return self._per_request_ms(self.worker_cpu_s)

    @property
    def erp_cpu_ms(self) -> float | None:
        return self._per_request_ms(self.erp_cpu_s)

    def _per_request_ms(self, cpu_s: float | None) -> float | None:
        if cpu_s is None or not self.result.requests:
            return None
        return 1000 * cpu_s / self.result.requests

    @property
    def refused(self) -> int:
        """Requests not answered 2xx (incl. socket errors), warm-up included."""
        total = self.result.non_2xx + self.result.socket_errors
        if self.warmup is not None:
            total += self.warmup.non_2xx + self.warmup.socket_errors
        return total


@dataclass
class Context:
    args: argparse.Namespace
    servers: Servers
    loader: Loader
    erp: ErpCounter
    redis: RedisSide | None
    t0: float
    watched: list[Server] = field(default_factory=list)
    # variant -> (audit records, calls answered + deliveries) when its load ended, if the log lagged
    audit_lag: dict[str, tuple[int, int]] = field(default_factory=dict)
    workers: dict[str, Server] = field(default_factory=dict)  # variant -> its dispatch process
    hub_env: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> its hub's environment


def measure(ctx: Context, variant: str, label: str, route: Route, server: Server, *, warm_up: bool = True) -> Measured:
    """Warm up, then measure; the ERP count is sampled during a POST load."""
    args, erp = ctx.args, ctx.erp if route.method == "POST" else None

    def run(duration_s: float, tag: str) -> tuple[LoadResult, float, float]:
        started = erp.sample()[0] if erp is not None else time.monotonic()
        process = ctx.loader.start(route, duration_s, tag)
        limit = started + duration_s + 30
        next_sample = time.monotonic() + SAMPLE_INTERVAL_S
        try:
            while process.poll() is None and time.monotonic() < limit:
                if erp is not None and time.monotonic() >= next_sample:
                    next_sample += SAMPLE_INTERVAL_S
                    erp.sample()
                time.sleep(0.02)
            result = Loader.finish(process, timeout_s=max(1.0, limit - time.monotonic()))
        finally:
            if process.poll() is None:  # interrupted: do not leave the load generator running
                process.kill()
                process.wait(timeout=5)
        ended = erp.sample()[0] if erp is not None else time.monotonic()
        dead = [s.name for s in ctx.watched if not s.alive()]
        if dead:
            raise BenchError(f"server(s) died during the {route.label} load: {', '.join(dead)}")
        return result, started, ended

    # A tag unique per variant and phase: the body's external reference (and Idempotency-Key) never
    # repeats in the run, so the shared ERP stub never sees a duplicate reference.
    warm = run(args.warmup, f"{variant}-w")[0] if args.warmup > 0 and warm_up else None
    cpu_before = cpu_seconds(server.process.pid)
    redis_before = ctx.redis.cpu_seconds() if ctx.redis is not None and variant.startswith("redis-chain") else None
    worker = ctx.workers.get(variant)
    worker_before = cpu_seconds(worker.process.pid) if worker is not None else None
    erp_stub = next((s for s in ctx.watched if s.name == "stub-erp"), None) if erp is not None else None
    erp_before = cpu_seconds(erp_stub.process.pid) if erp_stub is not None else None
    busy_before, total_before = machine_jiffies()
    result, started, ended = run(args.duration, f"{variant}-m")
    cpu = cpu_seconds(server.process.pid) - cpu_before
    busy_after, total_after = machine_jiffies()
    busy_cores = (
        (busy_after - busy_before) / (total_after - total_before) * (os.cpu_count() or 1)
        if total_after > total_before
        else None
    )
    worker_cpu = None if worker_before is None else cpu_seconds(worker.process.pid) - worker_before
    erp_cpu = None if erp_stub is None or erp_before is None else cpu_seconds(erp_stub.process.pid) - erp_before
    redis_cpu = None
    if redis_before is not None and ctx.redis is not None:
        after = ctx.redis.cpu_seconds()
        redis_cpu = None if after is None else after - redis_before
    m = Measured(variant, label, route, result, cpu, warm, redis_cpu, worker_cpu, (started, ended), erp_cpu, busy_cores)
    bad = f"; NOT 2xx: {m.refused} {result.statuses or ''}" if m.refused else ""
    print(
        f"[{time.monotonic() - ctx.t0:6.1f} s] {label:<12} {route.label:<27} {result.rps:7.0f} req/s, "
        f"{m.cpu_ms:.3f} ms CPU/req{bad}",
        flush=True,
    )
    return m


def bench_headers(api_key: str) -> tuple[dict[str, str], dict[str, str]]:
    return {"X-API-Key": api_key}, {"X-API-Key": api_key, "Content-Type": "application/json"}


def create_transaction(hub: Server, api_key: str) -> tuple[str, str]:
    """One journal through the hub (whose transaction the GET load reads) and what its answers show."""
    import httpx

    get_headers, post_headers = bench_headers(api_key)
    body = journal_template().replace(REF, f"setup-{hub.name}")
    response = httpx.post(f"{hub.url}/v1/journals", content=body, headers=post_headers, timeout=10)
    location = response.headers.get("location")
    if response.status_code != 202 or not location:
        raise BenchError(f"setup POST /v1/journals -> {response.status_code}: {response.text[:500]}")
    check = httpx.get(hub.url + location, headers=get_headers, timeout=10)
    if check.status_code != 200:
        raise BenchError(f"setup GET {location} -> {check.status_code}: {check.text[:500]}")
    seen = [
        name
        for name, present in (
            ("RateLimit", "ratelimit" in check.headers),
            ("X-Trace-Id", "x-trace-id" in check.headers),
        )
        if present
    ]
    return str(location), ", ".join(seen) or "none"


def start_hub(
    ctx: Context, variant: Variant, base_env: dict[str, str], stubs: dict[str, Server], policy_file: Path
) -> Server:
    env = {k: v for k, v in base_env.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "BILLING_HUB_DATA_DIR": str(ctx.servers.workdir / f"data-{variant.key}"),
            "BILLING_HUB_TARGETS": ",".join(stubs),
            "BILLING_HUB_POLICY_FILE": str(policy_file),
            "BILLING_HUB_REDIS_URL": ctx.args.redis_url,
            "BILLING_HUB_REDIS_PREFIX": ctx.args.redis_prefix + variant_prefix(variant),
            "BILLING_HUB_SHUTDOWN_GRACE_S": str(HUB_SHUTDOWN_GRACE_S),
        }
    )
    for kind, server in stubs.items():
        env[f"BILLING_HUB_{kind.upper()}_URL"] = server.url
    if ctx.args.durability:
        env["BILLING_HUB_DURABILITY"] = ctx.args.durability
    env.update(variant.env)
    billing_hub = shutil.which("billing-hub") or str(ROOT / ".venv" / "bin" / "billing-hub")
    port = free_port()
    hub = ctx.servers.start(f"hub-{variant.key}", [billing_hub, "serve", "--port", str(port)], port, env)
    wait_ready(hub, "/health", need_200=True, deadline=time.monotonic() + START_TIMEOUT_S)
    ctx.hub_env[variant.key] = env
    if variant.worker:
        ctx.workers[variant.key] = start_worker(ctx, variant, env)
    return hub


def start_worker(ctx: Context, variant: Variant, hub_env: dict[str, str]) -> Server:
    """A `billing-hub dispatch` process with the hub's settings, once it says it is ready."""
    from gateway.worker import READY_LINE  # here, not at the top: the load generator imports this module

    billing_hub = shutil.which("billing-hub") or str(ROOT / ".venv" / "bin" / "billing-hub")
    worker_env = {k: v for k, v in hub_env.items() if k != "BILLING_HUB_DISPATCHER_ENABLED"}
    worker = ctx.servers.start(f"worker-{variant.key}", [billing_hub, "dispatch"], 0, worker_env)
    wait_for_line(worker, READY_LINE, deadline=time.monotonic() + START_TIMEOUT_S)
    return worker


def wait_for_line(server: Server, marker: str, *, deadline: float) -> None:
    """A process without a port is ready when it prints ``marker``."""
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        if marker in server.log_tail(lines=200):
            return
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not print {marker!r}:\n{server.log_tail()}")


def run_variant(
    ctx: Context,
    variant: Variant,
    wanted: list[str],
    base_env: dict[str, str],
    stubs: dict[str, Server],
    policy_file: Path,
    api_key: str,
    notes: list[str],
) -> list[Measured]:
    started_at = time.monotonic()
    audit_before = audit_records(ctx, variant) or 0  # none yet: each variant has its own store
    hub = start_hub(ctx, variant, base_env, stubs, policy_file)
    ctx.watched.append(hub)
    worker = ctx.workers.get(variant.key)
    if worker is not None:
        ctx.watched.append(worker)
    before_hub = ctx.erp.sample()[1]
    out: list[Measured] = []
    try:
        location, seen = create_transaction(hub, api_key)
        extra = {k: v for k, v in variant.env.items() if k != "BILLING_HUB_STATE_BACKEND"}
        notes.append(
            f"{variant.label:<12} state_backend={variant.env.get('BILLING_HUB_STATE_BACKEND')} "
            + " ".join(f"{k}={v}" for k, v in extra.items())
            + f"; up in {time.monotonic() - started_at:.1f} s; headers on GET: {seen}"
            + ("; POSTs carry a unique Idempotency-Key" if variant.idempotency_key else "")
        )
        get_headers, post_headers = bench_headers(api_key)
        routes = {
            "get": Route("get", "GET /v1/transactions/{id}", "GET", hub.url + location, get_headers),
            "post": Route(
                "post",
                "POST /v1/journals (202)",
                "POST",
                hub.url + "/v1/journals",
                post_headers,
                journal_template(),
                idempotency_key=variant.idempotency_key,
            ),
        }
        # GET first: the POST leaves a delivery backlog behind.
        out.extend(measure(ctx, variant.key, variant.label, routes[key], hub) for key in wanted)
        notes.extend(after_load(ctx, variant, out, before_hub, audit_before))
        if ctx.redis is not None and variant.env.get("BILLING_HUB_STATE_BACKEND") == "redis":
            counts = ctx.redis.key_counts(variant_prefix(variant))
            shown = ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"
            notes.append(
                f"{variant.label:<12} Redis keys under the run's prefix after the load: {shown} "
                "(idem = one idempotency record per POST; rl = rate-limit state)"
            )
    finally:
        ctx.watched.remove(hub)
        stopping = [hub]
        worker = ctx.workers.get(variant.key)  # a deferred variant's started after the loads
        if worker is not None:
            ctx.watched.remove(worker)
            stopping.append(worker)
        ctx.servers.stop(stopping, grace_s=HUB_SHUTDOWN_GRACE_S + 6)
    return out


def variant_prefix(variant: Variant) -> str:
    """Each variant's Redis keys under a prefix of its own (within the run's): each starts with an
    empty store, and a backlog an earlier variant left is not delivered and counted by a later one."""
    return f"{variant.key}:"


def audit_records(ctx: Context, variant: Variant) -> int | None:
    """The audit log's length."""
    if variant.env.get("BILLING_HUB_STATE_BACKEND") == "redis":
        return ctx.redis.audit_records(variant_prefix(variant)) if ctx.redis is not None else None
    return sqlite_audit_records(ctx.servers.workdir / f"data-{variant.key}")


def after_load(
    ctx: Context, variant: Variant, out: list[Measured], before_hub: int, audit_before: int | None
) -> list[str]:
    """Does the hub keep up behind its answers? Audit records and deliveries when the load ends, and
    after the dispatcher settles (the full delivery report for the foundation variant)."""

    def audit() -> int | None:
        count = audit_records(ctx, variant)
        return None if count is None or audit_before is None else count - audit_before

    calls = 2 + sum(m.result.requests + (m.warmup.requests if m.warmup else 0) for m in out)
    t_end = time.monotonic()
    audit_end, delivered_end = audit(), ctx.erp.sample()[1] - before_hub
    lines: list[str] = []
    post = next((m for m in out if m.route.key == "post"), None)
    if post is not None and variant.full_delivery_report:
        accepted = 1 + (post.warmup.ok if post.warmup else 0) + post.result.ok
        lines += report_delivery(ctx.erp, accepted, before_hub, post.window, ctx.args)
    elif post is not None and variant.deferred_worker:
        lines += drain_later(ctx, variant, post, before_hub)
    elif post is not None:  # let the backlog go (bounded), so the hub stops cleanly
        last, quiet_since = delivered_end, time.monotonic()
        while time.monotonic() - t_end < ctx.args.settle and time.monotonic() - quiet_since < 2.0:
            time.sleep(0.5)
            now = ctx.erp.sample()[1] - before_hub
            if now != last:
                last, quiet_since = now, time.monotonic()
    t_later = time.monotonic()
    audit_later, delivered_later = audit(), ctx.erp.sample()[1] - before_hub
    if post is not None and variant.scenario == "tracing":
        lines.append(f"{variant.label:<12} trace context at the ERP stub: {ctx.erp.trace_context()}")
    if audit_end is None or audit_later is None:
        return [*lines, f"{variant.label:<12} audit log: not found"]
    expected_end = calls + delivered_end
    lag = expected_end - audit_end
    rate = (audit_later - audit_end) / (t_later - t_end) if t_later > t_end else 0.0
    flag = ""
    if lag > max(50, 0.01 * expected_end):
        flag = "  !! the audit log lags behind the answers"
        ctx.audit_lag[variant.key] = (audit_end, expected_end)
    lines.append(
        f"{variant.label:<12} audit/delivery when the last load ended: {audit_end} audit records for {calls} calls "
        f"answered + {delivered_end} journals delivered (behind by ~{lag}); {t_later - t_end:.1f} s later: "
        f"{audit_later} records (+{rate:.0f}/s), {delivered_later} delivered{flag}"
    )
    return lines


# --- reporting -----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def print_table(measured: list[Measured]) -> None:
    header = (
        f"{'hub':<12} {'route':<27} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} "
        f"{'sock err':>8} {'srv CPU ms/req':>14} {'srv CPU%':>8} {'req/s vs ping':>13} {'CPU/req vs ping':>15}"
    )
    print(header)
    print("-" * len(header))
    for m in measured:
        r = m.result
        util = 100 * m.server_cpu_s / r.duration_s if r.duration_s else float("nan")
        ratio = f"{m.rps_vs_ping:.3f}x" if m.ref_rps else "-"
        cpu_ratio = f"{m.cpu_ms / m.ref_cpu_ms:.1f}x" if m.ref_cpu_ms > 0 else "-"
        print(
            f"{m.label:<12} {m.route.label:<27} {r.requests:>8} {r.rps:>7.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.non_2xx:>7} {r.socket_errors:>8} {m.cpu_ms:>14.3f} {util:>7.0f}% {ratio:>13} {cpu_ratio:>15}"
        )
    print(
        "srv CPU = CPU time of the serving process (the ping app or the hub) over the measured window, from\n"
        "/proc; for POST it includes the dispatcher delivering the journals to the ERP at the same time.\n"
        "On a shared machine req/s moves with the neighbours' load; CPU per request is the steadier ratio.\n"
        "vs ping: a hub row against the mean of the pings measured right before and after its hub ran;\n"
        "a ping row against ping #1 (how much the machine drifted)."
    )


def print_policy_summary(measured: list[Measured], ctx: Context) -> None:
    rows = [m for m in measured if m.variant.startswith("redis-chain")]
    if not rows:
        return
    base = {m.route.key: m for m in measured if m.variant == "embedded"}
    print()
    print("full policy chain (key auth + Redis rate limit + idempotency on POST; store on Redis) vs bare ping:")
    print(
        f"  {'hub':<12} {'path':<27} {'req/s':>7} {'vs ping':>8} {'goal':>6} {'met':>4}"
        f"  {'ping CPU/req / path CPU/req':>27}  {'Redis CPU ms/req':>16}  {'worker CPU ms/req':>17}"
        f"  {'embedded hub vs ping':>20}"
    )
    summary = []
    for m in rows:
        goal = GOALS["policy_read"] if m.route.key == "get" else GOALS["policy_write"]
        ratio, cpu_ratio = m.rps_vs_ping, m.ping_cpu_share
        summary.append(
            {"hub": m.label, "path": m.route.label, "vs_ping": ratio, "cpu_vs_ping": cpu_ratio, "goal": goal}
        )
        redis = f"{m.redis_cpu_ms:.3f}" if m.redis_cpu_ms is not None else "n/a"
        worker = f"{m.worker_cpu_ms:.3f}" if m.worker_cpu_ms is not None else "-"
        b = base.get(m.route.key)
        emb = _pct(b.rps_vs_ping) if b and b.ref_rps else "-"
        print(
            f"  {m.label:<12} {m.route.label:<27} {m.result.rps:>7.0f} {_pct(ratio):>8} "
            f"{'>=' + _pct(goal)[:-3] + '%':>6} {'yes' if ratio >= goal else 'NO':>4}  {_pct(cpu_ratio):>27}"
            f"  {redis:>16}  {worker:>17}  {emb:>20}"
        )
    if ctx.args.summary_json:  # bench/policy_repeat.py reads it
        Path(ctx.args.summary_json).write_text(json.dumps(summary))
    print(
        "  (the CPU column is the ratio if the hub had the CPU to itself: throughput of a CPU-bound process\n"
        "   is 1/CPU per request; the Redis server's own CPU is not in the hub's figure. redis+worker: the hub\n"
        "   only accepts and a `billing-hub dispatch` process delivers, its CPU in the worker column; redis,\n"
        "   later: the hub only accepts and nothing delivers during the loads, so the 202 path has the cores to\n"
        "   itself, as on an API node whose workers run elsewhere; a worker started after the loads drains the\n"
        "   backlog, its rate in the delivery report below)"
    )
    for key, (records, owed) in ctx.audit_lag.items():
        if not key.startswith("redis-chain"):
            continue
        post = next((m for m in rows if m.route.key == "post" and m.variant == key), None)
        delivered = ""
        if post is not None:
            start, end = post.window
            n = ctx.erp.count_at(end) - ctx.erp.count_at(start)
            delivered = f"; the dispatcher delivered {n / (end - start) if end > start else 0:.0f} journals/s meanwhile"
        print(
            f"  !! caveat: when the load ended the Redis audit chain held {records} records of ~{owed} owed (calls\n"
            "  !! answered + deliveries): the hub answers before its audit append, and the appends queue up, so\n"
            f"  !! these req/s outrun the audit trail and are not sustainable{delivered}"
        )


def print_tracing_summary(measured: list[Measured]) -> None:
    by = {(m.variant, m.route.key): m for m in measured if m.variant.startswith("trace-")}
    if not by:
        return
    print()
    print("tracing (embedded hub; discarding exporter; sampler from OTEL_TRACES_SAMPLER[_ARG]) vs tracing off:")
    print(
        f"  {'variant':<11} {'route':<27} {'req/s':>7} {'req/s loss':>10} {'loss, ping-adj':>14} "
        f"{'CPU ms/req':>10} {'CPU/req added':>13} {'loss if CPU-bound':>17}"
    )

    def losses(m: Measured, off: Measured) -> tuple[float, float, float]:
        raw = 1 - m.result.rps / off.result.rps if off.result.rps else float("nan")
        adjusted = 1 - m.rps_vs_ping / off.rps_vs_ping if off.ref_rps and m.ref_rps else float("nan")
        cpu_bound = 1 - off.cpu_ms / m.cpu_ms if m.cpu_ms else float("nan")
        return raw, adjusted, cpu_bound

    for variant in ("trace-off", "trace-10", "trace-100"):
        for route in ("get", "post"):
            m, off = by.get((variant, route)), by.get(("trace-off", route))
            if m is None or off is None:
                continue
            raw, adjusted, cpu_loss = losses(m, off)
            added = m.cpu_ms / off.cpu_ms - 1 if off.cpu_ms else float("nan")
            print(
                f"  {m.label:<11} {m.route.label:<27} {m.result.rps:>7.0f} {_pct(raw):>10} {_pct(adjusted):>14} "
                f"{m.cpu_ms:>10.3f} {_pct(added):>13} {_pct(cpu_loss):>17}"
            )
    goal = GOALS["tracing_10_loss"]
    for route in ("post", "get"):
        m, off = by.get(("trace-10", route)), by.get(("trace-off", route))
        if m is None or off is None:
            continue
        raw, adjusted, cpu_loss = losses(m, off)
        verdict = (
            "met" if max(adjusted, cpu_loss) <= goal else "NOT met" if min(adjusted, cpu_loss) > goal else "unclear"
        )
        print(
            f"  goal <= {_pct(goal)} loss at 10% sampling, {m.route.label}: ping-adjusted req/s {_pct(adjusted)}, "
            f"CPU-bound {_pct(cpu_loss)} -> {verdict}"
        )
    print(
        "  (loss, ping-adj = 1 - (req/s / its ping) / (off req/s / its ping): the neighbours' drift divided out;\n"
        "   loss if CPU-bound = 1 - off CPU/req / on CPU/req; negative = faster than off, i.e. noise;\n"
        "   a verdict is 'met' / 'NOT met' only when both measures agree, else 'unclear')"
    )
    same = {m.route.key: m for m in measured if m.variant == "embedded"}
    repeat = [
        f"{m.route.label} ping-adjusted req/s {m.rps_vs_ping / same[r].rps_vs_ping - 1:+.1%}, "
        f"CPU/req {m.cpu_ms / same[r].cpu_ms - 1:+.1%}"
        for r in ("get", "post")
        if (m := by.get(("trace-off", r))) is not None and r in same and same[r].ref_rps and same[r].cpu_ms
    ]
    if repeat:
        print(f"  noise check, 'trace off' vs 'embedded' (same configuration, minutes apart): {'; '.join(repeat)}")


def print_delivery_rates(measured: list[Measured], erp: ErpCounter) -> None:
    rows = [m for m in measured if m.route.method == "POST"]
    if not rows:
        return
    print()
    print(
        "dispatcher -> ERP stub during each measured POST load (the hub process itself, or its worker process for\n"
        "redis+worker; journals/s from the ERP count):"
    )
    for m in rows:
        start, end = m.window
        delivered = erp.count_at(end) - erp.count_at(start)
        span = end - start
        print(
            f"  {m.label:<12} accepted {m.result.rps:5.0f}/s, delivered {delivered / span if span else 0:5.0f}/s "
            f"({delivered} in {span:.1f} s)"
        )


def print_cpu_budget(measured: list[Measured]) -> None:
    """Where the machine's CPU went per request: each process measured, and the rest (the load
    generator, the kernel's network stack, anything else on the machine). When the machine is busy
    on every core, req/s cannot rise above cores / CPU per request however fast the hub alone is."""
    rows = [m for m in measured if m.busy_cores is not None and (m.variant == "ping" or m.route.method == "POST")]
    if not rows:
        return
    cores = os.cpu_count() or 1
    print()
    print(f"the machine's CPU per request (ms), by process, during each ping and POST load ({cores} CPUs):")
    print(f"  {'row':<12} {'path':<27} {'server':>7} {'Redis':>6} {'worker':>7} {'ERP':>6} {'rest':>6} {'total':>6}"
          f"  {'busy cores':>10}")  # fmt: skip
    for m in rows:
        start, end = m.window
        requests = m.result.requests
        if not requests or end <= start or m.busy_cores is None:
            continue
        total = 1000 * m.busy_cores * (end - start) / requests
        parts = [m.cpu_ms, m.redis_cpu_ms, m.worker_cpu_ms, m.erp_cpu_ms]
        rest = total - sum(p for p in parts if p is not None)
        shown = [f"{p:.3f}" if p is not None else "-" for p in parts]
        print(
            f"  {m.label:<12} {m.route.label:<27} {shown[0]:>7} {shown[1]:>6} {shown[2]:>7} {shown[3]:>6} "
            f"{rest:6.3f} {total:6.3f}  {m.busy_cores:5.2f} of {cores}"
        )
    print(
        "  (total = the whole machine's busy time over the load / requests; rest = total minus the processes\n"
        "   measured: wrk, the kernel's loopback networking, anything else running. With every core busy,\n"
        "   req/s = cores / total: the POST rows' total against ping's is the ceiling of their ratio to ping)"
    )


def drain_later(ctx: Context, variant: Variant, post: Measured, before_hub: int) -> list[str]:
    """The deferred variant's delivery: a worker started once the loads are over drains the backlog the
    hub accepted, counted at the ERP stub; its rate and CPU per journal, and whether every journal arrived."""
    accepted = 1 + (post.warmup.ok if post.warmup else 0) + post.result.ok
    in_erp = ctx.erp.sample()[1] - before_hub
    started = time.monotonic()
    worker = start_worker(ctx, variant, ctx.hub_env[variant.key])
    ctx.workers[variant.key] = worker
    ctx.watched.append(worker)
    ready = time.monotonic()
    lines = report_delivery(
        ctx.erp,
        accepted,
        before_hub,
        (ready, ready),
        ctx.args,
        title=f"{variant.label}: a worker started after the loads",
        since="ready worker's",
    )
    final = ctx.erp.samples[-1][1] - before_hub
    reached = next(t for t, c in ctx.erp.samples if c - before_hub == final)
    cpu = cpu_seconds(worker.process.pid)
    drained = final - in_erp
    per = f"{1000 * cpu / drained:.3f} ms CPU per journal (start-up included)" if drained > 0 else "nothing to drain"
    lines.append(
        f"  in the ERP before the worker started: {in_erp} (nothing delivers during the loads); the worker was "
        f"ready {ready - started:.1f} s after its start and delivered {drained} in {reached - ready:.1f} s "
        f"= {drained / (reached - ready) if reached > ready else 0:.0f} journals/s, {per}"
    )
    return lines


def report_delivery(
    erp: ErpCounter,
    accepted: int,
    before_hub: int,
    window: tuple[float, float],
    args: argparse.Namespace,
    *,
    title: str = "embedded hub: dispatcher -> ERP stub",
    since: str = "measured load",
) -> list[str]:
    """Poll until the ERP count covers every accepted journal and stays put (bounded); return the report.

    ``accepted`` is a lower bound: requests in flight when the load generator stopped were accepted by
    the hub but never counted by the generator, so the drain also waits for the count to go quiet.
    ``before_hub`` is the ERP's count before this hub posted anything (the stub outlives the hubs).
    """
    load_start, load_end = window
    limit = load_end + args.drain_timeout
    stalled = False
    _, count = erp.sample()
    last_change = time.monotonic()
    while time.monotonic() < limit:
        quiet = time.monotonic() - last_change
        if count - before_hub >= accepted and quiet >= QUIET_S:
            break
        if quiet >= STALL_S:
            stalled = True
            break
        time.sleep(SAMPLE_INTERVAL_S)
        previous, (_, count) = count, erp.sample()
        if count != previous:
            last_change = time.monotonic()

    c_start, c_end = erp.count_at(load_start), erp.count_at(load_end)
    final = erp.samples[-1][1]
    reached = next(t for t, c in erp.samples if c == final)
    lines = ["", f"delivery, {title} (journal count from GET /erp/journals, polled ~1 s)"]
    lines.append(
        f"  journals this hub accepted: >= {accepted} (2xx counted by the load generator, incl. warm-up and "
        f"setup); journals in the ERP at the end: {final}"
    )
    span = load_end - load_start
    if span > 0:  # a deferred variant's window is the instant its worker started
        lines.append(
            f"  during the measured POST load: {c_end - c_start} delivered in {span:.1f} s "
            f"= {(c_end - c_start) / span:.0f} journals/s"
        )
    lines.append(f"  in the ERP at the end of the load: {c_end}; backlog then: {final - c_end}")
    after = reached - load_end
    if final > c_end and after < 1.5 * SAMPLE_INTERVAL_S:
        lines.append(f"  after the load: the backlog of {final - c_end} was gone by the next poll ({after:.1f} s)")
    elif final > c_end:
        lines.append(
            f"  after the load: {final - c_end} more in {after:.1f} s "
            f"= {(final - c_end) / after:.0f} journals/s "
            f"(all {final} in the ERP {reached - load_start:.1f} s after the {since} began)"
        )
    if stalled:
        lines.append(f"  !! STALL: the ERP count stayed at {final} for {STALL_S:.0f} s with >= {accepted} accepted")
    elif final - before_hub < accepted:
        lines.append(f"  !! NOT DRAINED within {args.drain_timeout:.0f} s: {final - before_hub} of >= {accepted}")
    timeline = " ".join(f"{t - load_start:+.1f}:{c}" for t, c in erp.samples if t >= load_start - 3)
    lines.append(f"  timeline (s from the {since} start : ERP count): {timeline}")
    statuses, distinct = erp.recent_posts()
    if statuses:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))
        lines.append(
            f"  ERP stub, its last {sum(statuses.values())} POST /erp/journals: statuses {shown} "
            f"(200 = duplicate of an already posted reference); {distinct} distinct delivery references"
        )
    return lines


def report_logs(servers: Servers) -> None:
    print()
    for server in servers.items:
        try:
            lines = server.log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        bad = [ln for ln in lines if any(w in ln for w in ("Traceback", "ERROR", "Error", "CRITICAL"))]
        if not server.alive():
            rc = server.process.returncode
            how = " (stopped)" if rc != -signal.SIGKILL else " (killed: did not stop in time)"
            state = f"exited {rc}" + (how if server.name in servers.stopped else "")
        else:
            state = "running"
        print(f"log {server.name:<15} {len(lines):>6} lines, {len(bad):>5} error lines ({state})")
        for line in bad[:5]:
            print(f"    {line[:200]}")


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


def start_fixed(servers: Servers, targets: list[str], env: dict[str, str]) -> tuple[dict[str, Server], Server]:
    """The stubs and the ping app: they run for the whole run."""
    stubs: dict[str, Server] = {}
    for kind in targets:
        if not (ROOT / "connectors" / kind / "_stub.py").exists():
            print(f"note: no stub for target {kind!r}; the hub will dead-letter work for it")
            continue
        port = free_port()
        code = STUB_CODE.format(kind=kind, port=port)
        stubs[kind] = servers.start(f"stub-{kind}", [sys.executable, "-c", code], port, env)
    port = free_port()
    ping_argv = [sys.executable, str(ROOT / "bench" / "ping_app.py"), "--port", str(port)]
    ping = servers.start("ping", ping_argv, port, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    for server in stubs.values():
        wait_ready(server, "/", need_200=False, deadline=deadline)  # any answer: it listens
    wait_ready(ping, "/ping", need_200=True, deadline=deadline)
    return stubs, ping


def run(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(KNOWN_STUBS))
    if unknown or "erp" not in targets:
        print(f"targets must be among {KNOWN_STUBS} and include erp (got {targets})", file=sys.stderr)
        return 2
    wanted = [r.strip() for r in args.routes.split(",") if r.strip() and r.strip() != "ping"]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if bad := sorted(set(wanted) - {"get", "post"}) + sorted(set(scenarios) - set(SCENARIOS)):
        print(f"unknown route(s)/scenario(s) {bad}; routes: ping,get,post; scenarios: {','.join(SCENARIOS)}")
        return 2
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    if args.loadgen == "wrk" and shutil.which("wrk") is None:
        print("wrk is not on PATH", file=sys.stderr)
        return 2
    args.redis_prefix = f"bench-{secrets.token_hex(6)}:"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` still stops the servers
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        workdir = Path(tmp)
        servers = Servers(workdir)
        redis_side = RedisSide(args.redis_url, args.redis_prefix) if "policy" in scenarios else None
        try:
            return _run(args, targets, wanted, scenarios, use_wrk, servers, redis_side)
        except BenchError as exc:
            print(f"\nBENCH FAILED: {exc}", file=sys.stderr)
            report_logs(servers)
            return 1
        finally:
            servers.stop_all()
            if redis_side is not None:
                with contextlib.suppress(Exception):
                    removed = redis_side.cleanup()
                    print(f"Redis: removed the run's {removed} keys under {args.redis_prefix!r}")
                redis_side.close()
            if args.keep_logs:
                keep = Path(args.keep_logs)
                keep.mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    shutil.copy(log, keep / log.name)
                shutil.copy(workdir / "bench-policy.toml", keep / "bench-policy.toml")


def _run(
    args: argparse.Namespace,
    targets: list[str],
    wanted: list[str],
    scenarios: list[str],
    use_wrk: bool,
    servers: Servers,
    redis_side: RedisSide | None,
) -> int:
    t0 = time.monotonic()
    api_key = "bench_" + secrets.token_urlsafe(24)
    policy_file = servers.workdir / "bench-policy.toml"
    policy_file.write_text(bench_policy(api_key))
    redis_note = redis_side.check() if redis_side is not None else None
    env = dict(os.environ)
    stripped = sorted(k for k in env if k.startswith("OTEL_"))
    source = "the working tree (live)"
    if args.snapshot:
        src = snapshot_source(servers.workdir)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
        servers.cwd = servers.workdir
        source = "a copy of the working tree taken at the start (every server runs the same code)"
    stubs, ping_server = start_fixed(servers, targets, env)
    loader = Loader("wrk" if use_wrk else "python", servers.workdir, args.concurrency, args.threads)
    durability = args.durability or os.environ.get("BILLING_HUB_DURABILITY") or "full (default)"
    transport = os.environ.get("BILLING_HUB_HTTP_TRANSPORT", "aiohttp (default)")
    generator = f"wrk ({args.threads} thread)" if use_wrk else "python aiohttp process"
    print(
        f"load generator: {generator}; concurrency {args.concurrency}; warm-up {args.warmup:g} s; "
        f"measured {args.duration:g} s per route; {os.cpu_count()} CPUs; scenarios: {','.join(scenarios)}"
    )
    print(
        f"hub targets: {','.join(stubs)}; durability: {durability}; connector transport: {transport}; "
        f"bench policy: every rate limit {BENCH_RATE_LIMIT}/60 s, one bench client with every scope"
    )
    print(f"servers import {source}")
    if redis_note:
        print(redis_note)
    if stripped:
        print(f"note: not passed to the hubs (each variant sets its own): {', '.join(stripped)}")
    print()

    erp = ErpCounter(stubs["erp"].url)
    ctx = Context(args, servers, loader, erp, redis_side, t0, watched=[*stubs.values(), ping_server])
    notes: list[str] = []
    measured: list[Measured] = []
    try:
        ping_route = Route("ping", "GET /ping (bare Litestar)", "GET", ping_server.url + "/ping", {})
        pings: list[Measured] = []

        def ping_now() -> None:
            n = len(pings) + 1
            m = measure(ctx, "ping", f"ping #{n}", ping_route, ping_server, warm_up=n == 1)
            pings.append(m)
            measured.append(m)

        ping_now()
        groups: list[tuple[int, list[Measured]]] = []
        for variant in variants(scenarios):
            rows = run_variant(ctx, variant, wanted, env, stubs, policy_file, api_key, notes)
            measured.extend(rows)
            groups.append((len(pings) - 1, rows))
            if args.ping == "bracket":
                ping_now()
        for before, rows in groups:
            around = pings[before : before + 2]
            for m in rows:
                m.ref_rps = sum(p.result.rps for p in around) / len(around)
                m.ref_cpu_ms = sum(p.cpu_ms for p in around) / len(around)
        for p in pings:
            p.ref_rps, p.ref_cpu_ms = pings[0].result.rps, pings[0].cpu_ms
        print()
        for note in notes:
            print(note)
        print()
        print_table(measured)
        if len(pings) > 1:
            rates = [p.result.rps for p in pings]
            print(f"ping over the run: {min(rates):.0f} to {max(rates):.0f} req/s ({len(pings)} measurements)")
        print_policy_summary(measured, ctx)
        print_tracing_summary(measured)
        print_delivery_rates(measured, erp)
        print_cpu_budget(measured)
    finally:
        erp.close()
    refused = [m for m in measured if m.refused]
    total = sum(m.result.requests + (m.warmup.requests if m.warmup else 0) for m in measured)
    print()
    if refused:
        print("!! FAILED: requests not answered 2xx (warm-up included):")
        for m in refused:
            statuses = dict(Counter(m.result.statuses) + Counter(m.warmup.statuses if m.warmup else {}))
            print(f"!!   {m.label} {m.route.label}: {m.refused} (statuses {statuses}, socket errors incl.)")
    else:
        print(f"2xx check: all {total} requests of the run (warm-up included) answered 2xx; 0 socket errors")
    died = servers.died()
    report_logs(servers)
    print(f"\ntotal run time {time.monotonic() - t0:.1f} s")
    if died:
        print(f"servers that died: {', '.join(died)}", file=sys.stderr)
        return 1
    return 1 if refused else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--loadgen-worker"]:
        return loadgen_worker(argv[1])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per route")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per route (0: none)")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--routes", default="ping,get,post", help="hub routes per variant: get, post (ping is always measured)"
    )
    parser.add_argument(
        "--ping",
        choices=["bracket", "once"],
        default="bracket",
        help="bracket: measure the bare ping before and after every hub variant (default); once: first only",
    )
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="servers import the live tree instead of a copy taken at the start of the run",
    )
    parser.add_argument(
        "--targets",
        default=os.environ.get("BILLING_HUB_TARGETS", "ehr,erp"),
        help="hub targets; default $BILLING_HUB_TARGETS or ehr,erp",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the policy scenario; default $REDIS_URL or redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--durability", choices=["normal", "full"], help="BILLING_HUB_DURABILITY for the hub")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the servers' logs and the policy to DIR")
    parser.add_argument(
        "--summary-json", metavar="FILE", help="also write the policy chain's rows (ratios to ping, goals) to FILE"
    )
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="max s to wait for deliveries")
    parser.add_argument(
        "--settle", type=float, default=8.0, help="max s other variants wait for their backlog before stopping"
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or args.concurrency < 1 or not 0 <= args.warmup <= 30:
        parser.error("need 0 < duration <= 120, concurrency >= 1, 0 <= warmup <= 30")
    args.drain_timeout = min(max(args.drain_timeout, 0.0), 60.0)
    args.settle = min(max(args.settle, 0.0), 30.0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
