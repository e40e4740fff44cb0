"""The rate limit and the idempotency claim in one round trip decide exactly as the two calls did."""

from __future__ import annotations

import pytest

from policies.idempotency import (
    InFlight,
    LimitAndClaimUnavailable,
    Mismatch,
    RedisIdempotencyStore,
    RedisLimitAndClaim,
    Replay,
    Started,
    StoredResponse,
)
from policies.ratelimit import RateLimitRule, RedisRateLimiter
from tests.unit.policies.conftest import RedisClients, closed_port_url

pytestmark = pytest.mark.redis

RULE = RateLimitRule(name="writes", limit=3, window_s=60)
DAY_S = 86_400.0
FINGERPRINT = "f" * 64


def _pair(clients: RedisClients, url: str | None = None) -> tuple[RedisLimitAndClaim, RedisIdempotencyStore]:
    client = clients.new(url)
    idempotency = RedisIdempotencyStore(client, prefix=clients.prefix + "idem:")
    limiter = RedisRateLimiter(client, prefix=clients.prefix + "rl:")
    return RedisLimitAndClaim(limiter, idempotency), idempotency


async def test_it_decides_as_the_limiter_alone_and_claims_only_what_it_lets_through(
    redis_clients: RedisClients,
) -> None:
    together, idempotency = _pair(redis_clients)
    alone = RedisRateLimiter(redis_clients.new(), prefix=redis_clients.prefix + "alone:")
    for n in range(5):
        decision, begun = await together.hit_and_begin("client-a", RULE, f"key-{n}", FINGERPRINT, DAY_S)
        expected = await alone.hit("client-a", RULE)
        assert (decision.allowed, decision.limit, decision.remaining) == (
            expected.allowed,
            expected.limit,
            expected.remaining,
        )
        assert (decision.retry_after_s is None) == (expected.retry_after_s is None)
        assert begun == (Started() if n < 3 else None)
    # Refused requests left no record: their keys begin afresh; the allowed ones are in flight.
    assert await idempotency.begin("key-3", FINGERPRINT, DAY_S) == Started()
    assert await idempotency.begin("key-4", FINGERPRINT, DAY_S) == Started()
    assert isinstance(await idempotency.begin("key-0", FINGERPRINT, DAY_S), InFlight)


async def test_a_claimed_key_answers_in_flight_mismatch_and_replay_as_begin_does(redis_clients: RedisClients) -> None:
    together, idempotency = _pair(redis_clients)
    rule = RateLimitRule(name="roomy", limit=100, window_s=60)
    assert (await together.hit_and_begin("c", rule, "k", FINGERPRINT, DAY_S))[1] == Started()
    assert isinstance((await together.hit_and_begin("c", rule, "k", FINGERPRINT, DAY_S))[1], InFlight)
    assert isinstance((await together.hit_and_begin("c", rule, "k", "e" * 64, DAY_S))[1], Mismatch)
    response = StoredResponse(status=202, headers=[("location", "/v1/transactions/txn_1")], body=b"{}")
    await idempotency.complete("k", response, DAY_S)
    assert (await together.hit_and_begin("c", rule, "k", FINGERPRINT, DAY_S))[1] == Replay(response=response)


async def test_an_unreachable_redis_is_unavailable_not_a_decision(redis_clients: RedisClients) -> None:
    together, _ = _pair(redis_clients, closed_port_url())
    with pytest.raises(LimitAndClaimUnavailable):
        await together.hit_and_begin("c", RULE, "k", FINGERPRINT, DAY_S)
