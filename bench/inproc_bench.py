"""The hub app's own CPU per request, driven in-process: no server, no sockets to the hub, no load generator.

``make bench`` measures whole requests through uvicorn and wrk on a shared 2-core machine; its
figures move by ±15 % run to run, too much to see a change of a few per cent. This calls the ASGI app
directly (the same ``create_app`` as ``billing-hub serve``, started through its lifespan, the
collector settled as in ``serve``), 32 requests at a time so Redis commands batch as they do under
load, and reports process CPU per request for ``GET /v1/transactions/{id}`` and ``POST /v1/journals``
(202, a unique ``Idempotency-Key`` each) over several rounds. The policy chain is the bench's:
key auth, Redis rate limit, idempotency, store on Redis (``--backend embedded`` for SQLite). The
hub only accepts (no dispatcher): delivery is ``billing-hub dispatch``'s work and not measured here.

It is also the quietest thing to profile: ``py-spy record -o out.txt -f raw -- python
bench/inproc_bench.py get``. Redis keys live under a unique prefix, deleted at the end.

    python bench/inproc_bench.py [get] [post] [--rounds 5] [--requests 3000] [--backend redis]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api_bench import REF, bench_policy, journal_template  # this directory is sys.path[0] as a script

CONCURRENCY = 32

Message = dict[str, Any]


class InProcessHub:
    """The hub's ASGI app with its lifespan running, and a way to send it one request."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app, self.api_key = app, api_key.encode()
        self._lifespan: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Future[None] | None = None

    async def start(self) -> None:
        answers: asyncio.Queue[Message] = asyncio.Queue()
        await self._lifespan.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(self.app(scope, self._lifespan.get, answers.put))
        answer = await answers.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the hub did not start: {answer}")

    async def stop(self) -> None:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        if self._task is not None:
            await self._task

    async def request(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> tuple[int, bytes]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"hub"), (b"x-api-key", self.api_key), *headers],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {},
        }  # fmt: skip
        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


# Built once: the template's json.dumps is the driver's work, and process CPU would count it as the hub's.
_TEMPLATE = journal_template()


def _journal(tag: str) -> bytes:
    return _TEMPLATE.replace(REF, tag).encode()


async def _rounds(name: str, one: Callable[[], Awaitable[None]], rounds: int, requests: int) -> list[float]:
    per_request = []
    for number in range(rounds):
        started = time.process_time()
        for _ in range(requests // CONCURRENCY):
            await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
        micros = (time.process_time() - started) / (requests // CONCURRENCY * CONCURRENCY) * 1e6
        per_request.append(micros)
        print(f"{name:<4} round {number + 1}: {micros:6.0f} µs CPU/request", flush=True)
    return per_request


async def started_hub(workdir: Path, *, backend: str, redis_url: str, prefix: str) -> InProcessHub:
    """The hub app in-process with the bench policy (a fresh key), the ``backend`` store and nothing
    delivering, started, its heap settled as ``billing-hub serve`` settles it."""
    from gateway.app import create_app
    from gateway.runtime import settle_heap

    api_key = "bench-" + secrets.token_hex(16)
    (workdir / "policy.toml").write_text(bench_policy(api_key))
    os.environ.update(
        {
            "BILLING_HUB_POLICY_FILE": str(workdir / "policy.toml"),
            "BILLING_HUB_STATE_BACKEND": backend,
            "BILLING_HUB_REDIS_URL": redis_url,
            "BILLING_HUB_REDIS_PREFIX": prefix,
            "BILLING_HUB_DATA_DIR": str(workdir / "data"),
            # Tracing off unless the caller says otherwise (e.g. "discard" plus an OTEL_TRACES_SAMPLER).
            "BILLING_HUB_TRACE_EXPORTER": os.environ.get("BILLING_HUB_TRACE_EXPORTER", "off"),
            "BILLING_HUB_DISPATCHER_ENABLED": "false",
            "BILLING_HUB_TARGETS": "erp",
            "BILLING_HUB_ERP_URL": "http://127.0.0.1:9",  # never called: nothing delivers here
        }
    )
    hub = InProcessHub(create_app(), api_key)
    await hub.start()
    settle_heap()
    return hub


async def run(args: argparse.Namespace, workdir: Path) -> int:
    hub = await started_hub(workdir, backend=args.backend, redis_url=args.redis_url, prefix=args.prefix)
    json_body = [(b"content-type", b"application/json")]
    try:
        status, body = await hub.request("POST", "/v1/journals", json_body, _journal("setup"))
        if status != 202:
            raise RuntimeError(f"setup POST answered {status}: {body[:300]!r}")
        location = f"/v1/transactions/{json.loads(body)['id']}"
        sequence = iter(range(10**9))

        async def one_get() -> None:
            status, body = await hub.request("GET", location, [])
            if status != 200:
                raise RuntimeError(f"GET answered {status}: {body[:300]!r}")

        async def one_post() -> None:
            tag = f"inproc-{next(sequence)}"
            headers = [*json_body, (b"idempotency-key", tag.encode())]
            status, body = await hub.request("POST", "/v1/journals", headers, _journal(tag))
            if status != 202:
                raise RuntimeError(f"POST answered {status}: {body[:300]!r}")

        for route in args.routes or ["get", "post"]:
            one = one_get if route == "get" else one_post
            figures = await _rounds(route, one, args.rounds, args.requests)
            print(f"{route:<4} median {statistics.median(figures):6.0f} µs CPU/request over {args.rounds} rounds")
    finally:
        await hub.stop()
    return 0


def delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("routes", nargs="*", help="get and/or post (default both)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="per round")
    parser.add_argument("--backend", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if set(args.routes) - {"get", "post"}:
        parser.error("routes are get and post")
    args.prefix = f"inproc-bench-{secrets.token_hex(6)}:"
    import uvloop

    with tempfile.TemporaryDirectory() as workdir:
        try:
            return uvloop.run(run(args, Path(workdir)))
        finally:
            if args.backend == "redis":
                delete_keys(args.redis_url, args.prefix)


if __name__ == "__main__":
    sys.exit(main())
