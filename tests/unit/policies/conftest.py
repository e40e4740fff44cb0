"""Backends for the rate-limit and idempotency tests: every test runs over memory/SQLite and real Redis.

Redis is the real server at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When it does not
answer the Redis tests *fail* rather than skip: CI must exercise the shared backend. Each test gets a
fresh uuid key prefix and deletes its keys afterwards; every client made here is closed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.redis_client import pipelined_redis
from gateway.store import SqliteStore
from policies.idempotency import IdempotencyStore, RedisIdempotencyStore, SqliteIdempotencyStore
from policies.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SHORT_LEASE_S = 0.4  # the in-flight lease of the stores made here, so lease expiry is testable


def fast_client(url: str, *, timeout_s: float = 0.5) -> Redis:
    """The hub's own client kind (plain commands pipelined on one connection), short timeouts and
    one immediate retry: an outage answers in well under a second."""
    return pipelined_redis(url, timeout_s=timeout_s, retry=Retry(NoBackoff(), 1))


def closed_port_url() -> str:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@functools.cache
def _redis_answers(url: str) -> str | None:
    """None when Redis answers PING, else why not (checked once per session)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()
    return None


def require_redis() -> str:
    problem = _redis_answers(REDIS_URL)
    if problem is not None:
        pytest.fail(
            f"Redis at {REDIS_URL} did not answer ({problem}). These tests need a real Redis server: "
            "start redis-server or point REDIS_URL at one. They are never skipped.",
            pytrace=False,
        )
    return REDIS_URL


@dataclass
class RedisClients:
    """Makes clients (each with its own connection pool) under one test's key prefix; cleans up."""

    url: str
    prefix: str = field(default_factory=lambda: f"test:{uuid.uuid4().hex}:")
    made: list[Redis] = field(default_factory=list)

    def new(self, url: str | None = None) -> Redis:
        client = fast_client(url or self.url)
        self.made.append(client)
        return client

    async def keys(self) -> list[bytes]:
        return [key async for key in self.made[0].scan_iter(match=f"{self.prefix}*")]

    async def close(self) -> None:
        cleaner = fast_client(self.url)
        keys = [key async for key in cleaner.scan_iter(match=f"{self.prefix}*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()
        for client in self.made:
            await client.aclose()


@pytest.fixture
async def redis_clients() -> AsyncIterator[RedisClients]:
    clients = RedisClients(require_redis())
    yield clients
    await clients.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class LimiterBackend:
    """One rate-limit backend as the tests see it: make instances, let time pass."""

    kind: str
    make: Callable[[], RateLimiter]
    advance: Callable[[float], Awaitable[None]]
    made: list[RateLimiter] = field(default_factory=list)

    def new(self) -> RateLimiter:
        limiter = self.make()
        self.made.append(limiter)
        return limiter


def _memory_backend() -> LimiterBackend:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)

    async def advance(seconds: float) -> None:
        clock.now += seconds

    return LimiterBackend("memory", lambda: limiter, advance)


def _redis_backend(clients: RedisClients) -> LimiterBackend:
    return LimiterBackend("redis", lambda: RedisRateLimiter(clients.new(), prefix=clients.prefix), asyncio.sleep)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiters(request: pytest.FixtureRequest) -> AsyncIterator[LimiterBackend]:
    """Memory: one shared instance on a fake clock. Redis: a new client per instance, real time."""
    clients = None if request.param == "memory" else RedisClients(require_redis())
    backend = _memory_backend() if clients is None else _redis_backend(clients)
    yield backend
    for limiter in backend.made:
        await limiter.aclose()
    if clients is not None:
        await clients.close()


@pytest.fixture
async def limiter(limiters: LimiterBackend) -> RateLimiter:
    return limiters.new()


@dataclass
class StoreBackend:
    """One idempotency backend: each ``new()`` is a separate connection (SQLite) or client (Redis)."""

    kind: str
    make: Callable[[], IdempotencyStore]
    made: list[IdempotencyStore] = field(default_factory=list)

    def new(self) -> IdempotencyStore:
        store = self.make()
        self.made.append(store)
        return store


def _sqlite_stores(tmp_path: Path) -> StoreBackend:
    path = tmp_path / "idempotency.sqlite3"
    return StoreBackend("sqlite", lambda: SqliteIdempotencyStore(path, lease_s=SHORT_LEASE_S))


def _redis_stores(clients: RedisClients) -> StoreBackend:
    def make() -> IdempotencyStore:
        return RedisIdempotencyStore(clients.new(), prefix=clients.prefix, lease_s=SHORT_LEASE_S)

    return StoreBackend("redis", make)


def _sqlite_writer_stores(hub_store: SqliteStore) -> StoreBackend:
    """As the embedded hub runs them: in the hub's database, every call through its group commit."""

    def make() -> IdempotencyStore:
        return SqliteIdempotencyStore(hub_store.path, lease_s=SHORT_LEASE_S, submit=hub_store.submit)

    return StoreBackend("sqlite-writer", make)


@pytest.fixture(params=["sqlite", "sqlite-writer", pytest.param("redis", marks=pytest.mark.redis)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreBackend]:
    clients = RedisClients(require_redis()) if request.param == "redis" else None
    hub_store = SqliteStore(tmp_path / "hub.sqlite3", durability="normal") if request.param == "sqlite-writer" else None
    if clients is not None:
        backend = _redis_stores(clients)
    elif hub_store is not None:
        backend = _sqlite_writer_stores(hub_store)
    else:
        backend = _sqlite_stores(tmp_path)
    yield backend
    for store in backend.made:
        await store.aclose()
    if clients is not None:
        await clients.close()
    if hub_store is not None:
        await hub_store.close()


@pytest.fixture
async def store(stores: StoreBackend) -> IdempotencyStore:
    return stores.new()


@pytest.fixture
def unique_key() -> str:
    return f"client-1:journals.post:{uuid.uuid4()}"
