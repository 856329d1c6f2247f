"""Counters the engine bumps on the hot path, and the snapshot observers read on a timer.

Recording is a few integer additions (no locks, no messages): the engine and its observers share
one event loop. Observers (the TUI at 2-4 Hz, the progress line) call ``snapshot()``, which does
the aggregation work on their time, not the engine's.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain

from watui.whatsapp.results import ConnectionStats

SERIES_SECONDS = 600  # ten minutes of per-second history
LATENCY_SAMPLES = 2_000


@dataclass(frozen=True, slots=True)
class SenderEvent:
    """Something a person should notice: a pause, a rate change, a step change. The service
    hands it to the UI as its own ``EngineEvent``."""

    seq: int
    at: float  # wall-clock seconds
    kind: str  # paused / resumed / rate / step / throttled / completed / warning / ...
    text: str


@dataclass(frozen=True, slots=True)
class OutageFigures:
    """The API is unreachable (the circuit breaker is open): since when, and when the next
    probe goes (None: it is out now). Wall-clock seconds."""

    since: float
    retry_at: float | None
    checking_every: float | None = None  # a TCP connect every so many s may bring the probe on


@dataclass(frozen=True, slots=True)
class NumberFigures:
    """One number of a campaign of several: its rate and whether it sends from here."""

    phone_number_id: str
    state: str  # NumberState
    reason: str | None  # why it paused
    target_rate: float
    current_rate: float  # sent/s over the last few seconds


@dataclass(frozen=True, slots=True)
class SenderFigures:
    """One run's figures as the sender counts them, as plain data. The service adds the
    campaign's stored counters to make the UI's ``MetricsSnapshot``."""

    at: float
    target_rate: float  # what the user allowed
    paced_rate: float  # after throttle back-off and sharing with other processes
    current_rate: float  # sent/s over the last few seconds
    sent_per_s: tuple[int, ...]  # oldest first, one per second, last = the current second
    failed_per_s: tuple[int, ...]
    retried_per_s: tuple[int, ...]
    throttled_per_s: tuple[int, ...]
    latency_p50: float | None
    latency_p95: float | None
    in_flight: int
    window: int
    requests: int
    new_connections: int
    errors_by_code: dict[str, int] = field(default_factory=dict)
    accepted_total: int = 0  # accepted by the API in this run
    failed_total: int = 0
    retried_total: int = 0
    in_doubt_total: int = 0
    outage: OutageFigures | None = None
    numbers: tuple[NumberFigures, ...] = ()  # a campaign of several numbers: each one's figures
    connections: int = 0  # requests allowed in flight now (the connection limit)

    @property
    def connection_reuse(self) -> float | None:
        """Share of requests that reused a kept-alive connection."""
        return ConnectionStats(self.requests, self.new_connections).reuse


class NumberState(StrEnum):
    SENDING = "sending"
    PAUSED = "paused"
    ELSEWHERE = "held by another process"
    DONE = "done"
    WAITING = "waiting"  # not started yet, or between runs


class _Series:
    """A per-second counter over the last SERIES_SECONDS seconds."""

    __slots__ = ("_buckets", "_clock", "_second")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: deque[int] = deque([0] * SERIES_SECONDS, maxlen=SERIES_SECONDS)
        self._second = int(clock())

    def add(self, count: int = 1) -> None:
        self._roll()
        self._buckets[-1] += count

    def values(self, seconds: int) -> tuple[int, ...]:
        self._roll()
        return tuple(self._buckets)[-seconds:]

    def _roll(self) -> None:
        second = int(self._clock())
        gap = second - self._second
        if gap > 0:
            self._buckets.extend([0] * min(gap, SERIES_SECONDS))
            self._second = second


class EngineMetrics:
    """Hot-path counters plus the notable-event log."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        events_to: EngineMetrics | None = None,
        label: str = "",
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        #: One number's metrics within a campaign's: its events go to the campaign's log.
        self._events_to = events_to
        self.label = label
        #: A campaign of several numbers: each number's metrics and (state, pause reason).
        self.numbers: dict[str, EngineMetrics] = {}
        self.number_states: dict[str, tuple[str, str | None]] = {}
        self.sent = _Series(clock)
        self.failed = _Series(clock)
        self.retried = _Series(clock)
        self.throttled = _Series(clock)
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.errors_by_code: Counter[str] = Counter()
        self.accepted_total = 0
        self.failed_total = 0
        self.retried_total = 0
        self.in_doubt_total = 0
        self.in_flight = 0
        self.window = 0
        self.connections = 0
        self.target_rate = 0.0
        self.paced_rate = 0.0
        self.connection_stats: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self.outage: OutageFigures | None = None  # set by the sender's OutageGuard
        self.outage_probes = 0  # probes that met the API still unwell, in this run
        self._events: deque[SenderEvent] = deque(maxlen=500)
        self._seq = 0

    def event(self, kind: str, text: str) -> SenderEvent:
        if self._events_to is not None:
            return self._events_to.event(kind, f"number {self.label}: {text}")
        self._seq += 1
        item = SenderEvent(self._seq, self._wall_clock(), kind, text)
        self._events.append(item)
        return item

    def events_since(self, seq: int) -> list[SenderEvent]:
        """Events newer than ``seq`` (0 for all that are kept)."""
        return [item for item in self._events if item.seq > seq]

    def for_number(self, phone_number_id: str) -> EngineMetrics:
        """The metrics of one of this campaign's numbers, kept across runs like the campaign's."""
        if phone_number_id not in self.numbers:
            self.numbers[phone_number_id] = EngineMetrics(
                clock=self._clock, wall_clock=self._wall_clock, events_to=self,
                label=phone_number_id,
            )
        return self.numbers[phone_number_id]

    def p95_latency(self) -> float | None:
        return _percentile(sorted(self.latencies), 0.95)

    def current_rate(self) -> float:
        """Sent per second over the last five complete seconds (the campaigns table's rate,
        without a whole snapshot: that sorts every latency sample)."""
        return _recent_rate(self.sent.values(6))

    def snapshot(self, seconds: int = 120) -> SenderFigures:
        if self.numbers:
            return self._numbers_snapshot(seconds)
        ordered = sorted(self.latencies)
        sent = self.sent.values(seconds)
        requests, new_connections = self.connection_stats()
        return SenderFigures(
            at=self._wall_clock(),
            target_rate=self.target_rate,
            paced_rate=self.paced_rate,
            current_rate=_recent_rate(sent),
            sent_per_s=sent,
            failed_per_s=self.failed.values(seconds),
            retried_per_s=self.retried.values(seconds),
            throttled_per_s=self.throttled.values(seconds),
            latency_p50=_percentile(ordered, 0.50),
            latency_p95=_percentile(ordered, 0.95),
            in_flight=self.in_flight,
            window=self.window,
            requests=requests,
            new_connections=new_connections,
            errors_by_code=dict(self.errors_by_code),
            accepted_total=self.accepted_total,
            failed_total=self.failed_total,
            retried_total=self.retried_total,
            in_doubt_total=self.in_doubt_total,
            outage=self.outage,
            connections=self.connections,
        )

    def _numbers_snapshot(self, seconds: int) -> SenderFigures:
        """A campaign of several numbers: the sum of its numbers' figures, and each one's."""
        parts = {number: metrics.snapshot(seconds) for number, metrics in self.numbers.items()}
        latencies = sorted(chain.from_iterable(m.latencies for m in self.numbers.values()))
        figures = list(parts.values())
        errors: Counter[str] = Counter()
        for part in figures:
            errors.update(part.errors_by_code)
        requests, new_connections = figures[0].requests, figures[0].new_connections  # one client
        return SenderFigures(
            at=self._wall_clock(),
            target_rate=sum(f.target_rate for f in figures),
            paced_rate=sum(f.paced_rate for f in figures),
            current_rate=sum(f.current_rate for f in figures),
            sent_per_s=_summed(f.sent_per_s for f in figures),
            failed_per_s=_summed(f.failed_per_s for f in figures),
            retried_per_s=_summed(f.retried_per_s for f in figures),
            throttled_per_s=_summed(f.throttled_per_s for f in figures),
            latency_p50=_percentile(latencies, 0.50),
            latency_p95=_percentile(latencies, 0.95),
            in_flight=sum(f.in_flight for f in figures),
            window=sum(f.window for f in figures),
            requests=requests,
            new_connections=new_connections,
            errors_by_code=dict(errors),
            accepted_total=sum(f.accepted_total for f in figures),
            failed_total=sum(f.failed_total for f in figures),
            retried_total=sum(f.retried_total for f in figures),
            in_doubt_total=sum(f.in_doubt_total for f in figures),
            numbers=tuple(
                NumberFigures(number, *self.number_states.get(number, (NumberState.WAITING, None)),
                              target_rate=part.target_rate, current_rate=part.current_rate)
                for number, part in parts.items()
            ),
        )


def _recent_rate(sent_per_s: tuple[int, ...]) -> float:
    recent = sent_per_s[-6:-1] or (0,)  # the last five complete seconds
    return sum(recent) / len(recent)


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def _summed(series: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
    """Per-second series of equal length added second by second."""
    return tuple(sum(values) for values in zip(*series, strict=True))
