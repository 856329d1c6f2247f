"""The pacer never puts more than `rate` sends in any one-second window, and keeps the rate."""

from __future__ import annotations

import asyncio
import bisect
import time

import pytest

from watui.engine.pacer import Pacer
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
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= rate * 0.95


async def test_rate_change_takes_effect_at_once() -> None:
    pacer = Pacer(10)
    await pacer.wait()
    pacer.set_rate(200)
    started = time.monotonic()
    for _ in range(20):
        await pacer.wait()
    # At 10 msg/s, 20 sends would take ~2 s; at 200 msg/s ~0.1 s.
    assert time.monotonic() - started < 0.5


def test_back_off_slows_and_holds() -> None:
    now = [100.0]
    pacer = Pacer(100, clock=lambda: now[0])
    assert pacer.back_off()
    slowed = pacer.effective_rate
    assert slowed < 100
    assert not pacer.back_off()  # the same burst of throttle answers counts once
    assert pacer.effective_rate == slowed


async def test_back_off_recovers_slowly() -> None:
    now = [100.0]
    pacer = Pacer(100, clock=lambda: now[0])
    pacer.back_off()
    slowed = pacer.effective_rate
    now[0] += 6.0
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
