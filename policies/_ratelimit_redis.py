"""The shared rate limiter: GCRA in one Lua script, so several hub instances enforce one limit.

Why a script: read-decide-write must be atomic across instances, and one EVALSHA is one round trip.
Why server time (``TIME`` inside the script): the hubs' clocks may disagree; Redis's clock is the
only one every instance sees. The state is one string per key, ``"<debt>:<stored at µs>"``, with a
TTL of the time the debt takes to drain, after which a missing key means the same as a fresh one.

The script mirrors :func:`policies._ratelimit_core.gcra` (the integer arithmetic is documented
there); ``ARGV[5]`` may pin "now" so a test can compare the two step by step. Every Redis or socket
error becomes :class:`RateLimiterUnavailable`; the caller's policy decides to fail open or closed.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from policies._ratelimit_core import (
    RateDecision,
    RateLimiterUnavailable,
    RateLimitRule,
    check_cost,
    decision_from_debt,
)

__all__ = ["DEFAULT_PREFIX", "GCRA_LUA", "RedisRateLimiter"]

DEFAULT_PREFIX = "billing-hub:rl:"

GCRA_LUA = """
local window_us, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local capacity, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local debt = 0
local state = redis.call('GET', KEYS[1])
if state then
  local stored, at = string.match(state, '^(%d+):(%d+)$')
  debt = math.max(0, tonumber(stored) - math.max(0, now - tonumber(at)) * limit)
end
local new_debt = debt + window_us * cost
if new_debt > window_us * capacity then
  return {0, string.format('%.0f', debt)}
end
local ttl_ms = math.ceil(new_debt / limit / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f:%.0f', new_debt, now), 'PX', ttl_ms)
return {1, string.format('%.0f', new_debt)}
"""


class RedisRateLimiter:
    """GCRA over Redis. The client is the caller's: build it with short socket timeouts and few
    retries (redis-py's default retries for seconds), share it, and close it yourself."""

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self._prefix = prefix
        self._script = client.register_script(GCRA_LUA)  # EVALSHA, SCRIPT LOAD again on NOSCRIPT

    async def hit(self, key: str, rule: RateLimitRule, cost: int = 1) -> RateDecision:
        redis_key, args = self.script_arguments(key, rule, cost)
        try:
            allowed, debt = await self._script(keys=[redis_key], args=args)
        except (RedisError, OSError) as exc:
            raise RateLimiterUnavailable("rate limit backend unreachable") from exc
        return decision_from_debt(rule, cost, allowed == 1, int(debt))

    def script_arguments(self, key: str, rule: RateLimitRule, cost: int = 1) -> tuple[str, tuple[int, int, int, int]]:
        """``GCRA_LUA``'s key and its first four arguments (for a script that runs it inside another)."""
        check_cost(rule, cost)
        return self._prefix + key, (rule.window_us, rule.limit, rule.capacity, cost)

    async def aclose(self) -> None:
        """Nothing of its own to release: the client belongs to the caller."""
