"""The governance parts the policy chain uses, built for the chosen backend (embedded or Redis)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from gateway.audit_writer import AuditWriter
from gateway.redis_client import pipelined_redis
from gateway.settings import Settings
from gateway.store import HUB_DATABASE, SqliteStore, Store
from policies.audit import AuditEntry, AuditLog, RedisAuditLog, SqliteAuditLog
from policies.engine import PolicyHolder
from policies.idempotency import IdempotencyStore, RedisIdempotencyStore, RedisLimitAndClaim, SqliteIdempotencyStore
from policies.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from policies.redaction import PhiHasher

__all__ = ["Governance", "default_policy_path", "jwks_client", "open_audit_log", "policy_path"]

log = logging.getLogger("billing_hub.governance")


def default_policy_path() -> Path:
    return Path(str(resources.files("policies") / "default.toml"))


def _redis(settings: Settings) -> aioredis.Redis:
    return pipelined_redis(settings.redis_url, timeout_s=1.0)


def open_audit_log(settings: Settings) -> tuple[AuditLog, Callable[[], Awaitable[None]]]:
    """The audit log of these settings' backend, and how to close it (for the CLI)."""
    if settings.state_backend == "redis":
        client = _redis(settings)
        return RedisAuditLog(client, prefix=f"{settings.redis_prefix}audit:"), client.aclose
    log = SqliteAuditLog(Path(settings.data_dir) / HUB_DATABASE)
    return log, log.aclose


# Where embedded idempotency records lived before they moved into the hub's database (and still live
# when the hub's store is not the SQLite one).
_OWN_IDEMPOTENCY_FILE = "idempotency.sqlite3"


def _embedded_idempotency(data: Path, settings: Settings, hub_store: Store | None) -> SqliteIdempotencyStore:
    if isinstance(hub_store, SqliteStore):
        # In the hub's database (the file its writer commits to), through its group-commit writer: a
        # finished record is then committed with the transaction it answers for, and no call blocks
        # the event loop.
        store = SqliteIdempotencyStore(hub_store.path, lease_s=settings.idempotency_lease_s, submit=hub_store.submit)
        adopted = store.adopt(data / _OWN_IDEMPOTENCY_FILE)
        if adopted:
            log.warning("moved %d idempotency records into %s", adopted, HUB_DATABASE)
    else:
        store = SqliteIdempotencyStore(data / _OWN_IDEMPOTENCY_FILE, lease_s=settings.idempotency_lease_s)
    return store


def jwks_client() -> httpx.AsyncClient:
    """For a policy whose bearer tokens are checked against a JWKS URL (now or after a reload)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0), follow_redirects=False)


def policy_path(settings: Settings) -> Path:
    """The policy file in force: the configured one, else the packaged default with the demo client."""
    return Path(settings.policy_file) if settings.policy_file else default_policy_path()


@dataclass(slots=True)
class Governance:
    holder: PolicyHolder
    limiter: RateLimiter
    idempotency: IdempotencyStore
    audit_log: AuditLog
    phi_hasher: PhiHasher
    redis: aioredis.Redis | None = None
    jwks_http: httpx.AsyncClient | None = None
    # Both on one Redis: a keyed POST's rate limit and idempotency claim go in one round trip.
    limit_and_claim: RedisLimitAndClaim | None = None
    audit_writer: AuditWriter = field(init=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        operations: frozenset[str],
        store: Store | None = None,
        keyed: frozenset[str] | None = None,
    ) -> Governance:
        jwks_http = jwks_client()
        holder = PolicyHolder(
            policy_path(settings), operations, http=jwks_http, keyed=keyed, longest_wait_s=settings.max_wait_s
        )
        # Without a configured key, tags correlate within this process only.
        hasher = PhiHasher(settings.phi_hash_key.encode() if settings.phi_hash_key else secrets.token_bytes(32))
        if settings.state_backend == "redis":
            client = _redis(settings)
            prefix = settings.redis_prefix
            limiter = RedisRateLimiter(client, prefix=f"{prefix}rl:")
            idempotency = RedisIdempotencyStore(client, prefix=f"{prefix}idem:", lease_s=settings.idempotency_lease_s)
            return cls(
                holder=holder,
                limiter=limiter,
                idempotency=idempotency,
                audit_log=RedisAuditLog(client, prefix=f"{prefix}audit:"),
                phi_hasher=hasher,
                redis=client,
                jwks_http=jwks_http,
                limit_and_claim=RedisLimitAndClaim(limiter, idempotency),
            )
        data = Path(settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        return cls(
            holder=holder,
            limiter=MemoryRateLimiter(),
            idempotency=_embedded_idempotency(data, settings, store),
            # The audit chain lives in the hub's store and its appends ride the store's group commit
            # (in the file that writer commits to, wherever the store was opened).
            audit_log=SqliteAuditLog(
                store.path if isinstance(store, SqliteStore) else data / HUB_DATABASE,
                durability=settings.durability,
                submit=store.submit if isinstance(store, SqliteStore) else None,
            ),
            phi_hasher=hasher,
            jwks_http=jwks_http,
        )

    def __post_init__(self) -> None:
        self.audit_writer = AuditWriter(self.audit_log)

    def start(self) -> None:
        self.audit_writer.start()

    def forget_in_flight(self) -> None:
        """For the serving process of a single-node (embedded) hub, once at start-up: whatever was in
        flight died with the last such process, so its clients' retries may run now rather than meet
        409 until the lease ends. Not for a ``billing-hub dispatch`` process, which would release the
        claims of requests the serving process is running. Redis leases run out by themselves."""
        if isinstance(self.idempotency, SqliteIdempotencyStore):
            released = self.idempotency.forget_in_flight()
            if released:
                log.warning("released %d idempotency keys left in flight by a previous run", released)

    async def audit(self, entry: AuditEntry) -> None:
        await self.audit_writer.add(entry)

    async def aclose(self) -> None:
        await self.audit_writer.stop()
        await self.limiter.aclose()
        await self.idempotency.aclose()
        await self.audit_log.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.jwks_http is not None:
            await self.jwks_http.aclose()
