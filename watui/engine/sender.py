"""CampaignSender: sends one campaign's recipients at the paced rate until done, paused or stopped.

Four cooperating tasks in one event loop, no threads:
- the claimer keeps a short queue of leased rows (a quarter second of sends) within the window;
- the dispatcher takes a row, waits for the pacer's slot and fires the request as a task;
- each request task records its answer: ``decisions.decide`` says what it means, the sender
  turns that into an Outcome for the batcher, its metrics and, for some, a pause;
- the batcher writes outcomes in one transaction per flush and frees their window slots;
plus the control task (``control.ControlLoop``: heartbeat, outside pause/cancel, window sizing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from watui.engine.batcher import OutcomeBatcher
from watui.engine.breaker import BreakerState
from watui.engine.collector import CollectorBetweenSends, freeze_long_lived_objects
from watui.engine.connections import ConnectionLimit, connections_to_open_first
from watui.engine.control import ControlLoop
from watui.engine.decisions import (
    ApiUnwell,
    InDoubt,
    PauseCampaign,
    Problem,
    ProblemDecision,
    Retry,
    Sent,
    decide,
    decide_in_outage,
    decide_jitter,
    pauses_whole_campaign,
)
from watui.engine.lanes import NumberLane
from watui.engine.limit_gate import MessagingLimitGate
from watui.engine.metrics import EngineMetrics
from watui.engine.number_health import NumberHealthWatcher
from watui.engine.outage import Answer, OutageGuard
from watui.engine.pacer import Pacer
from watui.engine.safety import FailureRateRule, interleaved
from watui.engine.schedule import Gate, GateKind, SendableUntil, SendSchedule, deadline_reason
from watui.engine.window import CLAIM_LEAD, Window, window_size
from watui.errors import CampaignError
from watui.rules import (
    WINDOW_WAIT_REASON,
    CampaignStatus,
    Endpoint,
    RecipientStatus,
    Schedule,
    endpoint_for,
    recipient_callback,
)
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import claims, deliveries, leases, review, timing
from watui.storage.claims import StepInfo
from watui.storage.database import DATABASE_UNAVAILABLE, Database
from watui.storage.opt_outs import OptOut
from watui.storage.rows import RetryPolicy
from watui.storage.schema import CLAIMABLE
from watui.storage.sending.outcomes import ClaimedRecipient, Outcome
from watui.storage.templates import template_category
from watui.whatsapp.client import WhatsAppClient, endpoint_url
from watui.whatsapp.numbers import list_phone_numbers
from watui.whatsapp.payload import build_template_message
from watui.whatsapp.results import (
    Accepted,
    ConnectionStats,
    ErrorKind,
    SendResult,
    TransportFailure,
    TransportReason,
)

log = logging.getLogger(__name__)

IDLE_POLL = 0.5  # how often an idle claimer looks for due retries
CLAIM_RETRY_FIRST = 0.1  # seconds before claiming again after a database error; doubles
CLAIM_RETRY_MAX = 5.0
#: What the failure-rate pause names as the most common error when late failures tipped it.
LATE_FAILURE_LABEL = "failures reported after acceptance"


class Client(Protocol):
    async def send(
        self, payload: dict[str, Any], on_written: Callable[[float], None] | None = None,
        url: Any = None, *, phone_number_id: str | None = None,
    ) -> SendResult: ...

    def connection_stats(self) -> ConnectionStats | tuple[int, int]: ...

    async def can_connect(self) -> bool: ...

    async def open_connections(self, count: int) -> int: ...


class RunStatus(StrEnum):
    COMPLETED = "completed"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # a clean stop (Ctrl-C, SIGTERM, the UI closing): resumable


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: RunStatus
    reason: str | None = None
    by_safety_rule: bool = False  # paused by an error or the failure-rate rule, not a person
    number_only: bool = False  # an account-level error of its number: the other numbers go on


class CampaignSender:
    """Sends one campaign. Plain methods (pause, resume, cancel, set_rate, request_stop) are
    what the TUI and the command line call; ``metrics`` is what they read."""

    def __init__(
        self,
        db: Database,
        client: Client,
        settings: Settings,
        campaign_id: int,
        *,
        owner: str | None = None,
        rate: float | None = None,
        metrics: EngineMetrics | None = None,
        lane: NumberLane | None = None,
        connection_share: int = 1,
    ) -> None:
        self.db = db
        self.client = client
        #: One number of several: claim only its pinned rows (None: every row of the campaign).
        self._pinned = lane.phone_number_id if lane is not None and lane.pinned else None
        self._send = client.send if lane is None else partial(
            client.send, phone_number_id=lane.phone_number_id)
        self._number = None if lane is None else lane.phone_number_id  # None: the configured
        self.settings = settings
        self.campaign_id = campaign_id
        self.owner = owner or leases.make_owner()
        self.metrics = metrics or EngineMetrics()
        self.messaging_limit = MessagingLimitGate(db, settings, self.metrics)
        self._rate_override = rate
        self.pacer = Pacer(rate or settings.send.rate)
        self.window = Window(
            window_size(settings.send, self.pacer.effective_rate, self.metrics.p95_latency())
        )
        self._ready: deque[ClaimedRecipient] = deque()
        #: When a send window may close on the rows in _ready; past it they are held back, and
        #: the claimer gives them back to the queue.
        self._sendable = SendableUntil()
        self._held_back: list[ClaimedRecipient] = []
        self._ready_event = asyncio.Event()
        self._low_water = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}  # by recipient id
        self._step: StepInfo | None = None
        self._forced_endpoint: str | None = None  # the campaign's own; None: by template category
        self._step_urls: dict[int, Any] = {}  # where each step's messages are POSTed
        self._stop_reason: RunOutcome | None = None
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._progress = asyncio.Event()  # all outcomes written, or a stop: the idle claimer looks again
        self._failure_rate = FailureRateRule(settings.safety)
        #: Statuses after acceptance are judged among themselves: counted among the sends, a
        #: bunch of them redelivered after a receiver outage paused a campaign failing 5%.
        self._late_failure_rate = FailureRateRule(settings.safety, counted="delivery statuses")
        self._claiming: asyncio.Future[list[ClaimedRecipient]] | None = None
        self._first_claim = True
        #: (lease expiry, window slots) of claims that failed and may have leased rows anyway.
        self._orphan_claims: list[tuple[float, int]] = []
        #: Requests out now, at most one per pooled connection (HTTP/1.1). A count and an
        #: event, not a Semaphore: its acquire is a coroutine and a scan of its waiters, for
        #: every message, and the dispatcher is the only one waiting.
        self._requests_out = 0
        #: A number of several gets its share of a fixed pool (engine.numbers).
        self._connections = ConnectionLimit(settings.http, self.pacer.effective_rate, connection_share)
        self._max_requests = self._connections.limit
        self._connection_free = asyncio.Event()
        self._low_water_mark = 1  # the dispatcher asks for a claim below this many ready rows
        #: Set by run(): the campaign's own retry policy where its row has one, else the settings'.
        self._retry: RetryPolicy
        #: Set by run(): its start time, send window and deadline.
        self.schedule = SendSchedule(Schedule(), ())
        #: What the run waits for now (start time, a window): None while it may send.
        self.waiting: Gate | None = None
        #: Pause (WINDOW_WAIT_REASON) instead of waiting for a window: `watui run --due`.
        self.leave_when_outside_windows = False
        self._batcher = OutcomeBatcher(
            db, campaign_id, self.owner,
            interval=settings.send.flush_interval_ms / 1000,
            max_rows=settings.send.flush_max_rows,
            on_written=self._outcomes_written,
            on_trouble=self._warn,
        )
        self.metrics.connection_stats = self._connection_stats
        #: The circuit breaker: while the API is unwell, nobody is charged for it.
        self._breaker = OutageGuard(
            self.metrics, max_outage_s=settings.send.max_outage_s,
            give_up=partial(self.pause, by_safety_rule=True), more_coming=self._more_answers_coming,
            keep_claims=self._keep_ready_leases, keep_every=settings.send.lease_seconds / 3,
            can_connect=client.can_connect,
        )
        self._collector = CollectorBetweenSends()
        self._control = ControlLoop(
            db, campaign_id, self.owner, settings, pacer=self.pacer, window=self.window,
            metrics=self.metrics, collector=self._collector, pause=self.pause, cancel=self.cancel,
            late_outcomes=self._count_late_outcomes, shares_rate=self._pinned is None,
            connections=self._connections, connections_changed=self._connections_changed,
        )

    def _connections_changed(self, limit: int) -> None:
        self._max_requests = limit
        self._connection_free.set()  # a dispatcher waiting for a connection may go now

    def _warn(self, text: str) -> None:
        self.metrics.event("warning", text)

    # ----- commands (plain methods, called by the TUI and the CLI) -----

    def pause(
        self, reason: str = "paused by a person", *, by_safety_rule: bool = False,
        number_only: bool = False,
    ) -> None:
        """Stop sending new requests; in-flight ones finish and are recorded."""
        self._halt(RunOutcome(RunStatus.PAUSED, reason, by_safety_rule, number_only))

    def cancel(self) -> None:
        self._halt(RunOutcome(RunStatus.CANCELLED, "cancelled by a person"))

    def request_stop(self) -> None:
        """A clean stop: in-flight requests finish, outcomes are flushed, nothing is in_doubt."""
        self._halt(RunOutcome(RunStatus.STOPPED, "stopped"))

    def set_rate(self, rate: float) -> None:
        """Change the allowed rate while sending; takes effect at the next send."""
        old = self.pacer.base_rate
        self.pacer.set_rate(rate)
        self._rate_override = rate
        self.metrics.target_rate = rate
        self._control.resize_window()
        self._control.resize_connections()
        self.metrics.event("rate", f"rate changed from {old:g} to {rate:g} msg/s")

    @property
    def running(self) -> bool:
        return not self._finished.is_set() and not self._stopping.is_set()

    @property
    def waiting_reason(self) -> str | None:
        """Why the run sends nothing now although it may (the 24-hour messaging limit)."""
        return self.messaging_limit.waiting_reason

    # ----- the run -----

    async def run(self) -> RunOutcome:
        """Send until the campaign is done, paused, cancelled or stopped."""
        freeze_long_lived_objects()
        campaign = await campaign_store.campaign_row(self.db, self.campaign_id)
        self._retry = campaign_store.retry_policy(campaign, self.settings.retry)
        self.schedule = SendSchedule.of(campaign, await timing.zone_keys(self.db, self.campaign_id))
        if not await self._wait_for_start():
            self._finished.set()  # stopped before its start: still scheduled, as it was
            return RunOutcome(RunStatus.STOPPED, "stopped before the campaign's start time")
        self._forced_endpoint = campaign.endpoint
        self._control.attempts_seen = await deliveries.last_attempt_id(self.db)
        await self._control.recover_in_doubt()
        watched = [self._pinned] if self._pinned is not None else campaign.sender_ids(
            self.settings.whatsapp.phone_number_id)
        health = self._health_watcher(watched)
        await health.prepare()
        await campaign_store.set_campaign_status(self.db, self.campaign_id, CampaignStatus.RUNNING)
        await self._control.join_peers()
        self.metrics.target_rate = self.pacer.base_rate
        self.metrics.event("started", f"sending at {self.pacer.base_rate:g} msg/s")
        batcher_task = asyncio.create_task(self._batcher.run(), name="watui-batcher")
        tasks = [
            asyncio.create_task(self._claimer(), name="watui-claimer"),
            asyncio.create_task(self._dispatcher(), name="watui-dispatcher"),
        ]
        control_task = asyncio.create_task(self._control.run(self._stopping), name="watui-control")
        health_task = asyncio.create_task(health.run(self._stopping), name="watui-number-health")
        deadline = self._arm_deadline()
        with self._collector:
            try:
                await self._stopping.wait()
            finally:
                if deadline is not None:
                    deadline.cancel()
                await self._shutdown(tasks, control_task, batcher_task, health_task)
        if self._pinned is not None:  # one number of several: the campaign's runner settles
            return self._stop_reason or RunOutcome(RunStatus.STOPPED)
        return await self._settle()

    async def _shutdown(
        self, tasks: list[asyncio.Task[None]], control_task: asyncio.Task[None],
        batcher_task: asyncio.Task[None], health_task: asyncio.Task[None],
    ) -> None:
        self._stopping.set()  # also when run() itself was cancelled
        for task in tasks:
            task.cancel()
        # The control task writes (heartbeat, recovery): cancelled inside a SQLite write
        # transaction, it left the write lock held by a connection nobody would roll back, and
        # the final flush then waited for that lock forever. It stops by itself at _stopping.
        await asyncio.gather(*tasks, control_task, health_task, return_exceptions=True)
        if self._claiming is not None:
            with contextlib.suppress(Exception):
                self._ready.extend(await self._claiming)
            self._claiming = None
        if self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        for answer in self._breaker.settle():
            self._batcher.add(self._outcome(answer))
        self._batcher.close()
        await batcher_task
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            await self._release_orphan_claims()
        unsent = [row.id for row in (*self._ready, *self._held_back)]
        self._ready.clear()
        self._held_back.clear()
        released = await leases.release(self.db, self.owner, unsent)
        self.window.give(released)
        with contextlib.suppress(Exception):
            await leases.leave(self.db, self.owner)
        self._finished.set()

    async def settle(self, outcome: RunOutcome) -> RunOutcome:
        """Record how a run of several numbers ended (engine.numbers), as a run of one does."""
        self._stop_reason = outcome
        return await self._settle()

    async def _settle(self) -> RunOutcome:
        """Record how the run ended in the campaign's status."""
        outcome = self._stop_reason or RunOutcome(RunStatus.STOPPED)
        if outcome.status is RunStatus.COMPLETED:
            await campaign_store.set_campaign_status(
                self.db, self.campaign_id, CampaignStatus.COMPLETED, only_from=[CampaignStatus.RUNNING]
            )
            self.metrics.event("completed", "campaign completed")
        elif outcome.status is RunStatus.PAUSED:
            await campaign_store.set_campaign_status(
                self.db, self.campaign_id, CampaignStatus.PAUSED, reason=outcome.reason,
                only_from=[CampaignStatus.RUNNING, CampaignStatus.PAUSED],
            )
            self.metrics.event("paused", f"paused: {outcome.reason}")
        elif outcome.status is RunStatus.CANCELLED:
            try:
                await campaign_store.cancel_campaign(self.db, self.campaign_id)
            except CampaignError:  # cancelled from outside already: skip what we released since
                await review.skip(self.db, self.campaign_id, statuses=CLAIMABLE)
            self.metrics.event("cancelled", "campaign cancelled")
        else:
            await campaign_store.set_campaign_status(
                self.db, self.campaign_id, CampaignStatus.PAUSED,
                reason="stopped before the end; run it again to continue",
                only_from=[CampaignStatus.RUNNING],
            )
        return outcome

    def _halt(self, outcome: RunOutcome) -> None:
        if self._stop_reason is None:
            self._stop_reason = outcome
        self._stopping.set()
        self._ready_event.set()
        self._progress.set()

    def _health_watcher(self, senders: list[str]) -> NumberHealthWatcher:
        """The watcher of this sender's numbers: its own when it is one number of several
        (pausing it pauses that number alone), else the campaign's, whose one pacer serves them
        all (lowering a number's rate lowers the campaign's, pausing one pauses it)."""
        poll = None
        if isinstance(self.client, WhatsAppClient) and self.settings.whatsapp.waba_id:
            poll = partial(list_phone_numbers, self.client)

        def lower_rate(_number: str, rate: float, reason: str) -> None:
            self._warn(reason)
            self.set_rate(rate)

        return NumberHealthWatcher(
            self.db, senders, poll=poll, poll_every=self.settings.send.health_poll_s,
            rate_of=lambda _number: self.pacer.base_rate, lower_rate=lower_rate,
            pause_number=lambda _number, reason: self.pause(
                reason, by_safety_rule=True, number_only=self._pinned is not None),
            warn=self._warn,
        )

    # ----- claiming -----

    async def _claimer(self) -> None:
        """Claim rows ahead of the dispatcher; while the database is down, locked or full, wait
        and try again (in-flight sends finish and the batcher keeps their outcomes)."""
        delay = CLAIM_RETRY_FIRST
        while not self._stopping.is_set():
            try:
                await self._release_orphan_claims()
                await self._give_back_held()
                await self._claim_once()
                delay = CLAIM_RETRY_FIRST
            except DATABASE_UNAVAILABLE as error:
                self.metrics.event("warning", f"database unavailable, claiming again in {delay:.1f}s: "
                                   f"{error!s:.120}")
                log.warning("claim failed (%.120s); retrying in %.1fs", error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(CLAIM_RETRY_MAX, delay * 2)

    async def _claim_once(self) -> None:
        size = self._claim_size()
        self._low_water_mark = size // 2 + 1
        if len(self._ready) >= size:
            self._low_water.clear()
            await self._low_water.wait()
            return
        step = self._step or await self._advance_step()
        if step is None:
            return
        gate = await self._schedule_allows()
        if gate is None:
            return
        zones = gate.zones
        wanted = size
        if self._first_claim:
            # Small, so that sending starts after a short claim (5,000 rows took 26 ms on
            # SQLite); the next claims fill the window while the first sends go.
            wanted = min(wanted, self.settings.send.flush_max_rows)
            self._first_claim = False
        # Wait for a quarter of the window to be free rather than claiming each flush's worth:
        # fewer, larger claims, each a round trip (PostgreSQL) or a write turn (SQLite).
        granted = await self.window.take(wanted, at_least=min(wanted, self.window.capacity // 4))
        now = time.time()
        # Shielded: a stop arriving mid-claim must not lose rows the database already leased
        # to us (they would sit in `sending` and turn in_doubt); _shutdown collects them.
        self._claiming = asyncio.ensure_future(self.messaging_limit.claim(
            step.id, self.owner, granted, lease_seconds=self.settings.send.lease_seconds, now=now,
            zones=zones, sender=self._pinned,
        ))
        try:
            rows = await asyncio.shield(self._claiming)
        except DATABASE_UNAVAILABLE:
            # The claim may have committed before the connection broke: its rows would sit in
            # `sending` unknown to us. Keep their slots (so a crash still costs one window at
            # most) until they are given back.
            self._claiming = None
            self._orphan_claims.append((now + self.settings.send.lease_seconds, granted))
            raise
        self._claiming = None
        self.window.give(granted - len(rows))
        if rows:
            self.waiting = None
            self._sendable.claimed(gate)
            self._ready.extend(rows)
            self._ready_event.set()
        else:
            await self._wait_for_due(step, zones)

    async def _release_orphan_claims(self) -> None:
        while self._orphan_claims:
            expires, slots = self._orphan_claims[0]
            await leases.release_claim(self.db, self.owner, expires)
            self._orphan_claims.pop(0)
            self.window.give(slots)

    async def _advance_step(self) -> StepInfo | None:
        """Move to the first step with pending rows; finish when there is none."""
        step = await claims.current_step(self.db, self.campaign_id, self._pinned)
        if step is None:
            self._halt(RunOutcome(RunStatus.COMPLETED))
            return None
        if self._step is None or step.id != self._step.id:
            self.metrics.event("step", f"step {step.position + 1}: template {step.template_name}")
        if step.id not in self._step_urls:
            await self._route(step)
        self._step = step
        return step

    async def _route(self, step: StepInfo) -> None:
        """Where this step's messages go: by the template's category in force, unless the
        campaign forces an endpoint (``rules.endpoint_for``)."""
        category = await template_category(self.db, step.template_name, step.language)
        endpoint = endpoint_for(
            self._forced_endpoint, category, self.settings.whatsapp.marketing_messages
        )
        self._step_urls[step.id] = endpoint_url(self.settings.whatsapp, endpoint, self._number)
        if endpoint is Endpoint.MARKETING_MESSAGES:
            self.metrics.event(
                "step", f"step {step.position + 1}: sending through the Marketing Messages API"
            )

    async def _wait_for_due(self, step: StepInfo, zones: tuple[str, ...] | None) -> None:
        """Nothing claimable now: wait for in-flight work or a due retry, or move on a step."""
        if self.window.used == 0 and not self._ready:
            upcoming = await claims.current_step(self.db, self.campaign_id, self._pinned)
            if upcoming is None or upcoming.id != step.id:
                self._step = None
                return
        if zones is not None:
            due = await timing.next_claimable_at(self.db, step.id, zones)
            if due is None and self.window.used == 0 and not self._ready:
                # The open zones are done and nothing is in flight (whose answers may bring
                # retries): the rest wait for their windows.
                self.schedule.set_zone_keys(await timing.zone_keys(self.db, self.campaign_id))
                gate = self.schedule.gate(time.time())
                if gate.kind is GateKind.OPEN and gate.zones != zones:
                    return  # requeued rows in a zone that had been done: claim them
                await self._wait_for_gate(self.schedule.closed(time.time()))
                return
        else:
            due = await claims.next_due_at(self.db, step.id, self._pinned)
        wait = IDLE_POLL if due is None else min(IDLE_POLL, max(0.01, due - time.time()))
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), wait)

    # ----- the schedule: start time, send windows, deadline -----

    async def _schedule_allows(self) -> Gate | None:
        """The open gate to claim under (its zone keys; None: any), or None after waiting (or
        pausing) when the schedule says not now."""
        gate = self.schedule.gate(time.time())
        if gate.kind is GateKind.OPEN:
            return gate
        if gate.kind is GateKind.PAST_DEADLINE:
            self.pause(gate.reason, by_safety_rule=True)
        else:
            await self._wait_for_gate(gate)
        return None

    def _hold_back_ready(self) -> None:
        """A send window may have closed on the rows waiting since their claim: none of them
        is sent; the claimer gives them back and claims again from the zones open now."""
        self._held_back.extend(self._ready)
        self._ready.clear()
        self._sendable.reset()
        self._low_water.set()

    async def _give_back_held(self) -> None:
        if self._held_back:
            released = await leases.release(self.db, self.owner, [row.id for row in self._held_back])
            self._held_back.clear()
            self.window.give(released)

    async def _wait_for_start(self) -> bool:
        """Before its start time, wait (nothing claimed, the campaign's status untouched, so a
        stop leaves it scheduled); False when stopped meanwhile."""
        while not self._stopping.is_set():
            gate = self.schedule.gate(time.time())
            if gate.kind is not GateKind.NOT_STARTED:
                return True
            await self._wait_for_gate(gate)
        return False

    async def _wait_for_gate(self, gate: Gate) -> None:
        """Wait (saying why, once) until the schedule may allow sending; nothing in flight
        is left behind: the batcher and the dispatcher carry on meanwhile."""
        if gate.kind is GateKind.OUTSIDE_WINDOWS and self.leave_when_outside_windows:
            if self.window.used == 0 and not self._ready:
                self.pause(WINDOW_WAIT_REASON)
                return
            gate = Gate(gate.kind, gate.zones, time.time() + IDLE_POLL, gate.reason)
        if self.waiting is None or self.waiting.reason != gate.reason:
            self.metrics.event("waiting", gate.reason)
        self.waiting = gate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), gate.wait_seconds(time.time()))

    def _arm_deadline(self) -> asyncio.TimerHandle | None:
        """Pause at the deadline, whatever the run is doing then (a timer, not a check per
        message)."""
        deadline = self.schedule.deadline
        if deadline is None:
            return None
        return asyncio.get_running_loop().call_later(
            max(0.0, deadline - time.time()),
            partial(self.pause, deadline_reason(deadline), by_safety_rule=True),
        )

    def _outcomes_written(self, count: int) -> None:
        self.window.give(count)
        if self.window.used == 0:
            # The idle claimer looks again once everything it claimed is written (the step may
            # be done), not after each flush: at the end of a run each look was an empty claim
            # that took the write turn from the flushes still to come.
            self._progress.set()

    def _claim_size(self) -> int:
        configured = self.settings.send.claim_batch
        if configured:
            return configured
        return max(1, int(self.pacer.effective_rate * CLAIM_LEAD))

    # ----- dispatching -----

    async def _dispatcher(self) -> None:
        loop = asyncio.get_running_loop()
        released = 0
        await self._open_connections()
        while not self._stopping.is_set():
            if not self._ready:
                self._low_water.set()
                self._ready_event.clear()
                self._collector.idle()
                await self._ready_event.wait()
                continue
            released += 1
            if released % 64 == 0:
                # Unthrottled the pacer never sleeps: let answers in. Here, not between the
                # pacer's release and the request, which must leave at its slot.
                await asyncio.sleep(0)
                continue
            if self._breaker.state is not BreakerState.CLOSED:  # no coroutine per send
                await self._breaker.wait_closed(self._ready[0].id)
            # A connection first, then the pacer's slot: the request then leaves on time
            # instead of queueing inside the pool (and timing out there).
            while self._requests_out >= self._max_requests:
                self._connection_free.clear()
                await self._connection_free.wait()
            number = await self.pacer.wait()
            if self._stopping.is_set() or not self._ready:
                break
            if time.time() >= self._sendable.until:
                self._hold_back_ready()  # the pacer's slot goes unused: once per window edge
                continue
            row = self._ready.popleft()
            if len(self._ready) < self._low_water_mark:
                self._low_water.set()
                if not self._ready:
                    self._sendable.reset()
            step = self._step
            assert step is not None
            self._requests_out += 1
            # The loop's own create_task, and the task drops its reference itself when done:
            # no done-callback to schedule, one loop turn less per message.
            self._inflight[row.id] = loop.create_task(self._send_one(row, step, number))
            self._collector.released(loop)

    async def _open_connections(self) -> None:
        """Open the first second's connections before it starts (while the first claim runs),
        so that its requests leave at their slots instead of after handshakes, and reach the
        API as evenly as the pacer released them."""
        wanted = connections_to_open_first(self.pacer.effective_rate, self._connections.limit)
        opened = await self.client.open_connections(wanted)
        if opened:
            self.metrics.event("connections", f"{opened} connections to the API opened")

    async def _send_one(self, row: ClaimedRecipient, step: StepInfo, number: int) -> None:
        self.metrics.in_flight += 1
        try:
            result = await self._request(row, step, number)
        finally:
            self.metrics.in_flight -= 1
            self._requests_out -= 1
            self._connection_free.set()
            self._inflight.pop(row.id, None)
        self._record(row, result)
        if self.metrics.in_flight == 0 and not self._ready:
            # The last answer for now: the run may be ending, and the claimer waits to see
            # these outcomes written before it looks for more (or ends the run).
            self._batcher.flush_soon()

    async def _request(self, row: ClaimedRecipient, step: StepInfo, number: int) -> SendResult:
        try:
            payload = build_template_message(
                row.phone, step.template_name, step.language, row.params,
                step.mapping.get("header_format"), step.mapping.get("body_names"),
                recipient_callback(row.id),
            )
            # The pacer counts the send from when it leaves, which a busy loop can delay.
            return await self._send(
                payload, partial(self.pacer.written, number), self._step_urls[step.id]
            )
        except Exception as error:  # a bug in building or sending must not lose the row
            log.exception("send failed unexpectedly")
            return TransportFailure(TransportReason.OTHER, f"{type(error).__name__}: {error}", 0.0)

    # ----- recording what an answer means -----

    def _record(self, row: ClaimedRecipient, result: SendResult) -> None:
        """Record an answer once the circuit breaker has judged it: the recipients' own answers
        as ``decide`` says, those that were the API's (an outage) by giving their rows back."""
        self.metrics.latencies.append(result.latency)
        judged = self._breaker.record(row, result)
        for answer in judged.own:
            self._batcher.add(self._outcome(answer))
        for answer in judged.api:
            self._batcher.add(self._give_back(answer, decide_in_outage(answer.row, answer.result)))

    async def _keep_ready_leases(self) -> None:
        """While the API is away the claimed rows wait in memory: renew their leases, or once
        they expired a peer would take them for in doubt. Shielded: a stop cancels the
        dispatcher, and a SQLite write cancelled midway would keep the write lock."""
        ids = [row.id for row in self._ready]
        expires = time.time() + self.settings.send.lease_seconds
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            await asyncio.shield(leases.renew(self.db, self.owner, ids, expires))

    def _more_answers_coming(self) -> bool:
        return self.metrics.in_flight > 0 or (bool(self._ready) and not self._stopping.is_set())

    def _outcome(self, answer: Answer) -> Outcome:
        """The recipient's outcome for its answer (what ``decide`` says it means), counted in
        the metrics and the failure-rate rule."""
        row, result, now = answer.row, answer.result, answer.at
        decision = decide(row, result, self._retry, now)
        if not isinstance(decision, Sent):
            if decision.problem.kind is ErrorKind.THROTTLE:
                self._slow_down(decision.problem.label)
                if self.pacer.throttle_was_jitter():
                    return self._give_back(answer, decide_jitter(row, result))
            return self._record_problem(row, result, decision, now)
        self.metrics.sent.add()
        self.metrics.accepted_total += 1
        self._count_for_failure_rate(False)
        attempt_no = row.attempts + 1
        return Outcome(
            row.id, RecipientStatus.SENT.value, attempt_no, wamid=decision.wamid, sent_at=now,
            attempt=self._attempt_row(row, attempt_no, now, result, "accepted", None),
        )

    def _record_problem(
        self, row: ClaimedRecipient, result: SendResult, decision: ProblemDecision, now: float
    ) -> Outcome:
        problem = decision.problem
        self.metrics.errors_by_code[problem.label] += 1
        attempt_no = row.attempts + 1
        attempt = self._attempt_row(row, attempt_no, now, result, problem.kind.value, problem.title)
        if isinstance(decision, PauseCampaign):
            self.pause(decision.reason, by_safety_rule=True,
                       number_only=not pauses_whole_campaign(problem))
            return _problem_outcome(row, decision.back_to, row.attempts, problem, attempt, now)
        if isinstance(decision, InDoubt):
            self.metrics.in_doubt_total += 1
            return _problem_outcome(
                row, RecipientStatus.IN_DOUBT, attempt_no, problem, attempt, possibly_sent=True
            )
        if isinstance(decision, Retry):
            self.metrics.retried.add()
            self.metrics.retried_total += 1
            self._count_for_failure_rate(False)
            return _problem_outcome(row, RecipientStatus.RETRY, attempt_no, problem, attempt, decision.at)
        self.metrics.failed.add()
        self.metrics.failed_total += 1
        self._count_for_failure_rate(True)
        outcome = _problem_outcome(row, RecipientStatus.FAILED, attempt_no, problem, attempt)
        if decision.opted_out:
            outcome.opt_out = OptOut(row.phone, problem.code, problem.title, now,
                                     after_acceptance=False, phone_number_id=self._number)  # fmt: skip
        return outcome

    def _give_back(self, answer: Answer, decision: ApiUnwell) -> Outcome:
        """An answer that was not the recipient's trouble (an API outage, throttle jitter): in
        the attempt log, but the recipient goes back as it was, due at once, and the
        failure-rate rule does not count it."""
        row = answer.row
        problem = decision.problem
        self.metrics.errors_by_code[problem.label] += 1
        attempt = self._attempt_row(
            row, row.attempts + 1, answer.at, answer.result, decision.logged_as, problem.title
        )
        return _problem_outcome(row, decision.back_to, row.attempts, problem, attempt, answer.at)

    def _slow_down(self, label: str) -> None:
        """A throttle answer: count it and slow the pacer (which speeds up again by itself)."""
        self.metrics.throttled.add()
        if self.pacer.back_off():
            self.metrics.event(
                "throttled", f"{label}: slowing to {self.pacer.effective_rate:.0f} msg/s"
            )

    def _count_for_failure_rate(self, failed: bool) -> None:
        rate = self._failure_rate.record(failed)
        if rate is not None and self._stop_reason is None:
            top = self.metrics.errors_by_code.most_common(1)
            self.pause(self._failure_rate.reason(rate, top[0][0] if top else None), by_safety_rule=True)

    def _count_late_outcomes(self, failed: int, delivered: int) -> None:
        """Failures reported by webhook after the API accepted the message (the control loop
        finds them in the attempt log), among the deliveries reported in the same tick: a storm
        of them pauses the campaign like synchronous ones would."""
        rule = self._late_failure_rate
        for late_failure in interleaved(failed, delivered, self.settings.safety.window):
            rate = rule.record(late_failure)
            if rate is not None and self._stop_reason is None:
                self.pause(rule.reason(rate, LATE_FAILURE_LABEL), by_safety_rule=True)
                return

    def _attempt_row(
        self, row: ClaimedRecipient, attempt_no: int, now: float, result: SendResult,
        outcome: str, title: str | None,
    ) -> dict[str, Any]:
        return {
            "recipient_id": row.id,
            "campaign_id": self.campaign_id,
            "attempt_no": attempt_no,
            "at": now,
            "latency_ms": result.latency * 1000,
            "outcome": outcome,
            "http_status": 200 if isinstance(result, Accepted) else getattr(result, "http_status", None),
            "error_code": getattr(result, "code", None),
            "error_title": title,
            "wamid": result.wamid if isinstance(result, Accepted) else None,
            "worker": self.owner,
        }

    def _connection_stats(self) -> tuple[int, int]:
        stats = self.client.connection_stats()
        if isinstance(stats, tuple):
            return stats
        return stats.requests, stats.new_connections


def _problem_outcome(
    row: ClaimedRecipient, status: RecipientStatus, attempts: int, problem: Problem,
    attempt: dict[str, Any], next_attempt_at: float = 0.0, *, possibly_sent: bool = False,
) -> Outcome:
    return Outcome(
        row.id, status.value, attempts, next_attempt_at, error_code=problem.code,
        error_title=problem.title, possibly_sent=possibly_sent, attempt=attempt,
    )
