"""A campaign sent from several numbers: one CampaignSender per number, side by side.

Why a sender per number under this runner, rather than lanes inside CampaignSender: what a
CampaignSender paces, claims and dispatches is already one number's traffic, so a number's lane
is a CampaignSender that claims only the recipients pinned to it (``NumberLane``), with its own
pacer, window, batcher and failure-rate rule. A campaign of one number runs exactly the code it
ran before, with nothing added per message; and what is about the campaign lives here: which
numbers this process paces (a lease per number, so that several processes share a campaign's
numbers and each number has one pacer), a number paused alone by an account-level error, its
recipients waiting or moved to the others, and the campaign's status at the end. The lanes
share the one HTTP client (one connection pool), the event loop and the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from watui.engine.decisions import PauseAll, Reassign, after_number_pauses, numbers_pause_reason
from watui.engine.lanes import NumberLane
from watui.engine.metrics import EngineMetrics, NumberState
from watui.engine.schedule import Gate
from watui.engine.sender import CampaignSender, Client, RunOutcome, RunStatus
from watui.rules import CampaignStatus
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import claims, leases, number_leases, pinning
from watui.storage.database import DATABASE_UNAVAILABLE, Database
from watui.storage.rows import CampaignRecord

TICK = 1.0  # seconds between looks at the leases, the lanes and the campaign
#: The kind of event for one number's trouble (a pause, its recipients moved): not "paused",
#: which says the whole campaign stopped.
NUMBER_EVENT = "number"


@dataclass
class _Lane:
    sender: CampaignSender
    task: asyncio.Task[RunOutcome]


class NumbersSender:
    """Sends one campaign from several numbers. The same commands and ``metrics`` as a
    CampaignSender, so the TUI and ``watui run`` drive either alike; ``metrics`` holds one
    EngineMetrics per number (``metrics.numbers``) and sums them."""

    def __init__(
        self, db: Database, client: Client, settings: Settings, campaign_id: int,
        numbers: Sequence[str], *, rate: float | None = None, metrics: EngineMetrics | None = None,
    ) -> None:
        self.db, self.client, self.settings = db, client, settings
        self.campaign_id = campaign_id
        self.numbers = tuple(numbers)
        self.owner = leases.make_owner()  # this process, in the leases and the heartbeats
        self.metrics = metrics or EngineMetrics()
        for number in self.numbers:
            self.metrics.for_number(number)
        self._rate = rate
        self._lanes: dict[str, _Lane] = {}
        self._stop_reason: RunOutcome | None = None
        self._error: BaseException | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()  # a lane ended, or a command came
        self._renewed_at = time.monotonic()  # when our numbers' leases were last renewed

    # ----- commands: as CampaignSender's -----

    def pause(self, reason: str = "paused by a person", *, by_safety_rule: bool = False) -> None:
        self._halt(RunOutcome(RunStatus.PAUSED, reason, by_safety_rule))

    def cancel(self) -> None:
        self._halt(RunOutcome(RunStatus.CANCELLED, "cancelled by a person"))

    def request_stop(self) -> None:
        self._halt(RunOutcome(RunStatus.STOPPED, "stopped"))

    def set_rate(self, rate: float) -> None:
        """The rate of each number (as "msg/s per phone number" everywhere)."""
        self._rate = rate
        for lane in self._lanes.values():
            lane.sender.set_rate(rate)

    @property
    def running(self) -> bool:
        return not self._stopping.is_set()

    @property
    def waiting_reason(self) -> str | None:
        """Why a number sends nothing now although it may (the 24-hour messaging limit)."""
        return next((r for lane in self._lanes.values() if (r := lane.sender.waiting_reason)), None)

    @property
    def waiting(self) -> Gate | None:
        """Why sending waits (the start time, the send windows): when every number waits."""
        gates = [lane.sender.waiting for lane in self._lanes.values()]
        return gates[0] if gates and all(gates) else None

    def _halt(self, outcome: RunOutcome) -> None:
        if self._stop_reason is None:
            self._stop_reason = outcome
        self._stopping.set()
        self._changed.set()
        for lane in self._lanes.values():
            _halt_lane(lane.sender, self._stop_reason)

    # ----- the run -----

    async def run(self) -> RunOutcome:
        """Send from every number this process can hold until the campaign is done, paused,
        cancelled or stopped."""
        campaign = await campaign_store.campaign_row(self.db, self.campaign_id)
        if campaign.status != CampaignStatus.RUNNING.value:  # started or resumed: all may send
            await number_leases.resume_numbers(self.db, self.campaign_id)
        await pinning.pin_waiting(self.db, self.campaign_id, self.numbers)
        await campaign_store.set_campaign_status(self.db, self.campaign_id, CampaignStatus.RUNNING)
        self.metrics.target_rate = self._rate or self.settings.send.rate
        self.metrics.event("started", f"sending from {len(self.numbers)} numbers at "
                                      f"{self.metrics.target_rate:g} msg/s each")
        try:
            while not self._stopping.is_set():
                await self._tick_or_warn()
                if self._stopping.is_set():
                    break
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), TICK)
        finally:
            self._stopping.set()
            await self._end_lanes()
        if self._error is not None:
            raise self._error
        outcome = self._stop_reason or RunOutcome(RunStatus.STOPPED)
        settler = CampaignSender(self.db, self.client, self.settings, self.campaign_id,
                                 metrics=self.metrics)
        return await settler.settle(outcome)

    async def _tick_or_warn(self) -> None:
        """A tick; while the database is away the lanes go on (as a CampaignSender's control
        loop lets it), but not past their numbers' leases, which another process may then take."""
        try:
            await self._tick()
        except DATABASE_UNAVAILABLE as error:
            self.metrics.event("warning", f"numbers: {error!s:.120}")
            if time.monotonic() - self._renewed_at > number_leases.LEASE_SECONDS - TICK:
                for lane in self._lanes.values():
                    lane.sender.request_stop()

    async def _tick(self) -> None:
        live = await leases.heartbeat(self.db, self.owner, self.campaign_id, stale_after=TICK * 5)
        share = -(-len(self.numbers) // live)  # numbers per live process, rounded up
        held = await number_leases.hold_numbers(
            self.db, self.campaign_id, self.owner, self.numbers, want=share
        )
        self._renewed_at = time.monotonic()
        await self._collect_ended_lanes()
        if self._stopping.is_set():
            return
        keep = held[:share]
        await self._give_back([number for number in held if number not in keep])
        for number, lane in self._lanes.items():
            if number not in held:  # its lease lapsed and another process took it
                lane.sender.request_stop()
        table = await number_leases.number_leases(self.db, self.campaign_id)
        paused = _paused(self.numbers, table)
        for number in keep:
            if number not in paused and number not in self._lanes and await self._has_work(number):
                self._start_lane(number, share)
        self._show_states(table, paused)
        if not self._lanes:
            await self._when_idle(keep, paused)

    async def _has_work(self, number: str) -> bool:
        return await claims.current_step(self.db, self.campaign_id, number) is not None

    def _start_lane(self, number: str, share: int) -> None:
        """A sender for ``number``, one of the ``share`` numbers this process paces: each gets
        that part of the connection pool, so that a request the pacer released never waits
        in the pool for another number's to finish (it would reach the API late, bunched)."""
        sender = CampaignSender(
            self.db, self.client, self.settings, self.campaign_id, rate=self._rate,
            metrics=self.metrics.for_number(number), lane=NumberLane(number, pinned=True),
            connection_share=share,
        )
        task = asyncio.create_task(sender.run(), name=f"watui-number-{number}")
        task.add_done_callback(lambda _task: self._changed.set())
        self._lanes[number] = _Lane(sender, task)

    async def _give_back(self, numbers: list[str]) -> None:
        """More numbers than our share (another process joined): stop their lanes cleanly and
        let the numbers go once stopped, for the newcomer to take."""
        for number in numbers:
            lane = self._lanes.get(number)
            if lane is not None:
                lane.sender.request_stop()
            else:
                await number_leases.let_go(self.db, self.campaign_id, self.owner, [number])

    async def _collect_ended_lanes(self) -> None:
        for number, lane in list(self._lanes.items()):
            if lane.task.done():
                del self._lanes[number]
                await self._lane_ended(number, lane.task)

    async def _lane_ended(self, number: str, task: asyncio.Task[RunOutcome]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._error = error
            self._halt(RunOutcome(RunStatus.STOPPED, f"number {number}: {error}"))
            return
        outcome = task.result()
        if self._stopping.is_set() or outcome.status in (RunStatus.COMPLETED, RunStatus.STOPPED):
            return  # done for now, or stopped by _give_back: its number is let go next tick
        if outcome.status is RunStatus.PAUSED and outcome.number_only:
            await self._number_paused(number, outcome.reason or "paused")
            return
        self._halt(outcome)  # the template's trouble, the failure-rate rule, a person, a cancel

    async def _number_paused(self, number: str, reason: str) -> None:
        """One number met an account-level error: it stops alone; its recipients wait for it,
        move to the other numbers (send.reassign_on_pause), or, when no number is left, the
        campaign pauses."""
        await number_leases.pause_number(self.db, self.campaign_id, number, reason)
        self.metrics.event(NUMBER_EVENT, f"number {number} paused: {reason}")
        paused = _paused(self.numbers, await number_leases.number_leases(self.db, self.campaign_id))
        decision = after_number_pauses(
            self.numbers, paused, reassign=self.settings.send.reassign_on_pause
        )
        if isinstance(decision, PauseAll):
            self._halt(RunOutcome(RunStatus.PAUSED, decision.reason, by_safety_rule=True))
        elif isinstance(decision, Reassign):
            moved = await pinning.reassign(self.db, self.campaign_id, decision.paused, decision.to)
            if moved:
                spread = ", ".join(f"{count} to {to}" for to, count in moved.items())
                self.metrics.event(NUMBER_EVENT, f"recipients of paused numbers moved: {spread}")

    async def _when_idle(self, keep: list[str], paused: dict[str, str]) -> None:
        """No number of ours has work: the campaign is done, or waits only for paused numbers
        (it pauses), or for numbers another process sends from (we wait, ready to take them
        over)."""
        if not await claims.has_pending(self.db, self.campaign_id):
            self._halt(RunOutcome(RunStatus.COMPLETED))
            return
        await leases.recover_in_doubt(self.db, self.campaign_id)  # rows a dead process left
        others = [n for n in self.numbers if n not in paused and n not in keep]
        for number in others:
            if await self._has_work(number):
                return
        if paused:
            self._halt(RunOutcome(RunStatus.PAUSED, numbers_pause_reason(paused), True))

    def _show_states(self, table: dict[str, number_leases.NumberLease], paused: dict[str, str]) -> None:
        now = time.time()
        for number in self.numbers:
            if number in self._lanes:
                state: tuple[str, str | None] = (NumberState.SENDING, None)
            elif number in paused:
                state = (NumberState.PAUSED, paused[number])
            elif number_leases.held_elsewhere(table.get(number), self.owner, now):
                state = (NumberState.ELSEWHERE, None)
            else:
                state = (NumberState.DONE, None)
            self.metrics.number_states[number] = state

    async def _end_lanes(self) -> None:
        outcome = self._stop_reason or RunOutcome(RunStatus.STOPPED)
        for lane in self._lanes.values():
            _halt_lane(lane.sender, outcome)
        await asyncio.gather(*(lane.task for lane in self._lanes.values()), return_exceptions=True)
        self._lanes.clear()
        with contextlib.suppress(Exception):
            await number_leases.let_go(self.db, self.campaign_id, self.owner)
            await leases.leave(self.db, self.owner)


def _halt_lane(sender: CampaignSender, outcome: RunOutcome) -> None:
    if outcome.status is RunStatus.PAUSED:
        sender.pause(outcome.reason or "paused", by_safety_rule=outcome.by_safety_rule)
    elif outcome.status is RunStatus.CANCELLED:
        sender.cancel()
    else:
        sender.request_stop()


def _paused(numbers: Sequence[str], table: dict[str, number_leases.NumberLease]) -> dict[str, str]:
    """The campaign's numbers paused by an account-level error, with each one's reason."""
    return {
        number: lease.paused_reason
        for number in numbers
        if (lease := table.get(number)) is not None and lease.paused_reason
    }


def campaign_sender(
    db: Database, client: Client, settings: Settings, campaign: CampaignRecord, *,
    rate: float | None = None, metrics: EngineMetrics | None = None,
) -> CampaignSender | NumbersSender:
    """The sender for ``campaign``: of several numbers (``campaigns.senders``), or of one, as
    ever (from its own number when that is not the configured one)."""
    numbers = list(dict.fromkeys(campaign.sender_numbers(settings.whatsapp.phone_number_id)))
    if len(numbers) > 1:
        return NumbersSender(db, client, settings, campaign.id, numbers, rate=rate, metrics=metrics)
    lane = None if numbers[0] == settings.whatsapp.phone_number_id else NumberLane(numbers[0])
    return CampaignSender(db, client, settings, campaign.id, rate=rate, metrics=metrics, lane=lane)
