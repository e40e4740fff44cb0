"""Retry timing with tenacity's policies, applied to the durable outbox.

Retries are not a loop in memory: each attempt is one claim of an outbox entry, so a crash between
attempts loses nothing. What tenacity decides is *when* the next attempt may run (exponential
backoff with full jitter) and *whether* the budget is spent (attempts or elapsed time since the
first attempt of the budget). A target's ``Retry-After`` is a floor on the wait.
"""

from __future__ import annotations

import tenacity

from gateway.settings import Settings

__all__ = ["RetryPolicy"]

_RETRYING = tenacity.AsyncRetrying()


class RetryPolicy:
    def __init__(self, settings: Settings) -> None:
        self.stop = tenacity.stop_after_attempt(settings.retry_max_attempts) | tenacity.stop_after_delay(
            settings.retry_max_elapsed_s
        )
        self.wait = tenacity.wait_random_exponential(multiplier=settings.backoff_base_s, max=settings.backoff_cap_s)

    def next_delay(self, attempts: int, elapsed_s: float, retry_after_s: float | None) -> float | None:
        """Seconds until the next attempt, or ``None`` when the retry budget is spent."""
        state = tenacity.RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        state.outcome_timestamp = state.start_time + elapsed_s
        if self.stop(state):
            return None
        return max(self.wait(state), retry_after_s or 0.0)
