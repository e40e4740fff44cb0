"""Rate limiting over both backends (``limiters`` is parametrized: memory on a fake clock, real Redis).

Redis tests use short windows and real sleeps; the memory backend advances its clock instead, so the
same test functions read the same for both.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policies.ratelimit
from policies._ratelimit_core import decision_from_debt
from policies._ratelimit_redis import GCRA_LUA
from policies.ratelimit import (
    MemoryRateLimiter,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RateLimitRule,
    RedisRateLimiter,
    rate_limit_headers,
)
from tests.unit.policies.conftest import FakeClock, LimiterBackend, RedisClients, closed_port_url, fast_client

# Real time passes between a Redis call and the next one; a sleep adds this much on top of the wait.
SLACK_S = 0.05


def _key() -> str:
    return f"client-1:journals-write:{uuid.uuid4().hex}"


async def _hits(limiter: RateLimiter, key: str, rule: RateLimitRule, n: int) -> list[RateDecision]:
    return [await limiter.hit(key, rule) for _ in range(n)]


async def test_quota_is_honoured_exactly(limiter: RateLimiter) -> None:
    rule = RateLimitRule(name="journals-write", limit=5, window_s=60)
    decisions = await _hits(limiter, _key(), rule, 7)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert {d.limit for d in decisions} == {5}
    assert all(d.retry_after_s is None for d in decisions[:5])
    denied = decisions[5]
    assert denied.retry_after_s is not None
    assert 11.5 < denied.retry_after_s <= 12.0  # one request's worth of a 60 s / 5 quota
    assert 59.5 < denied.reset_s <= 60.0


async def test_quota_refills_with_time(limiter: RateLimiter, limiters: LimiterBackend) -> None:
    rule, key = RateLimitRule(name="fast", limit=2, window_s=1.0), _key()
    assert [d.allowed for d in await _hits(limiter, key, rule, 3)] == [True, True, False]
    denied = await limiter.hit(key, rule)
    assert denied.retry_after_s is not None
    assert 0.3 < denied.retry_after_s <= 0.5

    await limiters.advance(denied.retry_after_s + SLACK_S)
    assert [d.allowed for d in await _hits(limiter, key, rule, 2)] == [True, False]

    await limiters.advance(1.0 + SLACK_S)  # a whole window: the full burst again
    assert [d.allowed for d in await _hits(limiter, key, rule, 3)] == [True, True, False]


async def test_burst_caps_requests_at_once_but_not_the_rate(limiter: RateLimiter, limiters: LimiterBackend) -> None:
    rule, key = RateLimitRule(name="bursty", limit=10, window_s=1.0, burst=2), _key()
    assert [d.allowed for d in await _hits(limiter, key, rule, 3)] == [True, True, False]
    await limiters.advance(0.1 + SLACK_S)  # one emission interval
    assert [d.allowed for d in await _hits(limiter, key, rule, 2)] == [True, False]


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    rule, first, second = RateLimitRule(name="one", limit=1, window_s=60), _key(), _key()
    assert (await limiter.hit(first, rule)).allowed
    assert not (await limiter.hit(first, rule)).allowed
    assert (await limiter.hit(second, rule)).allowed


async def test_cost_takes_several_units(limiter: RateLimiter) -> None:
    rule, key = RateLimitRule(name="weighted", limit=5, window_s=60), _key()
    assert (await limiter.hit(key, rule, cost=3)).remaining == 2
    refused = await limiter.hit(key, rule, cost=3)
    assert not refused.allowed
    assert refused.remaining == 2
    assert (await limiter.hit(key, rule, cost=2)).allowed


@pytest.mark.parametrize("cost", [0, -1, 6])
async def test_cost_outside_the_burst_is_a_configuration_error(limiter: RateLimiter, cost: int) -> None:
    with pytest.raises(ValueError, match="cost"):
        await limiter.hit(_key(), RateLimitRule(name="weighted", limit=5, window_s=60), cost=cost)


def _fields(lines: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in lines}


POLICY = re.compile(r'^"journals-write";q=3;w=60$')
STATE = re.compile(r'^"journals-write";r=(\d+);t=(\d+)$')


async def test_headers_follow_the_draft_syntax(limiter: RateLimiter) -> None:
    rule, key = RateLimitRule(name="journals-write", limit=3, window_s=60), _key()
    first = _fields(rate_limit_headers(rule, await limiter.hit(key, rule)))
    assert set(first) == {"ratelimit-policy", "ratelimit"}
    assert POLICY.match(first["ratelimit-policy"])
    assert STATE.match(first["ratelimit"]), first
    assert first["ratelimit"] == '"journals-write";r=2;t=20'

    for _ in range(2):
        await limiter.hit(key, rule)
    refused = _fields(rate_limit_headers(rule, await limiter.hit(key, rule)))
    state = STATE.match(refused["ratelimit"])
    assert state is not None
    assert state.group(1) == "0"
    assert 59 <= int(state.group(2)) <= 60
    assert refused["retry-after"] in {"19", "20"}


async def test_concurrent_hits_never_exceed_the_limit(limiters: LimiterBackend) -> None:
    """50 at once against limit 20 (over two instances: for Redis, two connection pools)."""
    rule, key = RateLimitRule(name="race", limit=20, window_s=60), _key()
    pair = (limiters.new(), limiters.new())
    decisions = await asyncio.gather(*(pair[i % 2].hit(key, rule) for i in range(50)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 20
    assert sorted(d.remaining for d in allowed) == list(range(20))


@pytest.mark.redis
async def test_two_redis_instances_share_one_limit(redis_clients: RedisClients) -> None:
    rule, key = RateLimitRule(name="shared", limit=4, window_s=60), _key()
    hub_a = RedisRateLimiter(redis_clients.new(), prefix=redis_clients.prefix)
    hub_b = RedisRateLimiter(redis_clients.new(), prefix=redis_clients.prefix)
    decisions = [await (hub_a if i % 2 else hub_b).hit(key, rule) for i in range(6)]
    assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2
    stored = await redis_clients.keys()
    assert stored == [f"{redis_clients.prefix}{key}".encode()]
    ttl_ms = await redis_clients.made[0].pttl(stored[0])
    assert 0 < ttl_ms <= 60_001  # the key disappears once its debt has drained


@pytest.mark.redis
async def test_unreachable_redis_is_reported_quickly(redis_clients: RedisClients) -> None:
    limiter = RedisRateLimiter(redis_clients.new(closed_port_url()))
    started = time.perf_counter()
    with pytest.raises(RateLimiterUnavailable):
        await limiter.hit(_key(), RateLimitRule(name="down", limit=1, window_s=1))
    assert time.perf_counter() - started < 2.0


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers: what a hung Redis looks like to a client."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_hung_redis_times_out_as_unavailable(silent_server: str) -> None:
    client = fast_client(silent_server, timeout_s=0.2)
    started = time.perf_counter()
    with pytest.raises(RateLimiterUnavailable):
        await RedisRateLimiter(client).hit(_key(), RateLimitRule(name="hung", limit=1, window_s=1))
    assert time.perf_counter() - started < 2.0
    await client.aclose()


# -- the rule and the headers, without a backend --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "limit": 1, "window_s": 1}, "printable ASCII"),
        ({"name": "tab\there", "limit": 1, "window_s": 1}, "printable ASCII"),
        ({"name": "x", "limit": 0, "window_s": 1}, "limit >= 1"),
        ({"name": "x", "limit": 1, "window_s": 0}, "window_s > 0"),
        ({"name": "x", "limit": 1, "window_s": 1, "burst": 0}, "burst >= 1"),
        ({"name": "x", "limit": 1, "window_s": 86_400, "burst": 10**6}, "too large"),
    ],
)
def test_invalid_rules_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimitRule(**fields)  # type: ignore[arg-type]


def test_policy_name_is_escaped_as_a_structured_field_string() -> None:
    rule = RateLimitRule(name='odd "name" \\ here', limit=10, window_s=0.5)
    decision = RateDecision(allowed=False, limit=10, remaining=0, reset_s=0.02, retry_after_s=0.01)
    headers = _fields(rate_limit_headers(rule, decision))
    assert headers["ratelimit-policy"] == r'"odd \"name\" \\ here";q=10;w=1'
    assert headers["ratelimit"] == r'"odd \"name\" \\ here";r=0;t=1'
    assert headers["retry-after"] == "1"  # never 0: "retry now" would be a lie


def test_whole_seconds_round_up_but_ignore_float_noise() -> None:
    rule = RateLimitRule(name="n", limit=3, window_s=60)
    decision = RateDecision(allowed=False, limit=3, remaining=0, reset_s=20.000000001, retry_after_s=3.2)
    headers = _fields(rate_limit_headers(rule, decision))
    assert headers["ratelimit"] == '"n";r=0;t=20'
    assert headers["retry-after"] == "4"


def test_public_surface() -> None:
    assert sorted(policies.ratelimit.__all__) == [
        "MemoryRateLimiter",
        "RateDecision",
        "RateLimitRule",
        "RateLimiter",
        "RateLimiterUnavailable",
        "RedisRateLimiter",
        "rate_limit_headers",
        "state_key",
    ]


# -- properties of the GCRA (memory backend, fake clock) ------------------------------------------

rules = st.builds(
    RateLimitRule,
    name=st.just("p"),
    limit=st.integers(1, 20),
    window_s=st.sampled_from([0.5, 1.0, 3.0, 60.0]),
    burst=st.none() | st.integers(1, 20),
)
# Mostly bursts (gaps of 0 to 2 ms) with the odd pause, so refusals and refills both happen.
gap_us = st.one_of(st.just(0), st.integers(0, 2_000), st.integers(0, 400_000))
gaps_us = st.lists(gap_us, min_size=1, max_size=80)


@given(rule=rules, gaps=gaps_us)
async def test_no_span_admits_more_than_burst_plus_rate(rule: RateLimitRule, gaps: list[int]) -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    admitted: list[int] = []
    now_us = 0
    for gap in gaps:
        now_us += gap
        clock.now = 1_000 + now_us / 1e6
        if (await limiter.hit("k", rule)).allowed:
            admitted.append(now_us)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span_us = admitted[j] - start
            assert j - i + 1 <= rule.capacity + span_us * rule.limit // rule.window_us


@given(rule=rules, gaps=gaps_us)
async def test_retry_after_is_exact(rule: RateLimitRule, gaps: list[int]) -> None:
    """A refused client that waits ``retry_after_s`` passes; one microsecond earlier it does not."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    for gap in gaps:
        clock.now += gap / 1e6
        decision = await limiter.hit("k", rule)
        if decision.retry_after_s is not None:
            break
    else:
        return
    clock.now += decision.retry_after_s - 1e-6
    assert not (await limiter.hit("k", rule)).allowed
    clock.now += 1e-6
    assert (await limiter.hit("k", rule)).allowed


# -- the Lua script is the same algorithm as the Python one ---------------------------------------


@pytest.mark.redis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=rules, steps=st.lists(st.tuples(gap_us, st.integers(1, 3)), max_size=40))
async def test_lua_script_decides_like_the_memory_backend(
    redis_clients: RedisClients, rule: RateLimitRule, steps: list[tuple[int, int]]
) -> None:
    client = redis_clients.new() if not redis_clients.made else redis_clients.made[0]
    script = client.register_script(GCRA_LUA)
    key, clock = f"{redis_clients.prefix}{uuid.uuid4().hex}", FakeClock()
    memory, now_us = MemoryRateLimiter(clock=clock), 1_000_000_000
    for gap, wanted in steps:
        now_us += gap
        clock.now = now_us / 1e6
        cost = min(wanted, rule.capacity)
        allowed, debt = await script(keys=[key], args=[rule.window_us, rule.limit, rule.capacity, cost, now_us])
        from_lua = decision_from_debt(rule, cost, allowed == 1, int(debt))
        assert from_lua == await memory.hit("k", rule, cost)
