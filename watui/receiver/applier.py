"""The receiver's applier: stored statuses applied to recipients and counters, soon after each
commit and on a timer, and in-doubt recipients given up on once the receiver has heard enough.

One task in the receiver's event loop. The storage does the work (storage/deliveries.py); this
decides when, keeps going while the database is away (a failed pass is tried again on the next
tick: the statuses wait in their table), and records for which phone numbers the receiver has
been hearing statuses, and since when (receiver/hearing.py, in the database): the proof an
in-doubt recipient was never accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watui.receiver.hearing import HeardNumbers
from watui.receiver.late_failures import judge_late_failure
from watui.rules import DEFAULT_STOP_WORDS, RecipientStatus
from watui.settings import RetrySettings, WebhookSettings
from watui.storage import review
from watui.storage.audience_events import AUDIENCE_BATCH, apply_audience_events
from watui.storage.database import Database
from watui.storage.deliveries import APPLY_BATCH, ApplyResult, apply_delivery_events, mark_unconfirmed
from watui.storage.schema import deliveries, delivery_events

log = logging.getLogger(__name__)

#: Seconds between passes, unless a batch's worth of statuses was stored sooner.
APPLY_INTERVAL = 1.0
#: Passes between two looks for in-doubt recipients to give up on.
SWEEP_EVERY = 5
#: Seconds between two passes that read every unapplied status: those still waiting for their
#: send's outcome to be written (a ``sent`` status comes back before the send's own answer, a
#: quarter of what a pass read at 1,000 msg/s), and stop words and preferences. The passes in
#: between read only the statuses stored since the last one.
FULL_PASS_EVERY = 0.5
#: Lags kept for the percentiles.
LAGS_KEPT = 2_000
#: Statuses applied before the planner is first told how the webhook tables have grown, and
#: the growth between two such refreshes. Autovacuum analyses a table a minute or more after
#: it grew; until then PostgreSQL scanned the whole deliveries table for each pass's look-up.
STATISTICS_AFTER = 1_000
STATISTICS_GROWTH = 2
#: The tables a pass reads by key, which sending fills.
GROWING_TABLES = (deliveries, delivery_events)


@dataclass(frozen=True, slots=True)
class ApplierStats:
    applied: int
    not_ours: int
    unconfirmed: int
    resent: int
    lag_p50_ms: float | None  # from a status's commit to its application
    lag_p99_ms: float | None


class DeliveryApplier:
    """``start()``, ``stored(count)`` after each commit, ``close()`` (one last pass)."""

    def __init__(
        self, db: Database, webhook: WebhookSettings, retry: RetrySettings, *,
        phone_number_id: str | None = None, clock: Callable[[], float] = time.time,
        interval: float = APPLY_INTERVAL, stop_words: Sequence[str] = DEFAULT_STOP_WORDS,
    ) -> None:  # fmt: skip
        self._db = db
        self._webhook = webhook
        self._retry = retry
        self._number = phone_number_id or None
        self._clock = clock
        self._interval = interval
        self._stop_words = tuple(stop_words)
        self._hearing = HeardNumbers(db, gap=webhook.unconfirmed_after_s)
        self._woken = asyncio.Event()
        self._stored_since_pass = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._applied = self._not_ours = self._unconfirmed = self._resent = 0
        self._statistics_due = STATISTICS_AFTER
        self._cursor = 0  # the last status read: passes between full ones read after it
        self._last_full_pass = -math.inf
        self._lags: deque[float] = deque(maxlen=LAGS_KEPT)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-applier")

    def stored(self, count: int) -> None:
        """The receiver committed ``count`` more statuses: a pass once a batch's worth waits.

        Not a pass per commit (20-50 a second): each is a transaction that takes the write turn
        a sending engine's flushes and claims wait for, and a few statements' work in the loop
        that paces the sends; a batch per pass costs the sending far less."""
        self._stored_since_pass += count
        if self._stored_since_pass >= APPLY_BATCH:
            self._woken.set()

    async def close(self) -> None:
        """Stop after the pass under way, then apply what is left once (if the database lets)."""
        self._closing = True
        self._woken.set()
        if self._task is not None:
            await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.apply_pending()

    def stats(self) -> ApplierStats:
        ordered = sorted(self._lags)

        def percentile(share: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else None

        return ApplierStats(self._applied, self._not_ours, self._unconfirmed, self._resent,
                            percentile(0.5), percentile(0.99))  # fmt: skip

    async def _run(self) -> None:
        passes = 0
        while not self._stopping():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._interval)
            self._woken.clear()
            if self._stopping():
                return
            self._stored_since_pass = 0
            passes += 1
            try:
                await self._apply_due()
                await self._refresh_statistics_if_grown()
                if passes % SWEEP_EVERY == 0:
                    await self.give_up_unconfirmed()
                self._failing = False
            except Exception as error:  # the database may be away: the statuses wait for it
                if not self._failing:
                    log.warning("webhook applier: cannot apply statuses now (%s: %.120s); trying "
                                "again", type(error).__name__, error)
                self._failing = True

    async def _apply_due(self) -> None:
        """A full pass every FULL_PASS_EVERY seconds; between them, only the statuses stored
        since the last pass."""
        started = time.monotonic()
        if started - self._last_full_pass >= FULL_PASS_EVERY:
            await self.apply_pending()
            self._last_full_pass = started
        else:
            await self._apply_statuses(after_id=self._cursor)

    def _stopping(self) -> bool:
        return self._closing

    async def _refresh_statistics_if_grown(self) -> None:
        """Each time the statuses applied double, let the planner see the tables they filled."""
        if self._applied + self._not_ours >= self._statistics_due:
            self._statistics_due = (self._applied + self._not_ours) * STATISTICS_GROWTH
            await self._db.refresh_statistics(GROWING_TABLES)

    async def apply_pending(self) -> int:
        """Apply every stored status that can be (the ones still waiting stay for a later
        pass), then stop words and preferences."""
        applied = await self._apply_statuses(after_id=0)
        await self._apply_audience()
        await self._hearing.write()
        return applied

    async def _apply_statuses(self, *, after_id: int) -> int:
        """Apply the statuses stored after ``after_id``, a batch per transaction."""
        applied = 0
        while True:
            now = self._clock()
            result = await apply_delivery_events(
                self._db, judge_late_failure, retry_defaults=self._retry, now=now, after_id=after_id
            )
            self._count(result, now)
            applied += result.applied
            after_id = result.last_id
            if result.read < APPLY_BATCH:
                self._cursor = max(self._cursor, after_id)
                return applied

    async def _apply_audience(self) -> None:
        """Stop words and ``user_preferences`` onto the suppression list (after the statuses, so
        that a 131050's opt-out is already there)."""
        while True:
            result = await apply_audience_events(self._db, self._stop_words, now=self._clock())
            if result.read < AUDIENCE_BATCH:
                return

    def _count(self, result: ApplyResult, now: float) -> None:
        self._applied += result.applied
        self._not_ours += result.not_ours
        if result.oldest_received_at is not None:
            self._lags.append(max(0.0, now - result.oldest_received_at))
        for number, at in result.latest_by_number.items():
            self._hearing.heard(number, at)

    async def give_up_unconfirmed(self) -> int:
        """In-doubt recipients no status came for, while statuses for the number kept coming for
        ``webhook.unconfirmed_after_s``, become unconfirmed (and are requeued when
        ``webhook.resend_unconfirmed``)."""
        now = self._clock()
        before = await self._hearing.unconfirmed_before(
            self._number, now, self._webhook.unconfirmed_after_s
        )
        if before is None:
            return 0
        moved = await mark_unconfirmed(self._db, in_doubt_before=before, now=now)
        self._unconfirmed += sum(moved.values())
        if self._webhook.resend_unconfirmed:
            for campaign_id in moved:
                self._resent += await review.requeue(
                    self._db, campaign_id, statuses=[RecipientStatus.UNCONFIRMED]
                )
        return sum(moved.values())
