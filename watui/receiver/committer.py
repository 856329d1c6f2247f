"""Group commit: the updates of concurrent POSTs go to the database in one transaction.

A POST may be answered 200 only once its updates are stored (Meta does not send them again),
and at ~3,000 statuses/s a transaction per POST would be a commit (an fsync on SQLite, a round
trip and a WAL flush on PostgreSQL) per POST. Instead every POST hands its parsed updates to
one committer and waits; the committer writes everything waiting at most ``interval`` after the
oldest of it arrived (at once when ``commit_at_once`` updates wait), and answers all of them
with the outcome of that one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from watui.storage.webhook_events import IngestCounts
from watui.whatsapp.webhooks import Notification

Store = Callable[[Sequence[Notification]], Awaitable[IngestCounts]]

#: Updates waiting that start a commit without waiting for the interval: two full POSTs (up to
#: 1,000 statuses each) arriving together are written together, a flood is not held back.
COMMIT_AT_ONCE = 2_000

#: Commit durations kept for the percentiles: the last minute or so at 20-50 commits/s.
COMMIT_TIMES_KEPT = 2_000


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """What the receiver has done since it started (a cheap snapshot, for a status line or UI)."""

    posts: int
    updates_stored: int
    duplicates: int
    refused_signatures: int
    too_large: int  # answered 413
    malformed: int  # answered 400
    unavailable: int  # answered 503: the database could not store them (Meta redelivers)
    commits: int
    commit_p50_ms: float | None
    commit_p99_ms: float | None


@dataclass(slots=True)
class ReceiverCounters:
    """The live counters behind ReceiverStats, shared by the HTTP handlers and the committer."""

    posts: int = 0
    updates_stored: int = 0
    duplicates: int = 0
    refused_signatures: int = 0
    too_large: int = 0
    malformed: int = 0
    unavailable: int = 0
    commits: int = 0
    commit_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=COMMIT_TIMES_KEPT))

    def snapshot(self) -> ReceiverStats:
        ordered = sorted(self.commit_seconds)
        return ReceiverStats(
            self.posts, self.updates_stored, self.duplicates, self.refused_signatures,
            self.too_large, self.malformed, self.unavailable, self.commits,
            _percentile_ms(ordered, 0.50), _percentile_ms(ordered, 0.99),
        )  # fmt: skip


def _percentile_ms(ordered: Sequence[float], share: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


class GroupCommitter:
    """One writer for all POSTs: ``await submit(notification)`` is True once it is stored."""

    def __init__(
        self,
        store: Store,
        counters: ReceiverCounters,
        *,
        interval: float,
        commit_at_once: int = COMMIT_AT_ONCE,
        on_error: Callable[[BaseException], None] = lambda _error: None,
        on_stored: Callable[[int], None] = lambda _count: None,
    ) -> None:
        self._store = store
        self._counters = counters
        self._interval = interval
        self._commit_at_once = commit_at_once
        self._on_error = on_error
        self._on_stored = on_stored
        self._waiting: list[tuple[Notification, asyncio.Future[bool]]] = []
        self._waiting_updates = 0
        self._oldest_at = 0.0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-group-commit")

    async def close(self) -> None:
        """Commit what is waiting, then stop: POSTs already handed over get their answer."""
        self._closing = True
        self._arrived.set()
        self._full.set()
        if self._task is not None:
            await self._task

    async def submit(self, notification: Notification) -> bool:
        """Wait for the transaction that stores ``notification``; False if it failed."""
        if not notification.size:
            return True
        if self._closing:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            self._oldest_at = time.monotonic()
        self._waiting.append((notification, future))
        self._waiting_updates += notification.size
        self._arrived.set()
        if self._waiting_updates >= self._commit_at_once:
            self._full.set()
        return await future

    async def _run(self) -> None:
        while True:
            if not self._closing:
                await self._arrived.wait()
            await self._until_due()
            batch, self._waiting, self._waiting_updates = self._waiting, [], 0
            self._arrived.clear()
            self._full.clear()
            if batch:
                await self._commit(batch)
            elif self._closing:
                return

    async def _until_due(self) -> None:
        """Until the oldest waiting update has waited ``interval``, or enough wait, or closing."""
        remaining = self._oldest_at + self._interval - time.monotonic()
        if remaining > 0 and not self._full.is_set() and not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), remaining)

    async def _commit(self, batch: list[tuple[Notification, asyncio.Future[bool]]]) -> None:
        started = time.perf_counter()
        try:
            counts = await self._store([notification for notification, _ in batch])
        except Exception as error:  # the receiver must outlive any database failure
            self._on_error(error)
            stored = False
        else:
            stored = True
            self._counters.commits += 1
            self._counters.commit_seconds.append(time.perf_counter() - started)
            self._counters.updates_stored += counts.stored
            self._counters.duplicates += counts.duplicates
            if counts.stored:
                self._on_stored(counts.stored)
        for _, future in batch:
            if not future.done():
                future.set_result(stored)
