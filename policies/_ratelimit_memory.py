"""The single-instance rate limiter: GCRA state in a dict, decided without awaiting.

``hit`` never yields to the event loop between reading and writing a key's state, so concurrent
requests on one loop cannot interleave inside a decision: no lock is needed. Keys whose debt has
drained are swept now and then so the dict stays the size of the recently active clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from policies._ratelimit_core import (
    RateDecision,
    RateLimitRule,
    check_cost,
    decision_from_debt,
    drained,
    gcra,
)

__all__ = ["MemoryRateLimiter"]

_SWEEP_EVERY = 4096


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryRateLimiter:
    """GCRA per key in process memory; ``clock`` returns seconds (inject a fake one in tests)."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._now_us = _monotonic_us if clock is None else (lambda: round(clock() * 1_000_000))
        # key -> (debt after the last allowed hit, when it was stored, when it has fully drained)
        self._state: dict[str, tuple[int, int, int]] = {}
        self._hits = 0

    async def hit(self, key: str, rule: RateLimitRule, cost: int = 1) -> RateDecision:
        check_cost(rule, cost)
        now = self._now_us()
        self._maybe_sweep(now)
        debt, stored_at, _ = self._state.get(key, (0, now, now))
        allowed, debt = gcra(drained(debt, stored_at, now, rule.limit), rule, cost)
        if allowed:
            self._state[key] = (debt, now, now + -(-debt // rule.limit))
        return decision_from_debt(rule, cost, allowed, debt)

    async def aclose(self) -> None:
        self._state.clear()

    def _maybe_sweep(self, now: int) -> None:
        self._hits += 1
        if self._hits % _SWEEP_EVERY == 0:
            self._state = {k: v for k, v in self._state.items() if v[2] > now}
