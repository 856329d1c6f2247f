"""The circuit breaker: when the API (or the way to it) is unwell, stop sending instead of
charging every recipient a retry for it.

A pure state machine (no I/O, and no clock: ``now`` is an argument), so every transition is
tested without a network or a sleep. ``watui.engine.outage`` runs it for the sender.

- **closed**: sending. An answer that says the API is unwell (``whatsapp.errors.api_unwell``)
  is *held*, not recorded: alone it is the recipient's own (released as such once a request
  sent after it is answered well), but TRIP_AFTER of them from first attempts, with no request
  sent after them answered well, are a burst, and the breaker opens. Answers come back out of
  order: a success sent before the API fell ill says nothing about the requests after it.
- **open**: nothing is sent. The answers that made the burst, and every unwell answer that
  comes while open, are the API's: their recipients go back as they were. A probe may go at
  ``probe_at``.
- **probing**: one request (a real send of the next recipient) is out. A healthy answer closes
  the breaker; an unwell one opens it again for twice as long (``next_wait``).

How long a probe waits depends on what the API said (``Cause``). **Unreachable** (no connection
was made): FIRST_WAIT, 2, 4 ... MAX_WAIT, and meanwhile a plain TCP connect to the API every
CHECK_EVERY seconds (``reachable``) lets the probe go the moment one connects: it is free and
certain that the way is open, so the API's return is seen within a second however long the
outage was. **Answering but unwell** (bare 5xx, 1, 2, 131000, 131016): a connect tells nothing
and only a send can tell, so the probe itself goes often: every ANSWERING_MAX_WAIT seconds for
the first ANSWERING_FAST_FOR seconds of the outage (a blip of Meta's is then over for us within
two seconds of its end), then with the same growing waits (an outage of hours is not worth a
request a second). The probe costs nobody (its recipient goes back as it was).

Only first attempts count toward a burst: recipients already retried are weak evidence (ten
recipients each failing 131000 on its own, retried together, would look like an outage), but
their unwell answers are held and given back like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

#: Unwell answers from first attempts, with no healthy answer between, that open the breaker.
#: At most the window's floor (``engine.window.FLOOR``): held answers keep their window slots.
TRIP_AFTER = 5
#: Seconds before the first probe; each failed probe doubles the wait, up to MAX_WAIT.
FIRST_WAIT = 1.0
MAX_WAIT = 60.0
#: While the API is unreachable: seconds between two TCP connects that may bring the probe on.
CHECK_EVERY = 0.5
#: While it answers unwell: the longest wait between probes, for the outage's first
#: ANSWERING_FAST_FOR seconds (about 0.1% of a number's 1,000 msg/s, each charged to nobody).
ANSWERING_MAX_WAIT = 1.5
ANSWERING_FAST_FOR = 600.0

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"


class Cause(StrEnum):
    """What the last unwell answer says about the API, which decides how to learn it is back."""

    UNREACHABLE = "unreachable"  # no connection was made: a TCP connect tells when it is back
    ANSWERING = "answering"  # it answered, unwell (5xx, 131000 ...): only a send can tell


class Change(StrEnum):
    """A transition a person should hear about."""

    OPENED = "opened"  # a burst of unwell answers: sending stops
    PROBE_FAILED = "probe_failed"  # still unwell: the next probe waits twice as long
    CLOSED = "closed"  # the probe was answered: sending resumes


@dataclass(frozen=True, slots=True)
class _Held(Generic[T]):
    item: T
    evidence: bool
    sent_at: float


class Judgement(NamedTuple, Generic[T]):
    """What to do with the answers the breaker lets go of: ``own`` are the recipients' own
    (recorded as today), ``api`` were the API's (given back as they were). A tuple: one is
    made per answer, a thousand times a second (a frozen dataclass took 1 µs more)."""

    own: tuple[T, ...] = ()
    api: tuple[T, ...] = ()
    change: Change | None = None


class CircuitBreaker(Generic[T]):
    """closed → open → probing → closed (or open again); items are whatever the caller needs
    back to record an answer."""

    def __init__(
        self, *, trip_after: int | None = None, first_wait: float | None = None,
        max_wait: float | None = None,
    ) -> None:
        # The module's values, read now (not when this was defined): tests shorten the waits.
        self._trip_after = TRIP_AFTER if trip_after is None else trip_after
        self._first_wait = FIRST_WAIT if first_wait is None else first_wait
        self._max_wait = MAX_WAIT if max_wait is None else max_wait
        self._answering_max_wait = min(self._max_wait, ANSWERING_MAX_WAIT)
        self._answering_fast_for = ANSWERING_FAST_FOR
        self.check_every = CHECK_EVERY
        self.cause = Cause.UNREACHABLE  # of the current outage's last unwell answer
        self.state = BreakerState.CLOSED
        self.opened_at: float | None = None  # when the current outage began
        self.probe_at = 0.0  # when the next probe may go (while open)
        self.wait = self._first_wait  # the wait before probe_at
        self._held: list[_Held[T]] = []
        self._evidence = 0  # held answers from first attempts

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def checking(self) -> bool:
        """Whether a TCP connect to the API may bring the probe on (``reachable``)."""
        return self.state is BreakerState.OPEN and self.cause is Cause.UNREACHABLE

    def judge(
        self, item: T, *, unwell: bool, evidence: bool, probe: bool, sent_at: float, now: float,
        answered: bool = False,
    ) -> Judgement[T]:
        """One answer: ``unwell`` by ``api_unwell``, ``evidence`` when it was a first attempt,
        ``probe`` when it answers the probe; its request left at ``sent_at``; ``answered``
        when the API answered it (an HTTP answer, not a failed connection)."""
        cause = Cause.ANSWERING if answered else Cause.UNREACHABLE
        if self.state is BreakerState.CLOSED:
            return self._judge_closed(_Held(item, evidence, sent_at), unwell, cause, now)
        if probe and self.state is BreakerState.PROBING:
            return self._judge_probe(item, unwell, cause, now)
        # Sent before the breaker opened: a healthy answer is the recipient's, but one answer
        # from before does not close the breaker (only the probe's does).
        return Judgement(api=(item,)) if unwell else Judgement(own=(item,))

    def release_held(self) -> tuple[T, ...]:
        """No further answer can confirm a burst (nothing in flight, nothing to send, or the run
        ends): the held answers are their recipients' own."""
        held = tuple(entry.item for entry in self._held)
        self._held.clear()
        self._evidence = 0
        return held

    def reachable(self, now: float) -> None:
        """A TCP connect to the API went through: the way is open again, the probe may go now."""
        if self.checking:
            self.probe_at = min(self.probe_at, now)

    def next_wait(self, now: float) -> float:
        """How long the probe after a failed one waits: the one rule (see the module's doc)."""
        cap = self._max_wait
        opened_at = now if self.opened_at is None else self.opened_at
        if self.cause is Cause.ANSWERING and now - opened_at < self._answering_fast_for:
            cap = self._answering_max_wait
        return min(cap, self.wait * 2)

    def start_probe(self, now: float) -> bool:
        """Whether a probe may go now; if so the breaker waits for its answer."""
        if self.state is not BreakerState.OPEN or now < self.probe_at:
            return False
        self.state = BreakerState.PROBING
        return True

    def _judge_closed(
        self, answer: _Held[T], unwell: bool, cause: Cause, now: float
    ) -> Judgement[T]:
        if not unwell:
            if not self._held:
                return Judgement(own=(answer.item,))
            return Judgement(own=(*self._release_sent_before(answer.sent_at), answer.item))
        self._held.append(answer)
        self._evidence += answer.evidence
        if self._evidence < self._trip_after:
            return Judgement()
        burst = self.release_held()
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.cause = cause
        self.wait = self._first_wait
        self.probe_at = now + self.wait
        return Judgement(api=burst, change=Change.OPENED)

    def _release_sent_before(self, sent_at: float) -> tuple[T, ...]:
        """A request that left at ``sent_at`` was answered well: the held answers to requests
        sent before it were lone errors, their recipients' own."""
        lone = tuple(entry.item for entry in self._held if entry.sent_at <= sent_at)
        if lone:
            self._held = [entry for entry in self._held if entry.sent_at > sent_at]
            self._evidence = sum(entry.evidence for entry in self._held)
        return lone

    def _judge_probe(self, item: T, unwell: bool, cause: Cause, now: float) -> Judgement[T]:
        if unwell:
            self.state = BreakerState.OPEN
            self.cause = cause
            self.wait = self.next_wait(now)
            self.probe_at = now + self.wait
            return Judgement(api=(item,), change=Change.PROBE_FAILED)
        self.state = BreakerState.CLOSED
        return Judgement(own=(item,), change=Change.CLOSED)
