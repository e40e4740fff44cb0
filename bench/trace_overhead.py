"""The server middleware's own cost per request, tracing off / 10% / 100%, in isolation.

`make bench` measures whole requests, and on a shared 2-core machine its run-to-run noise (±15%) is
larger than what tracing adds. This times only what tracing changes: the telemetry middleware around
a trivial ASGI app, 20,000 requests per variant, each variant in its own process.

    python bench/trace_overhead.py
"""

from __future__ import annotations

import os
import subprocess
import sys

VARIANTS = [("off", "always_on", "tracing off"), ("discard", "traceidratio", "tracing 10%"),
            ("discard", "always_on", "tracing 100%")]  # fmt: skip

CHILD = """
import asyncio, os, time
from gateway.telemetry import setup_telemetry, server_middleware
telemetry = setup_telemetry(os.environ["EXPORTER"])
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})
middleware = server_middleware(app, telemetry)
async def send(message): pass
async def main():
    scope = {"type": "http", "method": "GET", "headers": [(b"host", b"hub")],
             "path_template": "/v1/transactions/{transaction_id:str}"}
    for _ in range(2000):
        await middleware(dict(scope), None, send)
    started, n = time.perf_counter(), 20000
    for _ in range(n):
        await middleware(dict(scope), None, send)
    print((time.perf_counter() - started) / n * 1e6)
asyncio.run(main())
"""


def main() -> int:
    results = {}
    for exporter, sampler, name in VARIANTS:
        env = {**os.environ, "EXPORTER": exporter, "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": "0.1"}
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
        results[name] = float(out.stdout.strip())
    base = results["tracing off"]
    for name, micros in results.items():
        print(f"{name:<14} {micros:7.1f} us/request in the middleware  (+{micros - base:5.1f} us vs off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
