"""Counters the engine bumps on the hot path, and the snapshot observers read on a timer.

Recording is a few integer additions (no locks, no messages): the engine and its observers share
one event loop. Observers (the TUI at 2-4 Hz, the progress line) call ``snapshot()``, which does
the aggregation work on their time, not the engine's.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

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
    connections: int = 0  # requests allowed in flight now (the connection limit)

    @property
    def connection_reuse(self) -> float | None:
        """Share of requests that reused a kept-alive connection."""
        return ConnectionStats(self.requests, self.new_connections).reuse


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
    ) -> None:
        self._wall_clock = wall_clock
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
        self._events: deque[SenderEvent] = deque(maxlen=500)
        self._seq = 0

    def event(self, kind: str, text: str) -> SenderEvent:
        self._seq += 1
        item = SenderEvent(self._seq, self._wall_clock(), kind, text)
        self._events.append(item)
        return item

    def events_since(self, seq: int) -> list[SenderEvent]:
        """Events newer than ``seq`` (0 for all that are kept)."""
        return [item for item in self._events if item.seq > seq]

    def p95_latency(self) -> float | None:
        return _percentile(sorted(self.latencies), 0.95)

    def snapshot(self, seconds: int = 120) -> SenderFigures:
        ordered = sorted(self.latencies)
        sent = self.sent.values(seconds)
        requests, new_connections = self.connection_stats()
        recent = sent[-6:-1] or (0,)  # the last five complete seconds
        return SenderFigures(
            at=self._wall_clock(),
            target_rate=self.target_rate,
            paced_rate=self.paced_rate,
            current_rate=sum(recent) / len(recent),
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
            connections=self.connections,
        )


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]
