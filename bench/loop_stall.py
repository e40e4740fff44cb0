"""How long a large raw 835 holds the hub's event loop (so every other request waits) while it is read
and stored.

The hub app runs in-process with its lifespan (as ``bench/inproc_bench.py``), with the serving
process's heap settings (``settle_heap``); a ticker task sleeps 5 ms at a time on the same loop, and
each of its wake-ups that comes later than due is a stall of the loop. One ``POST /v1/remittances``
of ``bench/data/835_8mb.x12`` (``python bench/make_835.py`` makes it) is sent; the script prints its
time and the longest stalls. The X12 reader runs in a worker thread; what holds the loop is what
the request does on it, and the reader thread's long C calls (the GIL).

    python bench/loop_stall.py [--backend embedded|redis] [--file bench/data/835_8mb.x12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from inproc_bench import delete_keys, started_hub  # this directory is sys.path[0] when run as a script

HERE = Path(__file__).resolve().parent
TICK_S = 0.005


async def measure(body: bytes, backend: str, redis_url: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="loop-stall-"))
    prefix = f"loop-stall-{secrets.token_hex(4)}:"
    hub = await started_hub(workdir, backend=backend, redis_url=redis_url, prefix=prefix)
    stalls: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            stalls.append(now - last - TICK_S)
            last = now

    ticking = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    status, answer = await hub.request("POST", "/v1/remittances", [(b"content-type", b"application/edi-x12")], body)
    took = time.perf_counter() - started
    running = False
    await ticking
    await hub.stop()
    if backend == "redis":
        delete_keys(redis_url, prefix)
    if status != 201:
        raise SystemExit(f"POST /v1/remittances answered {status}: {answer[:300]!r}")
    longest = sorted(stalls, reverse=True)
    print(f"{backend}: {len(body) / 1e6:.1f} MB answered 201 in {took:.2f} s")
    print(f"  longest loop stalls: {', '.join(f'{s * 1000:.0f} ms' for s in longest[:5])}")
    print(f"  time in stalls over 50 ms: {sum(s for s in longest if s > 0.05):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--file", type=Path, default=HERE / "data" / "835_8mb.x12")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if not args.file.exists():
        print(f"{args.file} is missing: run python bench/make_835.py first", file=sys.stderr)
        return 1
    asyncio.run(measure(args.file.read_bytes(), args.backend, args.redis_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
