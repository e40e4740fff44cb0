"""Where the hub's time goes under load: py-spy samples of the hub under the GET and the POST load.

Starts the stubs and one hub exactly as ``bench/api_bench.py`` does (bench policy, fresh data dir, a
snapshot of the source), loads one route at a time with wrk and, after a warm-up, records the hub with
``py-spy record --native --idle --threads`` (wall-clock samples of every thread, Python and C frames) for
``--duration`` seconds. Then it prints, per route and thread:

* the top functions by own time (the innermost Python frame of a sample, so the C it calls is
  included: ``db.execute`` time shows on the function that called it) and by cumulative time;
* the same samples attributed to one bucket each (Litestar internals, governance middleware, audit
  log, SQLite store and writer, idempotency, msgspec, dispatcher and HTTP client, telemetry, uvicorn and
  the event loop, waiting for I/O (epoll), blocked in fsync).

Needs py-spy (``.venv/bin/pip install py-spy``) and the right to ptrace the hub (root, or
``kernel.yama.ptrace_scope=0``).

    python bench/profile_hub.py [--routes get,post] [--duration 8] [--variant embedded] [--out DIR]
    python bench/profile_hub.py --analyze DIR/embedded-post.collapsed.txt   # tables of a saved recording
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import api_bench as ab  # this directory is sys.path[0] when run as a script

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^(?:process \d+:.*|thread \((?P<tid>\w+)\)(?::\s*(?P<name>.*))?)$")

# (bucket, predicate over a frame's short file and function), checked from the innermost frame out.
IDLE_WAIT = "waiting for I/O (epoll/poll, idle)"
IDLE_LOCK = "idle: waiting on a queue/lock/event"
GIL_WAIT = "waiting for the GIL (another thread runs Python)"
FSYNC = "blocked in fsync/fdatasync (SQLite commit)"
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("audit log (policies/_audit_*)", ("policies/_audit",)),
    ("idempotency (policies/_idempotency_*)", ("policies/_idempotency", "policies/idempotency")),
    ("rate limit (policies/_ratelimit_*)", ("policies/_ratelimit", "policies/ratelimit")),
    ("governance middleware + policy engine", ("gateway/governance", "policies/")),
    ("SQLite store + group-commit writer", ("gateway/store/_sqlite",)),
    ("Redis store (gateway/store/_redis*)", ("gateway/store/_redis",)),
    ("redis-py client", ("redis/",)),
    ("dispatcher + connectors", ("gateway/dispatcher", "gateway/retry", "connectors/", "tenacity/")),
    ("HTTP client (httpx/aiohttp)", ("httpx/", "httpcore/", "aiohttp/", "httpx_aiohttp", "yarl/", "multidict/")),
    ("telemetry (opentelemetry, metrics)", ("opentelemetry/", "gateway/telemetry", "gateway/tracing", "prometheus")),
    ("hub handlers/views/canonical", ("gateway/", "canonical/")),
    ("msgspec (encode/decode/convert)", ("msgspec/",)),
    ("Litestar internals", ("litestar/",)),
    ("uvicorn + httptools", ("uvicorn/", "httptools/")),
    ("asyncio/uvloop event loop", ("asyncio/", "uvloop/", "contextvars", "selectors")),
]


# Subsystems counted "on the stack" (a sample counts once for each subsystem any of its frames is in).
ON_STACK: list[tuple[str, tuple[str, ...]]] = [
    ("governance middleware (gateway/governance.py)", ("gateway/governance.py",)),
    ("  audit append (Governance.audit)", ("gateway/governance_state.py", "policies/_audit")),
    ("  rate limit", ("policies/_ratelimit", "policies/ratelimit")),
    ("  idempotency", ("policies/_idempotency", "policies/idempotency")),
    ("route handler (Litestar HTTPRoute.handle)", ("litestar/routes/http.py",)),
    ("store (gateway/store)", ("gateway/store/",)),
    ("dispatcher (gateway/dispatcher.py)", ("gateway/dispatcher.py",)),
    ("HTTP client (httpx/aiohttp)", ("httpx/", "httpcore/", "aiohttp/", "httpx_aiohttp")),
    ("tracing SDK (spans, context, propagation)", ("opentelemetry/trace", "opentelemetry/sdk/trace",
                                                   "opentelemetry/context", "opentelemetry/propagat",
                                                   "gateway/tracing.py")),
    ("metrics SDK", ("opentelemetry/metrics", "opentelemetry/sdk/metrics")),
    ("redis-py", ("redis/",)),
]  # fmt: skip


def short(path: str) -> str:
    for marker in ("site-packages/", "/src/", str(ab.ROOT) + "/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def parse(raw: Path) -> list[tuple[str, list[tuple[str, str, bool]], int]]:
    """(thread, frames root->leaf as (function, short file, is_python), count) per collapsed line."""
    out = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread = "?"
        frames: list[tuple[str, str, bool]] = []
        for part in stack.split(";"):
            t = _THREAD.match(part)
            if t and not frames:
                if t.group("tid"):
                    thread = f"{t.group('name') or 'thread'} ({t.group('tid')})"
                continue
            m = _FRAME.match(part)
            if m is None:
                frames.append((part, "", False))
                continue
            file = m.group("file")
            frames.append((m.group("func"), short(file), file.endswith(".py") or file.endswith(".pyx")))
        out.append((thread, frames, int(count)))
    return out


def thread_names(samples: list[tuple[str, list[tuple[str, str, bool]], int]]) -> dict[str, str]:
    """A readable name per thread id, from what its stacks run."""
    names: dict[str, str] = {}
    for thread, frames, _ in samples:
        if thread in names:
            continue
        if thread.startswith("MainThread"):
            names[thread] = "event loop (main)"
            continue
        text = ";".join(f"{f} {p}" for f, p, _ in frames)
        if "_sqlite_writer" in text:
            names[thread] = "sqlite-writer thread"
        elif "uvicorn" in text or "run_until_complete" in text or "runners.py" in text:
            names[thread] = "event loop (main)"
        elif "opentelemetry" in text:
            names[thread] = "otel exporter thread"
    return names


def bucket_of(frames: list[tuple[str, str, bool]]) -> str:
    natives = [f for f, _, py in frames if not py]
    leaf_native = natives[-1] if natives and not frames[-1][2] else ""
    if any(n in leaf_native for n in ("epoll_wait", "epoll_pwait", "poll", "select")):
        return IDLE_WAIT
    # After the innermost Python frame: the GIL is a condition variable (timed wait), while
    # queue.get / Lock.acquire / Event.wait block on a semaphore.
    last_py = max((i for i, (_, _, py) in enumerate(frames) if py), default=-1)
    tail = [f for f, _, _ in frames[last_py + 1 :]][-3:]
    if any("pthread_cond" in f for f in tail):
        return GIL_WAIT
    if any(n in f for f in tail for n in ("futex", "sem_wait", "sem_clockwait", "sem_timedwait", "acquire_lock")):
        return IDLE_LOCK
    if any(("fsync" in f or "fdatasync" in f) for f, _, py in frames if not py):
        return FSYNC
    if any(("sqlite3" in f) for f, _, py in frames[-12:] if not py):
        inner_py = next((p for _, p, py in reversed(frames) if py), "")
        if "_audit" in inner_py:
            return "audit log (policies/_audit_*)"
    for _, path, py in reversed(frames):
        if not py:
            if "msgspec" in path or "_core" in path:
                return "msgspec (encode/decode/convert)"
            continue
        for name, prefixes in BUCKETS:
            if any(path.startswith(p) or f"/{p}" in path for p in prefixes):
                return name
    return "other"


def tables(samples: list[tuple[str, list[tuple[str, str, bool]], int]], top: int, title: str) -> list[str]:
    names = thread_names(samples)
    by_thread = Counter[str]()
    for thread, _, n in samples:
        by_thread[thread] += n
    total = sum(by_thread.values())
    lines = [f"== {title}: {total} samples (wall clock, idle included) =="]
    lines.append(
        "threads: " + ", ".join(f"{names.get(t, t)} {100 * n / total:.0f}%" for t, n in by_thread.most_common())
    )
    main = next((t for t, name in names.items() if name == "event loop (main)"), by_thread.most_common(1)[0][0])
    for thread, label in [(main, "event loop (main thread)"), *[(t, names.get(t, t)) for t in by_thread if t != main]]:
        chosen = [(f, n) for t, f, n in samples if t == thread]
        count = sum(n for _, n in chosen)
        if count < 0.02 * total and thread != main:
            continue
        buckets = Counter[str]()
        stacked = Counter[str]()
        own = Counter[str]()
        cum = Counter[str]()
        for frames, n in chosen:
            buckets[bucket_of(frames)] += n
            py = [(f, p) for f, p, is_py in frames if is_py]
            b = bucket_of(frames)
            if b in (IDLE_WAIT, IDLE_LOCK, GIL_WAIT, FSYNC):
                own[f"[{b}]"] += n
            elif py:
                own[f"{py[-1][0]} ({py[-1][1]})"] += n
            for key in {f"{f} ({p})" for f, p in py}:
                cum[key] += n
            paths = [p for _, p, is_py in frames if is_py]
            for name, prefixes in ON_STACK:
                if any(p.startswith(x) for p in paths for x in prefixes):
                    stacked[name] += n
        lines.append("")
        lines.append(f"-- {label}: {count} samples ({100 * count / total:.0f}% of all) --")
        lines.append(f"{'bucket (innermost recognised frame)':<48} {'share':>6}")
        for name, n in buckets.most_common():
            lines.append(f"{name:<48} {100 * n / count:>5.1f}%")
        busy = count - buckets[IDLE_WAIT] - buckets[IDLE_LOCK]
        lines.append(f"{'(not idle = everything but epoll and queue waits)':<48} {100 * busy / count:>5.1f}%")
        if any(stacked.values()):
            lines.append("")
            lines.append(f"{'on the stack (cumulative), by subsystem':<48} {'share':>6}")
            for name, _ in ON_STACK:
                if stacked[name]:
                    lines.append(f"{name:<48} {100 * stacked[name] / count:>5.1f}%")
        lines.append("")
        lines.append(f"top {top} by own time (innermost Python frame; C callees included), % of thread samples")
        for key, n in own.most_common(top):
            lines.append(f"  {100 * n / count:5.1f}%  {key[:150]}")
        lines.append("")
        lines.append(f"top {top} by cumulative time (on the stack), % of thread samples")
        skip = (
            "<module>", "run (", "run_forever", "run_until_complete", "_run_once", "main (", "serve (",
            "asyncio_run (", "Runner.run (", "Server.run (", "Thread.", "ProxyHeadersMiddleware", "Litestar.__call__",
        )  # fmt: skip
        shown = 0
        for key, n in cum.most_common():
            if any(key.startswith(s) for s in skip) or "uvicorn/server.py" in key or "asyncio/runners.py" in key:
                continue
            lines.append(f"  {100 * n / count:5.1f}%  {key[:150]}")
            shown += 1
            if shown >= top:
                break
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", default="get,post", help="comma list of get, post")
    parser.add_argument("--variant", default="embedded", help="embedded, redis-chain, trace-off, trace-10, trace-100")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of sampling per route")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", help="keep the collapsed stacks (flamegraph.pl input) here")
    parser.add_argument("--targets", default="ehr,erp")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--analyze", metavar="FILE", nargs="+", help="only print the tables of saved collapsed stacks")
    args = parser.parse_args()
    if args.analyze:
        for name in args.analyze:
            print("\n".join(tables(parse(Path(name)), args.top, Path(name).name)))
            print()
        return 0
    py_spy = shutil.which("py-spy") or str(ab.ROOT / ".venv" / "bin" / "py-spy")
    if not Path(py_spy).exists() or shutil.which("wrk") is None:
        print("needs py-spy (.venv/bin/pip install py-spy) and wrk", file=sys.stderr)
        return 2
    variant = next((v for v in ab.variants(list(ab.SCENARIOS)) if v.key == args.variant), None)
    if variant is None:
        print(f"unknown variant {args.variant!r}", file=sys.stderr)
        return 2
    # What start_hub and measure read from the bench's options.
    args.durability, args.settle, args.drain_timeout, args.snapshot = None, 0.0, 0.0, True
    args.redis_prefix = f"bench-prof-{secrets.token_hex(6)}:"
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hub-profile-") as tmp:
        workdir = Path(tmp)
        servers = ab.Servers(workdir)
        redis_side = ab.RedisSide(args.redis_url, args.redis_prefix) if "redis" in variant.key else None
        try:
            api_key = "bench_" + secrets.token_urlsafe(24)
            policy_file = workdir / "bench-policy.toml"
            policy_file.write_text(ab.bench_policy(api_key))
            src = ab.snapshot_source(workdir)
            env = dict(os.environ)
            env["PYTHONPATH"] = str(src)
            servers.cwd = workdir
            stubs, ping = ab.start_fixed(servers, [t for t in args.targets.split(",") if t], env)
            loader = ab.Loader("wrk", workdir, args.concurrency, 1)
            erp = ab.ErpCounter(stubs["erp"].url)
            ctx = ab.Context(args, servers, loader, erp, redis_side, time.monotonic(), [*stubs.values(), ping])
            hub = ab.start_hub(ctx, variant, env, stubs, policy_file)
            location, _ = ab.create_transaction(hub, api_key)
            get_h, post_h = ab.bench_headers(api_key)
            routes = {
                "get": ab.Route("get", "GET /v1/transactions/{id}", "GET", hub.url + location, get_h),
                "post": ab.Route(
                    "post",
                    "POST /v1/journals (202)",
                    "POST",
                    hub.url + "/v1/journals",
                    post_h,
                    ab.journal_template(),
                    idempotency_key=variant.idempotency_key,
                ),
            }
            for key in [r.strip() for r in args.routes.split(",") if r.strip()]:
                route = routes[key]
                warm = loader.start(route, args.warmup, f"prof-{key}-w")
                ab.Loader.finish(warm, args.warmup + 30)
                load = loader.start(route, args.duration + 3, f"prof-{key}-m")
                time.sleep(1.0)
                raw = workdir / f"{key}.txt"
                cpu0 = ab.cpu_seconds(hub.process.pid)
                t0 = time.monotonic()
                spy = subprocess.run(
                    [py_spy, "record", "-p", str(hub.process.pid), "--duration", str(round(args.duration)),
                     "--rate", str(args.rate), "--native", "--idle", "--threads", "--full-filenames", "--format", "raw",
                     "-o", str(raw)],
                    capture_output=True, text=True, check=False, timeout=args.duration + 60,
                )  # fmt: skip
                cpu = ab.cpu_seconds(hub.process.pid) - cpu0
                wall = time.monotonic() - t0
                result = ab.Loader.finish(load, args.duration + 60)
                if spy.returncode != 0 or not raw.exists():
                    raise ab.BenchError(f"py-spy failed: {spy.stderr[-1500:]}")
                title = (
                    f"{variant.label} hub, {route.label}: {result.rps:.0f} req/s under py-spy "
                    f"({result.non_2xx} non-2xx), hub CPU {100 * cpu / wall:.0f}% of one core"
                )
                report += tables(parse(raw), args.top, title)
                report.append("")
                if args.out:
                    out = Path(args.out)
                    out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(raw, out / f"{variant.key}-{key}.collapsed.txt")
            erp.close()
        except ab.BenchError as exc:
            print(f"PROFILE FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            servers.stop_all()
            if redis_side is not None:
                redis_side.cleanup()
                redis_side.close()
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
