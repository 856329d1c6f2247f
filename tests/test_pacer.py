"""The pacer never puts more than `rate` sends in any one-second window, and keeps the rate."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time

import pytest

from watui.engine.pacer import (
    BACKOFF_FACTOR,
    BACKOFF_HOLD,
    FIRST_BACKOFF_FACTOR,
    JITTER_MOST,
    WINDOW_MARGIN,
    Pacer,
)
from watui.engine.window import Window, little_window


def max_in_any_window(times: list[float], width: float = 1.0) -> int:
    """The most sends inside any closed window [t, t + width] (t at each send)."""
    return max(bisect.bisect_right(times, start + width) - index for index, start in enumerate(times))


@pytest.mark.parametrize("rate", [20, 80, 400])
async def test_no_window_holds_more_than_the_rate(rate: int) -> None:
    pacer = Pacer(rate)
    times = []
    for _ in range(int(rate * 1.6)):
        await pacer.wait()
        times.append(time.monotonic())
    assert max_in_any_window(times) <= rate


async def test_a_stall_is_caught_up_without_breaking_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the caller is held up, a few sends catch up but no window exceeds the rate. (On
    a fake clock: with real time, a loaded machine's late timers added catch-ups of their own.)"""
    now = [0.0]

    async def fake_sleep(delay: float) -> None:
        now[0] += delay

    monkeypatch.setattr("watui.engine.pacer.asyncio.sleep", fake_sleep)
    rate = 50
    pacer = Pacer(rate, clock=lambda: now[0])
    told: list[float] = []
    pacer.on_release = told.append
    times = []
    for index in range(120):
        await pacer.wait()
        times.append(now[0])
        if index == 30:
            now[0] += 0.2  # a stalled event loop (a long GC, a slow callback)
    assert max_in_any_window(times) <= rate
    assert told == times  # what benchmarks count the window by
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sum(1 for gap in gaps if gap < 0.5 / rate) <= 3  # at most a small burst


async def test_a_timer_firing_early_does_not_open_the_window_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop rounds a timer to whole milliseconds, so a sleep can end up to ~1 ms early. The
    hard window check must hold anyway: after stalls the caught-up sends bind it."""
    now = [0.0]

    async def early_sleep(delay: float) -> None:
        now[0] += delay if delay < 0.001 else delay - 0.0008

    monkeypatch.setattr("watui.engine.pacer.asyncio.sleep", early_sleep)
    rate = 100
    pacer = Pacer(rate, clock=lambda: now[0])
    times = []
    for index in range(600):
        await pacer.wait()
        times.append(now[0])
        if index % 40 == 39:
            now[0] += 0.05  # a stalled loop: the next sends catch up
    tightest = min(later - earlier for earlier, later in zip(times, times[rate:], strict=False))
    assert tightest >= 1.0 + WINDOW_MARGIN - 1e-9


async def test_a_send_that_left_late_counts_from_when_it_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Released on time but written 30 ms late (a busy loop), a send holds the one ``rate``
    places after it until a second and the margin after it actually left."""
    now = [0.0]

    async def fake_sleep(delay: float) -> None:
        now[0] += delay

    monkeypatch.setattr("watui.engine.pacer.asyncio.sleep", fake_sleep)
    rate = 50
    pacer = Pacer(rate, clock=lambda: now[0])
    departures: list[float] = []
    for index in range(rate * 3):
        number = await pacer.wait()
        left = now[0] + (0.03 if index % 37 == 5 else 0.0)
        pacer.written(number, left)
        departures.append(left)
    assert max_in_any_window(sorted(departures)) <= rate
    tightest = min(b - a for a, b in zip(departures, departures[rate:], strict=False))
    assert tightest >= 1.0 + WINDOW_MARGIN - 1e-9


async def test_a_slot_due_within_the_early_release_goes_without_a_sleep_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before ``rate`` sends have gone no window is full: a slot due within EARLY_RELEASE is
    released at once, as later (each sleep is a timer and a loop turn: unthrottled, one send
    in six slept a few microseconds)."""
    now = [0.0]
    sleeps: list[float] = []

    async def counted_sleep(delay: float) -> None:
        sleeps.append(delay)
        now[0] += delay

    monkeypatch.setattr("watui.engine.pacer.asyncio.sleep", counted_sleep)
    rate = 1000
    pacer = Pacer(rate, clock=lambda: now[0])
    for _ in range(rate // 10):
        await pacer.wait()
        now[0] += 0.001  # the next slot is 1.007 ms on: each one is due a little ahead
    assert sleeps == []


async def test_rate_change_takes_effect_at_once() -> None:
    pacer = Pacer(10)
    await pacer.wait()
    pacer.set_rate(200)
    started = time.monotonic()
    for _ in range(20):
        await pacer.wait()
    # At 10 msg/s, 20 sends take at least 1.9 s; at 200 msg/s about 0.1 s.
    assert time.monotonic() - started < 1.5


def test_back_off_slows_and_holds() -> None:
    now = [100.0]
    pacer = Pacer(100, clock=lambda: now[0])
    assert pacer.back_off()
    slowed = pacer.effective_rate
    assert slowed < 100
    assert not pacer.back_off()  # the same burst of throttle answers counts once
    assert pacer.effective_rate == slowed


def test_a_lone_throttle_answer_slows_a_little_and_more_follow_harder() -> None:
    now = [100.0]
    pacer = Pacer(1000, clock=lambda: now[0])
    pacer.back_off()
    assert pacer.effective_rate == pytest.approx(1000 * FIRST_BACKOFF_FACTOR)
    assert pacer.throttle_was_jitter()
    now[0] += BACKOFF_HOLD / 2
    assert not pacer.back_off() and pacer.throttle_was_jitter()  # the rest of the same burst
    now[0] += BACKOFF_HOLD / 2 + 0.1
    assert not pacer.throttle_was_jitter()
    pacer.back_off()  # a second burst before the pace is back to full: jitter still
    assert pacer.throttle_was_jitter()
    assert pacer.effective_rate < 1000 * FIRST_BACKOFF_FACTOR
    now[0] += BACKOFF_HOLD + 0.1  # below one jitter step of full pace: the limit is lower
    pacer.back_off()
    assert pacer.effective_rate < 1000 * FIRST_BACKOFF_FACTOR**2 * BACKOFF_FACTOR + 10
    assert not pacer.throttle_was_jitter()
    now[0] += 60.0  # back to full pace: the next lone answer is a small step again
    pacer.back_off()
    assert pacer.effective_rate == pytest.approx(1000 * FIRST_BACKOFF_FACTOR)
    assert pacer.throttle_was_jitter()


def test_a_burst_past_jitter_size_is_a_storm_and_takes_the_full_step_at_once() -> None:
    now = [100.0]
    pacer = Pacer(300, clock=lambda: now[0])
    assert pacer.back_off()
    for _ in range(JITTER_MOST - 1):
        now[0] += 0.004
        assert not pacer.back_off() and pacer.throttle_was_jitter()
    now[0] += 0.004
    assert pacer.back_off()  # the answer past JITTER_MOST, within the hold
    assert pacer.effective_rate == pytest.approx(300 * FIRST_BACKOFF_FACTOR * BACKOFF_FACTOR)
    assert not pacer.throttle_was_jitter()
    now[0] += 0.004
    assert not pacer.back_off()  # the storm's own hold


async def test_back_off_recovers_slowly() -> None:
    now = [100.0]
    pacer = Pacer(100, clock=lambda: now[0])
    for _ in range(3):  # jitter twice, then a deep cut
        pacer.back_off()
        now[0] += BACKOFF_HOLD + 0.1
    slowed = pacer.effective_rate
    assert slowed < 100 * BACKOFF_FACTOR
    now[0] += 1.0
    await pacer.wait()
    assert slowed < pacer.effective_rate < 100
    now[0] += 120.0
    await pacer.wait()
    assert pacer.effective_rate == pytest.approx(100)


def test_share_divides_the_rate() -> None:
    pacer = Pacer(90)
    pacer.set_share(1 / 3)
    assert pacer.effective_rate == pytest.approx(30)


def test_little_window_sizes_from_rate_and_latency() -> None:
    assert little_window(1000, 0.3, 0.45) == 1125
    assert little_window(1, 0.1, 0.1) == 8  # floor
    assert little_window(100_000, 1.0, 1.0) == 5_000  # ceiling


async def test_window_grants_up_to_free_slots_and_waits_when_full() -> None:
    window = Window(5)
    assert await window.take(3) == 3
    assert await window.take(10) == 2
    waiter = asyncio.create_task(window.take(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    window.give(2)
    assert await asyncio.wait_for(waiter, 1) == 1
    assert window.used == 4


async def test_window_take_at_least_waits_for_that_many_free_slots() -> None:
    """The claimer waits for a quarter of the window rather than claiming each flush's worth."""
    window = Window(8)
    assert await window.take(8) == 8
    waiter = asyncio.create_task(window.take(6, at_least=3))
    window.give(2)
    await asyncio.sleep(0.01)
    assert not waiter.done()  # two free: not yet
    window.give(2)
    assert await asyncio.wait_for(waiter, 1) == 4  # all that is free, up to the six wanted
    window.resize(2)
    window.give(8)
    assert await window.take(6, at_least=5) == 2  # never more than the whole window
