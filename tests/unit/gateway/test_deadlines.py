"""Deadlines watched by one timer per loop behave as asyncio.timeout does, up to one tick late."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from gateway.deadlines import TICK_S, Deadline, within

SLACK_S = 0.15  # a busy test machine's scheduling delay on top of the tick


async def _withheld(timeout_s: float) -> None:
    """A read whose data never comes, within a deadline."""
    with within(timeout_s):
        await asyncio.Event().wait()


async def _timed(read: Awaitable[None]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        await read
    except (TimeoutError, asyncio.CancelledError) as outcome:
        return outcome, time.monotonic() - started
    return None, time.monotonic() - started


async def _started(data: asyncio.Future[bytes]) -> tuple[asyncio.Task[None], Deadline]:
    """A read of ``data`` in a task of its own, waiting inside its block; the block's deadline."""
    entered: asyncio.Future[Deadline] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_read(data, entered))
    return task, await entered


async def _read(data: asyncio.Future[bytes], entered: asyncio.Future[Deadline]) -> None:
    deadline = within(5)
    with deadline:
        entered.set_result(deadline)
        await data


def _ticks_scheduled(loop: asyncio.AbstractEventLoop) -> int:
    """The watcher's timers waiting on asyncio's loop (uvloop keeps its timers out of sight)."""
    handles: list[asyncio.TimerHandle] | None = getattr(loop, "_scheduled", None)
    if handles is None:
        pytest.skip("only asyncio's loop shows its scheduled timers")
    return sum(1 for handle in handles if not handle.cancelled() and "_tick" in repr(handle))


async def test_an_overdue_read_times_out_within_its_timeout_and_one_tick() -> None:
    outcome, elapsed = await _timed(_withheld(0.2))
    assert isinstance(outcome, TimeoutError)
    assert 0.2 <= elapsed < 0.2 + TICK_S + SLACK_S
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0  # the deadline's cancellation was taken back


async def test_a_read_finished_in_time_is_not_cancelled_afterwards() -> None:
    with within(0.2):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2 + 2 * TICK_S)  # past the deadline and past the ticks after it: no stray cancel
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


async def test_a_read_that_raises_is_not_cancelled_afterwards() -> None:
    async def failing() -> None:
        with within(0.2):
            await asyncio.sleep(0.05)
            raise ValueError("the read itself failed")

    with pytest.raises(ValueError, match="the read itself failed"):
        await failing()
    await asyncio.sleep(0.2 + 2 * TICK_S)


async def test_a_cancellation_from_elsewhere_during_the_read_propagates_as_such() -> None:
    task = asyncio.create_task(_withheld(5))
    await asyncio.sleep(0.05)
    task.cancel()  # a client disconnect or a shutdown
    outcome, _ = await _timed(task)
    assert isinstance(outcome, asyncio.CancelledError)


async def test_a_cancellation_from_elsewhere_in_the_same_tick_as_the_deadline_is_not_a_timeout() -> None:
    data: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    task, deadline = await _started(data)
    deadline.expire()  # what the watcher's tick does
    task.cancel()
    outcome, _ = await _timed(task)
    assert isinstance(outcome, asyncio.CancelledError)


async def test_a_deadline_passed_as_the_data_arrives_is_still_a_timeout() -> None:
    """As with asyncio.timeout, the timeout is not lost to data arriving in the same loop iteration."""
    data: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    task, deadline = await _started(data)
    data.set_result(b"{}")
    deadline.expire()
    outcome, _ = await _timed(task)
    assert isinstance(outcome, TimeoutError)
    assert task.cancelling() == 0


async def test_overlapping_reads_each_time_out_at_their_own_deadline() -> None:
    short, long = await asyncio.gather(_timed(_withheld(0.2)), _timed(_withheld(0.7)))
    assert isinstance(short[0], TimeoutError)
    assert isinstance(long[0], TimeoutError)
    assert 0.2 <= short[1] < 0.2 + TICK_S + SLACK_S
    assert 0.7 <= long[1] < 0.7 + TICK_S + SLACK_S


async def test_a_read_finishing_in_time_is_untouched_by_another_timing_out() -> None:
    async def finishing() -> None:
        with within(0.7):
            await asyncio.sleep(0.5)

    withheld, finished = await asyncio.gather(_timed(_withheld(0.2)), _timed(finishing()))
    assert isinstance(withheld[0], TimeoutError)
    assert finished[0] is None


async def test_the_timer_runs_only_while_anything_is_watched() -> None:
    loop = asyncio.get_running_loop()
    assert _ticks_scheduled(loop) == 0
    reads = [asyncio.create_task(_withheld(5)) for _ in range(3)]
    await asyncio.sleep(TICK_S * 1.5)  # a tick has come and gone with the reads still watched
    assert _ticks_scheduled(loop) == 1  # one for them all
    for read in reads:
        read.cancel()
    await asyncio.gather(*reads, return_exceptions=True)
    await asyncio.sleep(TICK_S + SLACK_S)  # the next tick finds nothing to watch
    assert _ticks_scheduled(loop) == 0


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_a_loop_dropped_in_mid_read_is_not_kept_alive(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    loop = new_loop()
    task = loop.create_task(_withheld(60))
    loop.run_until_complete(asyncio.sleep(0.01))  # the read is watched and the timer armed
    loop.close()
    dropped = weakref.ref(loop)
    del loop, task
    gc.collect()
    assert dropped() is None
