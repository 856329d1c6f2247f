"""The in-flight window: how many recipients may be in `sending` at once.

A slot is taken when a row is claimed (status → sending in the database) and given back when its
outcome is flushed (or when an unsent row is released). So the rows a crash could leave in
`sending` (and so in_doubt) never exceed the window, and the window also bounds requests in
flight. Its size follows Little's law: rate × (p95 latency + flush interval + claim lead) ×
headroom, between a floor and a ceiling, unless ``send.max_in_flight`` fixes it.
"""

from __future__ import annotations

import asyncio
import math

from watui.settings import SendSettings

HEADROOM = 1.5
FLOOR = 8
CEILING = 5_000
CLAIM_LEAD = 0.25  # seconds of sends kept claimed ahead of the dispatcher
DEFAULT_LATENCY = 0.3  # assumed p95 before any answer came back


def little_window(rate: float, p95_latency: float, hold: float) -> int:
    """Slots needed to keep ``rate`` sends/s going when each slot is held ``p95_latency + hold``."""
    return max(FLOOR, min(CEILING, math.ceil(rate * (p95_latency + hold) * HEADROOM)))


def window_size(send: SendSettings, rate: float, p95_latency: float | None) -> int:
    """The window for sending at ``rate``: ``send.max_in_flight`` when set, else Little's law
    with a slot held for the answer, the claim lead and a flush interval."""
    if send.max_in_flight:
        return send.max_in_flight
    hold = send.flush_interval_ms / 1000 + CLAIM_LEAD
    return little_window(rate, p95_latency or DEFAULT_LATENCY, hold)


class Window:
    """A resizable counting semaphore whose one taker can take several slots at once."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._used = 0
        self._space = asyncio.Event()
        self._space.set()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def used(self) -> int:
        return self._used

    def resize(self, capacity: int) -> None:
        """Shrinking never cancels what is held: new takes wait until usage falls below it."""
        self._capacity = max(1, capacity)
        self._update()

    async def take(self, wanted: int, *, at_least: int = 1) -> int:
        """Wait for ``at_least`` free slots (one at the least, the whole window at the most),
        then take up to ``wanted``; returns how many."""
        while self._capacity - self._used < min(max(1, at_least), self._capacity):
            self._space.clear()
            await self._space.wait()
        granted = min(wanted, self._capacity - self._used)
        self._used += granted
        self._update()
        return granted

    def give(self, count: int) -> None:
        if count <= 0:
            return
        self._used = max(0, self._used - count)
        self._update()

    def _update(self) -> None:
        if self._used < self._capacity:
            self._space.set()
        else:
            self._space.clear()
