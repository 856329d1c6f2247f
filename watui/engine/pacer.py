"""Release sends evenly at the allowed rate, so that no one-second window ever holds more.

Two rules together:
- an even schedule (GCRA): slot k is at ``start + k * interval``; a send released late may catch
  up at most MAX_CATCH_UP slots (so a stall never turns into a burst), beyond that the schedule
  restarts from now;
- a hard sliding-window check: the (n+1)-th send is held until more than one second plus
  WINDOW_MARGIN has passed since the send n places before it (n = the rate). This is the fencepost
  guard: sends exactly ``1/rate`` apart put ``rate + 1`` of them in some closed one-second window.

The interval is ``(1 + SCHEDULE_MARGIN) / rate``; the margins also absorb the jitter between the
moment we release a send and the moment the server counts it.

The window counts a send from when it leaves, where the client says (``written``): in one event
loop with a UI, a redraw of 10-20 ms between a release and its write sent that request late
while the ones a second later were not, and the API saw 81 in one second at 80 msg/s.

A stall of the loop (a redraw of the monitor, the receiver's work) that wakes the pacer more than
MAX_CATCH_UP slots late loses the slots beyond. They are owed (``debt``), for a second at most,
and repaid by spacing the next slots REPAY_BOOST closer, but never so that a second holding a
repaid send holds more than REPAID_ROOM sends over what the even schedule puts in one (996 at
1,000 msg/s): a stall costs no throughput, and its repayment neither bursts nor brings a window
past the hard check's margin, where arrival jitter at the API counts (with no such limit, a
second free of stalls after a repayment held the repaid sends right at the rate). With the
monitor redrawing 10-30 ms at 4 Hz, the plain catch-up lost 4-5 % of the rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

#: Seconds added to each full window of ``rate`` sends by the schedule (0.7 % of the rate).
SCHEDULE_MARGIN = 0.007
#: The hard check's margin: smaller than the schedule's, so that it only binds after a catch-up
#: (binding always, it would add every send's wake-up lateness to the spacing).
WINDOW_MARGIN = 0.005
#: How many slots a late send may catch up. More (10 ms worth at 1,000 msg/s was tried) bunches
#: requests enough that arrival jitter at the API pushes some seconds over the limit.
MAX_CATCH_UP = 3
#: A slot due this soon is released at once, without a sleep: at 1,000 msg/s sends then leave
#: in pairs and every other wake-up of the loop is saved (~15% of the engine's CPU). The
#: schedule stays anchored to its slots, and the hard window check is never released early.
EARLY_RELEASE = 0.0012
#: While slots are owed, the next ones are this much closer (15 % faster): enough to repay
#: redraws of 30 ms at 4 Hz (12 % of the time) between them. Owed slots are forgotten
#: DEBT_HORIZON after the stall that missed them, and no more are owed than this boost repays in
#: that time (a 500 ms stall owes 150 ms worth).
REPAY_BOOST = 0.15
DEBT_HORIZON = 1.0
#: How many sends more than the even schedule puts in one second (994 at 1,000 msg/s) a
#: second holding a repaid send may hold: 996, no nearer the rate than the hard check's margin.
#: At the schedule's own 994, a second free of stalls after a repayment held back as many sends
#: as were repaid, once the stall's gap had left its window.
REPAID_ROOM = 2
#: Multiplicative decrease on a throttle answer, and the floor it stops at.
BACKOFF_FACTOR = 0.85
#: The decrease on a throttle answer at full pace. The window above never holds more than the
#: rate, so a lone 130429 there is the API counting a send or two early (requests reach it with
#: a few ms of jitter, more over the internet than on loopback), not a lower limit: 15 % for
#: seconds cost a 20 s run at 1,000 msg/s 0.03-0.05 of its rate, and 2 % still cost runs with
#: a few such answers up to 0.01. A second burst before the pace is back to full is taken
#: for jitter too (JITTER_STEPS): two bursts 1-1.4 s apart had taken the 15 % step. A limit
#: that is really lower answers in a storm (JITTER_MOST) or again after that, and from there
#: each step is BACKOFF_FACTOR.
FIRST_BACKOFF_FACTOR = 0.99
#: The most throttle answers one burst taken for jitter holds; one more and it is a storm (a
#: limit that is really lower), which takes BACKOFF_FACTOR at once. Jitter at 1,000 msg/s gave
#: 1-7 answers a run; a limit of 60 at 300 msg/s answers 240 a second.
JITTER_MOST = 10
#: Jitter steps the pace may take before it is back to full; the next burst is a lower limit.
JITTER_STEPS = 2
MIN_FACTOR = 0.05
#: Slow recovery: the factor grows by this much per second without a throttle answer.
RECOVERY_PER_SECOND = 0.05
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
        self._jitter_until = -math.inf  # answers until then belong to a jitter burst
        self._burst_answers = 0  # throttle answers in the burst under way
        self._jitter_steps = 0  # jitter steps taken since the pace was last full
        self._next_slot = clock()
        self._interval = self._compute_interval()
        #: When each of the last sends left: its release, moved later when its write was late.
        self._recent: deque[float] = deque(maxlen=self._window_count())
        self._released = 0  # sends released so far: their numbers, for ``written``
        self._debt = 0.0  # slots owed after stalls of the loop
        self._debt_until = 0.0  # when the debt is forgotten
        self._repaid_until = 0.0  # when the last repaid send leaves the window
        #: Told the monotonic time of each release (benchmarks check the window by it).
        self.on_release: Callable[[float], None] | None = None

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
        """A throttle answer came back: slow down (at most once per hold period, unless a burst
        taken for jitter grows into a storm), a little if it is jitter, more otherwise."""
        now = self._clock()
        if now - self._last_backoff < BACKOFF_HOLD:
            return self._count_in_burst(now)
        self._recover(now)
        self._open_burst(now, jitter=self._jitter_steps < JITTER_STEPS)
        return True

    def throttle_was_jitter(self) -> bool:
        """Whether the throttle answer just passed to ``back_off`` belongs to a jitter burst:
        one that came at full pace (or after one jitter step, before the pace was back to
        full) and holds at most JITTER_MOST answers. That is the API counting a send or two
        early, not a lower limit: its sends are owed no retry delay. A limit that is really
        lower answers in a storm, or again after JITTER_STEPS, and those are not jitter."""
        return self._clock() < self._jitter_until

    def _open_burst(self, now: float, *, jitter: bool) -> None:
        self._last_backoff = now
        self._burst_answers = 1
        self._jitter_steps = self._jitter_steps + 1 if jitter else JITTER_STEPS
        self._jitter_until = now + BACKOFF_HOLD if jitter else -math.inf
        step = FIRST_BACKOFF_FACTOR if jitter else BACKOFF_FACTOR
        self._factor = max(MIN_FACTOR, self._factor * step)
        self._reschedule()

    def _count_in_burst(self, now: float) -> bool:
        """One more answer of the burst under way: a jitter burst that grows past JITTER_MOST
        is a storm, and takes the full step at once."""
        self._burst_answers += 1
        if now >= self._jitter_until or self._burst_answers <= JITTER_MOST:
            return False
        self._open_burst(now, jitter=False)
        return True

    async def wait(self) -> int:
        """Sleep until the next slot, then claim it; returns the send's number (for ``written``)."""
        now = self._clock()
        if self._factor < 1.0:
            self._recover(now)
        slot = self._next_slot
        # Until `rate` sends have gone no window is full, and only the schedule binds (with
        # its early release): taking the slot for the window's opening slept for every slot
        # even microseconds ahead.
        window_opens = -math.inf
        if len(self._recent) == self._recent.maxlen:
            window_opens = self._recent[0] + 1.0 + WINDOW_MARGIN
        if now < self._repaid_until:  # a second holding a repaid send is hardly fuller than the schedule's
            window_opens = max(window_opens, self._opens(self._repaid_second()))
        due = max(slot, window_opens)
        catch_up = MAX_CATCH_UP * self._interval
        if window_opens > now or slot - now > EARLY_RELEASE:
            await asyncio.sleep(due - now)
            now = self._clock()
            while window_opens > now:  # uvloop rounds timers to whole ms: some fire early
                await asyncio.sleep(window_opens - now)
                now = self._clock()
            if now - due > catch_up:  # only a wake-up we asked for was late because of the loop
                self._owe((now - due - catch_up) / self._interval, now)
        if now - self._next_slot > catch_up:
            self._next_slot = now - catch_up
        self._recent.append(now)
        if self.on_release is not None:
            self.on_release(now)
        spacing = self._repaying(now) if self._debt > 0.0 else self._interval
        self._next_slot = max(self._next_slot, due) + spacing
        self._released += 1
        return self._released

    def written(self, number: int, at: float) -> None:
        """Send ``number`` left at ``at`` (its bytes were written): the window counts it from then."""
        index = number - 1 - (self._released - len(self._recent))
        if 0 <= index < len(self._recent) and at > self._recent[index]:
            self._recent[index] = at

    def _owe(self, slots: float, now: float) -> None:
        """The loop woke us late: ``slots`` were missed, to be repaid within DEBT_HORIZON."""
        most = REPAY_BOOST * self.effective_rate * DEBT_HORIZON
        self._debt = min(most, self._debt + slots)
        self._debt_until = now + DEBT_HORIZON

    def _repaying(self, now: float) -> float:
        """The spacing to the next slot while in debt: closer, if the window has room."""
        if now > self._debt_until:
            self._debt = 0.0
            return self._interval
        if self._opens(self._repaid_second()) > now:  # no room for one more: pay later
            return self._interval
        self._debt -= REPAY_BOOST / (1.0 + REPAY_BOOST)
        self._repaid_until = now + 1.0
        return self._interval / (1.0 + REPAY_BOOST)

    def _repaid_second(self) -> int:
        """The most sends a (closed) second holding a repaid send may hold: what the even
        schedule itself puts in one, and REPAID_ROOM more."""
        return math.floor(1.0 / self._interval) + 1 + REPAID_ROOM

    def _opens(self, most: int) -> float:
        """When the next send may go for no one-second window to hold more than ``most``."""
        must_leave = len(self._recent) + 1 - most
        return self._recent[must_leave - 1] + 1.0 if must_leave > 0 else -math.inf

    def _recover(self, now: float) -> None:
        elapsed = now - self._last_backoff
        if elapsed <= BACKOFF_HOLD or self._factor >= 1.0:
            return
        recovered = min(1.0, self._factor + RECOVERY_PER_SECOND * (elapsed - BACKOFF_HOLD))
        if recovered >= 1.0:
            self._jitter_steps = 0
        if recovered != self._factor:
            self._factor = recovered
            self._last_backoff = now - BACKOFF_HOLD  # count recovery from here on
            self._interval = self._compute_interval()
            self._recent = deque(self._recent, maxlen=self._window_count())

    def _compute_interval(self) -> float:
        return (1.0 + SCHEDULE_MARGIN) / self.effective_rate

    def _window_count(self) -> int:
        """Sends allowed in one second at the paced rate (at least one)."""
        return max(1, math.floor(self.effective_rate + 1e-9))

    def _reschedule(self) -> None:
        """A new interval applies at once: the pending slot moves to one new interval from now.
        Nothing is owed any more: a throttle answer says slower, and a new rate starts afresh."""
        self._debt = 0.0
        old_interval = self._interval
        self._interval = self._compute_interval()
        self._recent = deque(self._recent, maxlen=self._window_count())
        now = self._clock()
        previous_send = self._next_slot - old_interval
        self._next_slot = max(now, previous_send + self._interval) if self._next_slot > now else now
