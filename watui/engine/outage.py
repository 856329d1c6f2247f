"""OutageGuard: runs the circuit breaker (``engine.breaker``) for one sender.

The sender makes two calls: ``record(row, result)`` for every answer (which answers are the
recipients' own and which were the API's), and ``await wait_closed(next_row_id)`` before every
send (it returns at once while the API is well). While the breaker is open the dispatcher waits
here; rows already claimed wait in memory. Then one probe goes: a real send of the next
recipient, not a cheap GET, because only a send proves that sending works (the templates
endpoint can answer while /messages gives 131000), and the probe is a message that had to go
anyway. The pacer then resumes at its rate: it never catches up more than a few slots.

While the API cannot be reached at all, ``can_connect`` (``whatsapp.reachability``: a TCP
connect, nothing sent) runs every ``breaker.CHECK_EVERY`` seconds, and the probe goes as soon
as one connects: the return is seen within a second instead of at the next probe of a schedule
that grows to a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from watui.engine.breaker import BreakerState, Cause, Change, CircuitBreaker, Judgement
from watui.engine.decisions import decide_in_outage
from watui.engine.metrics import EngineMetrics, OutageFigures
from watui.rules import outage_line, outage_next
from watui.storage.sending.outcomes import ClaimedRecipient
from watui.whatsapp.errors import api_unwell
from watui.whatsapp.results import ApiError, SendResult

log = logging.getLogger(__name__)

#: The longest cause quoted in an outage event.
CAUSE_LIMIT = 100


class Answer(NamedTuple):
    """One answer as the breaker holds it until it is judged (a tuple: one per answer)."""

    row: ClaimedRecipient
    result: SendResult
    at: float  # wall-clock seconds when it came


class OutageGuard:
    """Holds sending while the API is unwell; ``give_up(reason)`` is called once when the
    outage has lasted ``max_outage_s`` (None: wait forever), and ``keep_claims()`` every
    ``keep_every`` seconds while it lasts (the rows waiting in memory keep their leases).
    ``can_connect``: whether a TCP connection to the API opens now (None: probes alone)."""

    def __init__(
        self,
        metrics: EngineMetrics,
        *,
        max_outage_s: float | None,
        give_up: Callable[[str], None],
        more_coming: Callable[[], bool],
        keep_claims: Callable[[], Awaitable[None]],
        keep_every: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        can_connect: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.metrics = metrics
        self._max_outage_s = max_outage_s
        self._give_up = give_up
        self._more_coming = more_coming
        self._keep_claims = keep_claims
        self._keep_every = keep_every
        self._keep_at = math.inf
        self._clock = clock
        self._wall_clock = wall_clock
        self._breaker: CircuitBreaker[Answer] = CircuitBreaker()
        self._can_connect = can_connect
        self._check_at = 0.0  # when the next connect check may go (monotonic)
        self._told: tuple[float, Cause] | None = None  # the wait and cause last announced
        self._changed = asyncio.Event()
        self._probe_id: int | None = None
        self._since = 0.0  # wall clock, for people
        self._gave_up = False

    @property
    def state(self) -> BreakerState:
        return self._breaker.state

    def record(self, row: ClaimedRecipient, result: SendResult) -> Judgement[Answer]:
        """Judge one answer; the answers let go of are the recipients' own or the API's."""
        breaker = self._breaker
        if breaker.state is BreakerState.CLOSED and not breaker.held and not api_unwell(result):
            return Judgement((Answer(row, result, self._wall_clock()),))  # the hot path
        now = self._clock()
        judged = breaker.judge(
            Answer(row, result, self._wall_clock()), unwell=api_unwell(result),
            evidence=row.attempts == 0, probe=row.id == self._probe_id,
            sent_at=now - result.latency, now=now, answered=isinstance(result, ApiError),
        )
        if judged.change is not None:
            self._announce(judged.change, row, result)
        if breaker.held and breaker.state is BreakerState.CLOSED and not self._more_coming():
            # Nothing more will answer soon: no burst to confirm, the held ones were lone errors.
            return Judgement(own=(*judged.own, *breaker.release_held()), api=judged.api)
        return judged

    def settle(self) -> tuple[Answer, ...]:
        """The run ends: answers still held are their recipients' own."""
        return self._breaker.release_held()

    async def wait_closed(self, next_row_id: int) -> None:
        """Return at once while the API is well. While it is not, wait until a probe may go
        (then the send of ``next_row_id`` is the probe) or the breaker closes."""
        breaker = self._breaker
        while breaker.state is not BreakerState.CLOSED:
            now = self._clock()
            if now >= self._keep_at:
                self._keep_at = now + self._keep_every
                await self._keep_claims()
            timeout = min(self._give_up_if_due(now), self._keep_at - now)
            if not self._gave_up:  # once given up the run is stopping: no more probes
                if breaker.start_probe(now):
                    self._probe_id = next_row_id
                    self._show(retry_at=None)
                    return
                if breaker.state is BreakerState.OPEN:
                    timeout = min(timeout, breaker.probe_at - now)
                if self._checking:
                    if now >= self._check_at:
                        await self._check(now)
                        continue
                    timeout = min(timeout, self._check_at - now)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), None if math.isinf(timeout) else timeout)

    @property
    def _checking(self) -> bool:
        return self._can_connect is not None and self._breaker.checking

    async def _check(self, now: float) -> None:
        """One connect check; when it goes through, the probe may go at once."""
        assert self._can_connect is not None
        self._check_at = now + self._breaker.check_every
        if await self._can_connect():
            self._breaker.reachable(self._clock())

    def _give_up_if_due(self, now: float) -> float:
        """Seconds left before send.max_outage_s runs out; when none are, give up (once)."""
        opened_at = self._breaker.opened_at
        if self._max_outage_s is None or self._gave_up or opened_at is None:
            return math.inf
        left = opened_at + self._max_outage_s - now
        if left > 0:
            return left
        self._gave_up = True
        since = time.strftime("%H:%M:%S", time.localtime(self._since))
        self._give_up(
            f"API unreachable since {since}, longer than send.max_outage_s "
            f"({self._max_outage_s:g} s); nobody was charged for it: run again to go on"
        )
        return math.inf

    def _announce(self, change: Change, row: ClaimedRecipient, result: SendResult) -> None:
        """An event a person reads, and the figures the monitor and `watui run` show."""
        now = self._wall_clock()
        wait = self._breaker.wait
        self._changed.set()
        if change is Change.CLOSED:
            self.metrics.outage = None
            self._told = None
            text = f"API back after {now - self._since:.0f} s"
        else:
            self._check_at = self._clock() + self._breaker.check_every
            cause = decide_in_outage(row, result).problem.title[:CAUSE_LIMIT]
            if change is Change.OPENED:
                self._since = now
                self._keep_at = self._clock() + self._keep_every
                self._show(retry_at=now + wait)
                line = outage_line(self._since, now + wait, now, self._checking_every())
                text = f"{line} ({cause})"
            else:
                self._show(retry_at=now + wait)
                self.metrics.outage_probes += 1
                if self._told == (wait, self._breaker.cause):
                    return  # as last said: the status line keeps counting down
                next_try = outage_next(now + wait, now, self._checking_every())
                text = f"API still unreachable ({cause}), {next_try}"
            self._told = (wait, self._breaker.cause)
        self.metrics.event("outage", text)
        log.info("%s", text)  # people read the event; a warning would print it twice

    def _checking_every(self) -> float | None:
        return self._breaker.check_every if self._checking else None

    def _show(self, *, retry_at: float | None) -> None:
        self.metrics.outage = OutageFigures(self._since, retry_at, self._checking_every())
