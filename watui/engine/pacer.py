"""Release sends evenly at the allowed rate, so that no one-second window ever holds more.

A strict schedule (GCRA with no burst): slot k is at ``start + k * interval``. A send released late
keeps the schedule (the next ones are not pushed back), unless it is later than ``max_lateness``,
in which case the schedule restarts from now: catching up a long stall would bunch sends.

The fencepost: sends exactly ``1/rate`` apart put ``rate + 1`` of them in some closed one-second
windows. The interval is therefore ``(1 + margin) / rate`` with a margin (seconds over a full
window) larger than ``max_lateness`` plus the jitter between our clock and the server's: then any
``rate + 1`` consecutive sends span more than one second, wherever they land.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Seconds added over each full window of ``rate`` sends (0.6 % of a second).
WINDOW_MARGIN = 0.006
#: A send later than this restarts the schedule instead of catching up.
MAX_LATENESS = 0.002
#: Multiplicative decrease on a throttle answer, and the floor it stops at.
BACKOFF_FACTOR = 0.7
MIN_FACTOR = 0.05
#: Slow recovery: the factor grows by this much per second without a throttle answer.
RECOVERY_PER_SECOND = 0.02
#: Throttle answers closer together than this count as one (they are the same burst).
BACKOFF_HOLD = 1.0


class Pacer:
    """One per phone number (per process); ``wait()`` returns when the next send may go."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._base_rate = rate
        self._share = 1.0  # this process's share when several processes send one campaign
        self._factor = 1.0  # AIMD factor after throttle answers
        self._last_backoff = -1e9
        self._next_slot = clock()
        self._interval = self._compute_interval()

    @property
    def base_rate(self) -> float:
        return self._base_rate

    @property
    def effective_rate(self) -> float:
        """The rate actually paced now: base × share × throttle factor."""
        return self._base_rate * self._share * self._factor

    def set_rate(self, rate: float) -> None:
        """Change the allowed rate; takes effect from the next send."""
        if rate <= 0:
            raise ValueError("rate must be greater than 0")
        self._base_rate = rate
        self._reschedule()

    def set_share(self, share: float) -> None:
        """Take ``share`` (0-1] of the rate, e.g. 1/3 when three processes send together."""
        self._share = min(1.0, max(share, 1e-6))
        self._reschedule()

    def back_off(self) -> bool:
        """A throttle answer came back: slow down (at most once per hold period)."""
        now = self._clock()
        if now - self._last_backoff < BACKOFF_HOLD:
            return False
        self._recover(now)
        self._last_backoff = now
        self._factor = max(MIN_FACTOR, self._factor * BACKOFF_FACTOR)
        self._reschedule()
        return True

    async def wait(self) -> None:
        """Sleep until the next slot, then claim it."""
        now = self._clock()
        if self._factor < 1.0:
            self._recover(now)
        delay = self._next_slot - now
        if delay > 0:
            await asyncio.sleep(delay)
            now = self._clock()
        if now - self._next_slot > MAX_LATENESS:
            self._next_slot = now
        self._next_slot += self._interval

    def _recover(self, now: float) -> None:
        elapsed = now - self._last_backoff
        if elapsed <= BACKOFF_HOLD or self._factor >= 1.0:
            return
        recovered = min(1.0, self._factor + RECOVERY_PER_SECOND * (elapsed - BACKOFF_HOLD))
        if recovered != self._factor:
            self._factor = recovered
            self._last_backoff = now - BACKOFF_HOLD  # count recovery from here on
            self._interval = self._compute_interval()

    def _compute_interval(self) -> float:
        return (1.0 + WINDOW_MARGIN) / self.effective_rate

    def _reschedule(self) -> None:
        """A new interval applies at once: the pending slot moves to one new interval from now."""
        old_interval = self._interval
        self._interval = self._compute_interval()
        now = self._clock()
        previous_send = self._next_slot - old_interval
        self._next_slot = max(now, previous_send + self._interval) if self._next_slot > now else now
