"""The governance parts the policy chain uses, built for the chosen backend (embedded or Redis)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import redis.asyncio as aioredis
from policies.audit import AuditEntry, AuditLog, RedisAuditLog, SqliteAuditLog

from gateway.settings import Settings
from policies.engine import PolicyHolder
from policies.idempotency import IdempotencyStore, RedisIdempotencyStore, SqliteIdempotencyStore
from policies.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

__all__ = ["Governance", "default_policy_path"]

log = logging.getLogger("billing_hub.governance")


def default_policy_path() -> Path:
    return Path(str(resources.files("policies") / "default.toml"))


@dataclass(slots=True)
class Governance:
    holder: PolicyHolder
    limiter: RateLimiter
    idempotency: IdempotencyStore
    audit_log: AuditLog
    redis: aioredis.Redis | None = None

    @classmethod
    def open(cls, settings: Settings, operations: frozenset[str]) -> Governance:
        holder = PolicyHolder(Path(settings.policy_file) if settings.policy_file else default_policy_path(), operations)
        if settings.state_backend == "redis":
            client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
            prefix = settings.redis_prefix
            return cls(
                holder=holder,
                limiter=RedisRateLimiter(client, prefix=f"{prefix}rl:"),
                idempotency=RedisIdempotencyStore(client, prefix=f"{prefix}idem:"),
                audit_log=RedisAuditLog(client, prefix=f"{prefix}audit:"),
                redis=client,
            )
        data = Path(settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        return cls(
            holder=holder,
            limiter=MemoryRateLimiter(),
            idempotency=SqliteIdempotencyStore(data / "idempotency.sqlite3"),
            audit_log=SqliteAuditLog(data / "audit.sqlite3"),
        )

    async def audit(self, entry: AuditEntry) -> None:
        try:
            await self.audit_log.append(entry)
        except Exception as exc:  # the call has been answered; losing its record must be loud
            log.error("audit append failed: %s", type(exc).__name__)

    async def aclose(self) -> None:
        await self.limiter.aclose()
        await self.idempotency.aclose()
        await self.audit_log.aclose()
        if self.redis is not None:
            await self.redis.aclose()
