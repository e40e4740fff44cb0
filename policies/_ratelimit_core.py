"""The rate-limit contract and the one GCRA both backends run, in exact integer arithmetic.

GCRA (the generic cell rate algorithm) keeps one number per key instead of a window of counters: how
far the client is ahead of its allowance. Here that number is a *debt* measured in units of
1/limit microsecond, so that one request adds exactly ``window_us`` units and the allowance drains
``limit`` units per microsecond. Every quantity is then an integer: "limit N" means N requests pass
and the N+1st does not, with no float rounding at the boundary. The Redis Lua script mirrors
:func:`gcra` line for line (Lua numbers are doubles, exact for integers below 2**53, which
:class:`RateLimitRule` guarantees).
"""

from __future__ import annotations

import functools
import math
from typing import Protocol

import msgspec

__all__ = [
    "RateDecision",
    "RateLimitRule",
    "RateLimiter",
    "RateLimiterUnavailable",
    "decision_from_debt",
    "gcra",
    "rate_limit_headers",
    "state_key",
]

_US = 1_000_000
# Keeps debt and debt + cost exact in a Lua double (2**53) with room to spare.
_MAX_UNITS = 2**50


class RateLimiterUnavailable(Exception):
    """The shared backend did not answer (down, timed out, refused); the policy decides open or closed."""


class RateLimitRule(msgspec.Struct, frozen=True, kw_only=True):
    """One quota: ``limit`` requests per ``window_s`` seconds, at most ``burst`` at once."""

    name: str
    limit: int
    window_s: float
    burst: int | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.limit < 1 or self.window_s <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError("rate limit rule needs limit >= 1, window_s > 0 and burst >= 1")
        if self.window_us * self.capacity >= _MAX_UNITS:
            raise ValueError("rate limit rule is too large: window_s * burst must stay below ~35 years")

    @property
    def capacity(self) -> int:
        """How many requests may arrive at once: the burst, which defaults to the quota."""
        return self.limit if self.burst is None else self.burst

    @property
    def window_us(self) -> int:
        return max(1, round(self.window_s * _US))


class RateDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one hit; ``reset_s`` is the time until the full burst is available again."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float | None


class RateLimiter(Protocol):
    async def hit(self, key: str, rule: RateLimitRule, cost: int = 1) -> RateDecision: ...

    async def aclose(self) -> None: ...


def check_cost(rule: RateLimitRule, cost: int) -> None:
    """A cost above the burst could never pass; that is a configuration bug, not a 429."""
    if not 1 <= cost <= rule.capacity:
        raise ValueError(f"cost {cost} outside 1..{rule.capacity} for rate limit {rule.name!r}")


def drained(debt: int, stored_at_us: int, now_us: int, limit: int) -> int:
    """The debt left at ``now_us`` (a clock stepping backwards drains nothing)."""
    return max(0, debt - max(0, now_us - stored_at_us) * limit)


def gcra(debt: int, rule: RateLimitRule, cost: int) -> tuple[bool, int]:
    """Decide on the current debt: ``(allowed, debt after the decision)``."""
    new_debt = debt + rule.window_us * cost
    if new_debt > rule.window_us * rule.capacity:
        return False, debt
    return True, new_debt


@functools.lru_cache(maxsize=1024)
def state_key(rule: RateLimitRule) -> str:
    """The part of a counter's key that names the rule *as configured*. The stored debt is in units
    of the rule's own limit and window, so a rule changed by a policy reload must not read the old
    counter (a limit raised from 2 to 10 read old debt as five times too large: 429 with a 23 s
    wait): the changed rule starts from a fresh counter, and the old one expires by itself."""
    return f"{rule.name}:{rule.limit}:{rule.window_us}:{rule.capacity}"


@functools.lru_cache(maxsize=1024)
def _constants(rule: RateLimitRule) -> tuple[int, int, bytes, bytes]:
    """Per rule, once: window in µs, tolerance in units, the ``RateLimit-Policy`` field value and the
    policy name as a Structured Field String. Every request needs them; recomputing (rounding,
    formatting) was ~3% of a read request."""
    window_us = rule.window_us
    name = _sf_string(rule.name)
    policy = f"{name};q={rule.limit};w={max(1, _whole_seconds(rule.window_s))}"
    return window_us, window_us * rule.capacity, policy.encode(), name.encode()


def decision_from_debt(rule: RateLimitRule, cost: int, allowed: bool, debt: int) -> RateDecision:
    """Turn the debt after a decision into remaining quota and waits (shared by both backends)."""
    window_us, tolerance, _, _ = _constants(rule)
    retry_units = debt + window_us * cost - tolerance
    return RateDecision(
        allowed=allowed,
        limit=rule.limit,
        remaining=max(0, (tolerance - debt) // window_us),
        reset_s=_units_to_s(debt, rule.limit),
        retry_after_s=None if allowed else _units_to_s(retry_units, rule.limit),
    )


def _units_to_s(units: int, limit: int) -> float:
    return -(-units // limit) / _US


def _check_name(name: str) -> None:
    """The policy name travels as a Structured Field String: printable ASCII only."""
    if not name or not all(" " <= ch <= "~" for ch in name):
        raise ValueError(f"rate limit name must be non-empty printable ASCII: {name!r}")


def _sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _whole_seconds(seconds: float) -> int:
    """Round up so a client that waits this long is not refused; sub-microsecond noise is dropped."""
    return math.ceil(round(seconds, 6))


def rate_limit_headers(rule: RateLimitRule, decision: RateDecision) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Policy``, ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers) and ``Retry-After``,
    as ASGI header lines (lower-case names, bytes): they go on every governed response as they are.

    Both fields are Structured Field Lists of one String item with Integer parameters: ``q`` quota and
    ``w`` window (seconds, at least 1) on the policy; ``r`` remaining and ``t`` seconds until reset on
    the current state.
    """
    _, _, policy, name = _constants(rule)
    lines = [
        (b"ratelimit-policy", policy),
        (b"ratelimit", b"%s;r=%d;t=%d" % (name, decision.remaining, _whole_seconds(decision.reset_s))),
    ]
    if not decision.allowed:
        lines.append((b"retry-after", b"%d" % max(1, _whole_seconds(decision.retry_after_s or 0.0))))
    return lines
