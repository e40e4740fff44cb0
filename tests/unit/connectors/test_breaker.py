from hypothesis import given
from hypothesis import strategies as st

from connectors._breaker import BreakerSettings, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(failure_rate=0.5, window_s=10, min_calls=4, cool_down_s=5), clock)


def test_opens_on_failure_rate_only_after_enough_calls() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record(success=False)
    assert breaker.state == "closed"  # 3 calls < min_calls
    breaker.record(success=True)
    assert breaker.state == "open"  # 3 of 4 failed
    assert not breaker.allow()
    assert breaker.retry_in() == 5


def test_successes_keep_it_closed_and_old_failures_age_out() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    breaker.record(success=False)
    breaker.record(success=False)
    clock.now += 11  # outside the window
    for _ in range(3):
        breaker.record(success=True)
    breaker.record(success=False)
    assert breaker.state == "closed"  # 1 of 4 in the window


def test_half_open_allows_one_probe_and_closes_on_success() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(4):
        breaker.record(success=False)
    clock.now += 5
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # one probe at a time
    breaker.record(success=True)
    assert breaker.state == "closed"
    assert breaker.allow()


def test_failed_probe_reopens_for_another_cool_down() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(4):
        breaker.record(success=False)
    clock.now += 5
    assert breaker.allow()
    breaker.record(success=False)
    assert breaker.state == "open"
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    snapshot = breaker.snapshot()
    assert snapshot.state == "half_open"


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=20), st.booleans()), max_size=200))
def test_failure_count_matches_the_window_after_any_history(history: list[tuple[float, bool]]) -> None:
    """The running count stays equal to a recount of the outcomes still in the window."""
    now = [0.0]
    breaker = CircuitBreaker(BreakerSettings(window_s=30.0, min_calls=10**9), clock=lambda: now[0])
    seen: list[tuple[float, bool]] = []
    for step, ok in history:
        now[0] += step
        breaker.record(ok)
        seen.append((now[0], ok))
        in_window = [o for t, o in seen if t >= now[0] - 30.0]
        snapshot = breaker.snapshot()
        assert snapshot.calls == len(in_window)
        assert snapshot.failures == in_window.count(False)
