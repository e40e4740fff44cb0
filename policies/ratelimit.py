"""Rate limiting: GCRA quotas per key, in process memory (one hub) or in Redis (several hubs).

A quota is a :class:`RateLimitRule` (``limit`` requests per ``window_s``, ``burst`` at once); a
:class:`RateLimiter` answers each hit with a :class:`RateDecision`, and :func:`rate_limit_headers`
renders it as the ``RateLimit-Policy`` / ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers
plus ``Retry-After``. GCRA was chosen over fixed windows because it has no boundary burst (2N requests
around a window edge) and over token buckets because its whole state is one number per key, which
keeps the Redis script to one GET and one SET. No ASGI here: the gateway applies the decision.
"""

from policies._ratelimit_core import (
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RateLimitRule,
    rate_limit_headers,
    state_key,
)
from policies._ratelimit_memory import MemoryRateLimiter
from policies._ratelimit_redis import RedisRateLimiter

__all__ = [
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimitRule",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
    "rate_limit_headers",
    "state_key",
]
