"""The sender's control loop: once a second, everything a run needs besides sending.

- a heartbeat, which also tells how many processes share this campaign's rate;
- following a pause or cancel made from outside (another process, the command line, the
  webhook applier), and feeding failures reported after acceptance to the failure-rate rule;
- every RECOVERY_EVERY ticks, turning rows a dead peer left in `sending` into in_doubt;
- sizing the window and the connection limit for the latest answer times, and warning once
  when a fixed connection pool caps the rate;
- a garbage collection while the dispatcher has nothing to send.

It keeps sending going while the database is away: a failed tick becomes a warning event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from watui.engine.collector import CollectorBetweenSends
from watui.engine.connections import ConnectionLimit
from watui.engine.metrics import EngineMetrics
from watui.engine.pacer import Pacer
from watui.engine.window import Window, window_size
from watui.rules import MAX_AUTO_CONNECTIONS, CampaignStatus
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import deliveries, leases
from watui.storage.database import Database

CONTROL_INTERVAL = 1.0  # seconds between ticks
RECOVERY_EVERY = 10  # ticks between looks for rows a dead peer left in `sending`


class ControlLoop:
    """One sender's control task. ``pause`` and ``cancel`` are the sender's own commands, called
    when the campaign was paused or cancelled from outside."""

    def __init__(
        self,
        db: Database,
        campaign_id: int,
        owner: str,
        settings: Settings,
        *,
        pacer: Pacer,
        window: Window,
        metrics: EngineMetrics,
        collector: CollectorBetweenSends,
        pause: Callable[[str], None],
        cancel: Callable[[], None],
        late_outcomes: Callable[[int, int], None] = lambda _failed, _delivered: None,
        shares_rate: bool = True,
        connections: ConnectionLimit | None = None,
        connections_changed: Callable[[int], None] = lambda _limit: None,
    ) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.owner = owner
        self.settings = settings
        self.pacer = pacer
        self.window = window
        self.metrics = metrics
        self._collector = collector
        self._pause = pause
        self._cancel = cancel
        self._late_outcomes = late_outcomes
        #: False for one number of several: that number is paced by one process at a time
        #: (engine.numbers leases it), so there is no rate to share and no heartbeat here.
        self.shares_rate = shares_rate
        self.connections = connections or ConnectionLimit(settings.http, pacer.effective_rate)
        self._connections_changed = connections_changed
        #: The attempt log's end when last looked: late failures are logged there.
        self.attempts_seen = 0
        self._delivered_seen: int | None = None  # the campaign's delivered counter, last tick
        self._live = 1  # processes sending this campaign, this one included
        self._pool_warned = False

    async def join_peers(self) -> None:
        """Other processes already sending this campaign: take our share of the rate, then wait
        one control interval so that they have slowed to theirs before we add ours."""
        if not self.shares_rate:
            return
        self._live = await leases.heartbeat(
            self.db, self.owner, self.campaign_id, stale_after=CONTROL_INTERVAL * 5
        )
        if self._live > 1:
            self.pacer.set_share(1 / self._live)
            self.metrics.event("shared", f"sharing the rate with {self._live - 1} other process(es)")
            await asyncio.sleep(CONTROL_INTERVAL * 1.2)

    async def recover_in_doubt(self, *, exclude_owner: str | None = None) -> None:
        """Rows a stopped process left in `sending` would hold their step forever: they become
        in_doubt (never resent automatically)."""
        moved = await leases.recover_in_doubt(self.db, self.campaign_id, exclude_owner=exclude_owner)
        if moved:
            self.metrics.event("warning", f"{moved} recipients left sending by a stopped process "
                                          "are in doubt")

    def resize_window(self) -> None:
        """Size the window for the current rate and the latest answer times."""
        self.window.resize(
            window_size(self.settings.send, self.pacer.effective_rate, self.metrics.p95_latency())
        )

    def resize_connections(self) -> None:
        """Size the connection limit for the current rate and the latest answer times."""
        before = self.connections.limit
        limit = self.connections.resize(self.pacer.effective_rate, self.metrics.p95_latency())
        self.metrics.connections = limit
        if limit != before:
            self._connections_changed(limit)

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick until ``stopping`` is set. Never cancelled: it writes (heartbeat, recovery), and
        a task cancelled inside a SQLite write transaction leaves the write lock held."""
        stale_after = CONTROL_INTERVAL * 5
        tick = 0
        while not stopping.is_set():
            # Not at tick 0: join_peers has just beaten the heart, and the first claim
            # should not wait behind a second heartbeat for the write turn.
            try:
                if tick:
                    if tick % RECOVERY_EVERY == 0:
                        await self.recover_in_doubt(exclude_owner=self.owner)
                    await self._beat_and_follow(stale_after)
            except Exception as error:  # the database may be restarting: keep sending, say so
                self.metrics.event("warning", f"control: {error!s:.120}")
            tick += 1
            self._collector.collect_if_idle()
            self.metrics.paced_rate = self.pacer.effective_rate
            self._warn_if_pool_too_small()
            self.metrics.window = self.window.capacity
            self.resize_window()
            self.resize_connections()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), CONTROL_INTERVAL)

    async def _beat_and_follow(self, stale_after: float) -> None:
        """Heartbeat (and the rate share it tells), then follow a pause or cancel from outside."""
        live = self._live
        if self.shares_rate:
            live = await leases.heartbeat(
                self.db, self.owner, self.campaign_id, stale_after=stale_after
            )
        if live != self._live:
            self._live = live
            self.pacer.set_share(1 / live)
            self.metrics.event("shared", f"{live} process(es) share this campaign's rate")
        late, self.attempts_seen = await deliveries.late_failures_after(
            self.db, self.campaign_id, self.attempts_seen
        )
        state = await campaign_store.campaign_row(self.db, self.campaign_id)
        seen = state.delivered if self._delivered_seen is None else self._delivered_seen
        delivered, self._delivered_seen = state.delivered - seen, state.delivered
        if late:  # reported by webhook since the last tick, with the deliveries reported alongside
            self._late_outcomes(late, max(delivered, 0))
        self._follow_outside_status(state.status, state.pause_reason)

    def _follow_outside_status(self, status: str, pause_reason: str | None) -> None:
        if status == CampaignStatus.PAUSED.value:
            self._pause(pause_reason or "paused from another process")
        elif status == CampaignStatus.CANCELLED.value:
            self._cancel()

    def _warn_if_pool_too_small(self) -> None:
        """Requests in flight cannot exceed the connection pool (HTTP/1.1: one per connection):
        a fixed pool, or the automatic one at its ceiling."""
        p95 = self.metrics.p95_latency()
        pool = self.connections.limit
        below_ceiling = self.connections.fixed is None and pool < MAX_AUTO_CONNECTIONS
        if self._pool_warned or below_ceiling or p95 is None or p95 <= 0:
            return
        ceiling = pool / p95
        if ceiling < self.pacer.effective_rate * 0.98:
            self._pool_warned = True
            self.metrics.event("warning", self._pool_warning(pool, ceiling, p95))

    def _pool_warning(self, pool: int, ceiling: float, p95: float) -> str:
        caps = f"caps sending at about {ceiling:.0f} msg/s with {p95 * 1000:.0f} ms answers"
        if self.connections.fixed is None:
            return f"the automatic connection limit's ceiling ({MAX_AUTO_CONNECTIONS}) {caps}"
        return (
            f"http.max_connections={pool} {caps}; raise it to at least "
            f"{int(self.pacer.effective_rate * p95 * 1.3) + 1}, or set it to auto"
        )
