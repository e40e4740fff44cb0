"""A rate-limited, idempotent request's rate limit and idempotency claim in one Redis round trip.

A POST carrying an Idempotency-Key on the Redis backend needs both: the GCRA hit
(``policies._ratelimit_redis``) and the claim of its key (``SET NX GET PX``,
``policies._idempotency_redis``). One after the other they are two round trips, and each costs the
hub about 25,000 instructions (a quarter of a million for the three of an accepted journal). Here one
script runs the GCRA and, only when it lets the request through, the claim: a refused request claims
nothing, exactly as when the claim waited for the limit's answer. Both keys live on one server (no
cluster), as everywhere in the hub.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from policies._idempotency_core import Begin
from policies._idempotency_redis import RedisIdempotencyStore
from policies._ratelimit_core import RateDecision, RateLimitRule, decision_from_debt
from policies._ratelimit_redis import GCRA_LUA, RedisRateLimiter

__all__ = ["LimitAndClaimUnavailable", "RedisLimitAndClaim"]

# KEYS: the rate-limit state, the idempotency record. ARGV 1-5: GCRA_LUA's (5, "now", left empty so
# the server's clock decides), 6: the in-flight record, 7: its lease in ms.
_LIMIT_THEN_CLAIM = (
    "local function limit()\n"
    + GCRA_LUA
    + """end
local decision = limit()
if decision[1] == 0 then return decision end
return {1, decision[2], redis.call('SET', KEYS[2], ARGV[6], 'NX', 'GET', 'PX', ARGV[7])}
"""
)


class LimitAndClaimUnavailable(Exception):
    """Redis did not answer: neither the limit nor the claim is known (the policy decides the 503)."""


class RedisLimitAndClaim:
    """For a limiter and an idempotency store on the same Redis client (both the caller's)."""

    def __init__(self, limiter: RedisRateLimiter, idempotency: RedisIdempotencyStore) -> None:
        self._limiter, self._idempotency = limiter, idempotency
        self._script = limiter.client.register_script(_LIMIT_THEN_CLAIM)

    async def hit_and_begin(
        self, rate_key: str, rule: RateLimitRule, key: str, fingerprint: str, ttl_s: float
    ) -> tuple[RateDecision, Begin | None]:
        """The rate decision, and when it allows the request what ``begin`` would have answered
        (``None`` when refused: nothing was claimed)."""
        limit_key, limit_args = self._limiter.script_arguments(rate_key, rule)
        claim_key, claim, lease_ms = self._idempotency.claim_arguments(key, fingerprint, ttl_s)
        try:
            reply = await self._script(keys=[limit_key, claim_key], args=[*limit_args, "", claim, lease_ms])
        except (RedisError, OSError) as exc:
            raise LimitAndClaimUnavailable("rate limits and idempotency records unavailable") from exc
        allowed = reply[0] == 1
        decision = decision_from_debt(rule, 1, allowed, int(reply[1]))
        if not allowed:
            return decision, None
        return decision, self._idempotency.claimed(reply[2] if len(reply) > 2 else None, fingerprint)
