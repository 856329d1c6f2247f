"""Applying what status webhooks said: deliveries, recipients and counters, one batch at a time.

The receiver stores statuses as they come (webhook_events.py, ``applied`` NULL); this reads
them in arrival order and, in one transaction per batch, moves each recipient's delivery state
forward (rules.DELIVERY_RANK), resolves in-doubt recipients that Meta reports on, acts on
failures after acceptance (retry, fail, opt out, pause: what they mean is the caller's
``JudgeLateFailure``, from the same error table as a synchronous answer), moves the campaign
counters by the same deltas as the rows, and marks the statuses applied. Applying a batch twice
or in another order gives the same rows: states only move forward and every change is decided
from the rows as they are in the transaction.

A status maps to its recipient by ``biz_opaque_callback_data`` (``rules.recipient_callback``),
which every send carries. Not by wamid: recipients have no wamid index, and one would be
rewritten by every flush on the hot path; a send whose answer was lost has no wamid anyway.
A status whose recipient is still ``sending`` waits for its outcome to be written; one whose
recipient is unknown waits ``not_ours_after`` seconds; one whose callback is not ours, or that
is about an earlier send of the recipient, is marked ``applied = false`` and never counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import (
    DELIVERY_RANK,
    CampaignStatus,
    DeliveryState,
    RecipientStatus,
    recipient_from_callback,
)
from watui.settings import RetrySettings
from watui.storage.campaigns import retry_policy
from watui.storage.counters import COUNTED, bump_counters
from watui.storage.database import Database
from watui.storage.dialects import Dialect
from watui.storage.opt_outs import OptOut, record_opt_outs
from watui.storage.rows import CampaignRecord, RetryPolicy
from watui.storage.schema import (
    attempts,
    campaigns,
    deliveries,
    delivery_events,
    recipients,
)

#: Statuses read and applied per transaction, and stored before a pass starts. A pass runs in
#: the loop that paces the sends: 1,000 at a time held it 11-21 ms, and the sends at 1,000 msg/s
#: with the receiver in the process reached 0.94-0.98 of the rate; 250 keep them at 0.98-0.99.
APPLY_BATCH = 250
#: Seconds a status naming an unknown recipient is kept before it is taken as not ours.
NOT_OURS_AFTER = 600.0
#: What the attempt log names the webhook as, in its worker column.
WEBHOOK_WORKER = "webhook"

_SENDING = RecipientStatus.SENDING.value
_SENT = RecipientStatus.SENT.value
_FAILED = RecipientStatus.FAILED.value
_RETRY = RecipientStatus.RETRY.value
#: Recipients a status may confirm: in doubt (no wamid yet) or never confirmed.
_UNSURE = frozenset({RecipientStatus.IN_DOUBT.value, RecipientStatus.UNCONFIRMED.value})
_ENDED = frozenset({CampaignStatus.COMPLETED.value, CampaignStatus.CANCELLED.value})
_STATES = {state.value: state for state in DeliveryState}
#: The delivery counters and the states each counts.
_DELIVERY_COUNTED = {
    "delivered": frozenset({DeliveryState.DELIVERED.value, DeliveryState.READ.value}),
    "read": frozenset({DeliveryState.READ.value}),
    "failed_after": frozenset({DeliveryState.FAILED.value}),
}


@dataclass(frozen=True, slots=True)
class LateFailure:
    """A ``failed`` status for an accepted message: what the judge needs to decide."""

    code: int | None
    title: str
    attempts: int  # requests made for this recipient, the failed one included
    policy: RetryPolicy
    campaign_ended: bool
    now: float


class LateAction(StrEnum):
    FAILED = "failed"
    RETRY = "retry"  # at LateVerdict.retry_at
    PAUSE = "pause"  # the campaign pauses; the recipient waits in the queue for the resume


@dataclass(frozen=True, slots=True)
class LateVerdict:
    action: LateAction
    kind: str  # the error table's kind: the attempt log's outcome
    reason: str  # the code's meaning; a pause's reason
    retry_at: float = 0.0
    opted_out: bool = False  # the person stopped marketing messages: record it


JudgeLateFailure = Callable[[LateFailure], LateVerdict]


@dataclass(slots=True)
class ApplyResult:
    """What one batch did."""

    read: int = 0  # statuses read
    applied: int = 0
    not_ours: int = 0  # marked applied = false
    waiting: int = 0  # left for a later pass (their recipient is still sending)
    last_id: int = 0
    oldest_received_at: float | None = None  # of the statuses applied or set aside
    latest_by_number: dict[str, float] = field(default_factory=dict)  # received_at per number


@dataclass(slots=True)
class _Recipient:
    id: int
    campaign_id: int
    phone: str
    status: str
    attempts: int
    wamid: str | None
    sent_at: float | None
    next_attempt_at: float
    error_code: int | None
    error_title: str | None
    was: str = ""
    touched: bool = False

    def __post_init__(self) -> None:
        self.was = self.status

    def is_about(self, wamid: str) -> bool:
        """Whether a status of message ``wamid`` is about this recipient's latest send."""
        if self.status in (_SENT, _FAILED):
            return self.wamid == wamid
        return self.status in _UNSURE and self.wamid in (None, wamid)


#: The columns of a deliveries row that statuses fill in (besides its keys and updated_at).
_DELIVERY_FIELDS = (
    "wamid", "state", "sent_at", "delivered_at", "read_at", "failed_at", "error_code",
    "error_title", "error_message", "error_details", "pricing_category", "pricing_type",
)  # fmt: skip
_TIMES = {f"{state.value}_at" for state in DeliveryState}
_ERRORS = ("error_code", "error_title", "error_message", "error_details")


@dataclass(slots=True)
class _Delivery:
    """One recipient's deliveries row as the batch changes it; ``state`` None: no row (or it is
    to be deleted)."""

    recipient_id: int
    campaign_id: int
    columns: dict[str, Any]  # _DELIVERY_FIELDS
    stored: bool = False  # a row exists in the table
    was: str | None = None
    changed: bool = False

    @classmethod
    def fresh(cls, recipient_id: int, campaign_id: int, wamid: str) -> _Delivery:
        columns = dict.fromkeys(_DELIVERY_FIELDS)
        columns["wamid"] = wamid
        return cls(recipient_id, campaign_id, columns)

    @property
    def state(self) -> str | None:
        return self.columns["state"]  # type: ignore[no-any-return]

    def rank(self) -> int:
        return DELIVERY_RANK[DeliveryState(self.state)] if self.state else 0

    def row(self, now: float) -> dict[str, Any]:
        """The table's row, keyed by column."""
        return {"recipient_id": self.recipient_id, "campaign_id": self.campaign_id,
                **self.columns, "updated_at": now}  # fmt: skip

    def move(self, state: DeliveryState | None, wamid: str) -> None:
        self.columns["state"] = state.value if state else None
        self.columns["wamid"] = wamid
        self.changed = True

    def note(self, event: Any) -> None:
        """The event's time under its status (the earliest report wins), the first failure's
        error, and the pricing."""
        columns = self.columns
        column = f"{event.status}_at"
        if column in _TIMES and (columns[column] is None or event.timestamp < columns[column]):
            columns[column] = event.timestamp
            self.changed = True
        if event.status == DeliveryState.FAILED.value and columns["error_code"] is None:
            columns.update({name: getattr(event, name) for name in _ERRORS})
            self.changed = True
        if event.pricing_category and event.pricing_category != columns["pricing_category"]:
            columns["pricing_category"] = event.pricing_category
            columns["pricing_type"] = event.pricing_type
            self.changed = True


@dataclass(slots=True)
class _Campaign:
    policy: RetryPolicy
    ended: bool


async def apply_delivery_events(
    db: Database,
    judge: JudgeLateFailure,
    *,
    retry_defaults: RetrySettings,
    now: float,
    after_id: int = 0,
    limit: int = APPLY_BATCH,
    not_ours_after: float = NOT_OURS_AFTER,
) -> ApplyResult:
    """Apply up to ``limit`` unapplied statuses after ``after_id``, in one transaction."""
    async with db.begin() as conn:
        query = db.kind.locked(
            select(delivery_events)
            .where(delivery_events.c.applied.is_(None), delivery_events.c.id > after_id)
            .order_by(delivery_events.c.id)
            .limit(limit)
        )
        events = (await conn.execute(query)).all()
        if not events:
            return ApplyResult(last_id=after_id)
        batch = _Batch(judge, now, not_ours_after)
        await batch.load(db, conn, events, retry_defaults)
        result = batch.apply_all(events)
        await batch.write(conn, db.kind)
    return result


class _Batch:
    """One transaction's work: the rows its statuses touch, changed in memory, then written."""

    def __init__(self, judge: JudgeLateFailure, now: float, not_ours_after: float) -> None:
        self._judge = judge
        self._now = now
        self._not_ours_after = not_ours_after
        self._recipients: dict[int, _Recipient] = {}
        self._deliveries: dict[int, _Delivery] = {}
        self._campaigns: dict[int, _Campaign] = {}
        self._applied: list[int] = []
        self._not_ours: list[int] = []
        self._attempts: list[dict[str, Any]] = []
        self._opt_outs: list[OptOut] = []  # onto the suppression list at once
        self._pauses: dict[int, str] = {}
        self._sending: set[int] = set()  # recipients whose outcome is not written yet

    async def load(
        self, db: Database, conn: AsyncConnection, events: Sequence[Any], defaults: RetrySettings
    ) -> None:
        """The recipients (row-locked where the database can, in id order), their deliveries
        and campaigns."""
        ids = {rid for rid in (recipient_from_callback(e.callback) for e in events) if rid is not None}
        if not ids:
            return
        query = db.kind.locked(
            select(
                recipients.c.id, recipients.c.campaign_id, recipients.c.phone, recipients.c.status,
                recipients.c.attempts, recipients.c.wamid, recipients.c.sent_at,
                recipients.c.next_attempt_at, recipients.c.last_error_code,
                recipients.c.last_error_title,
            )
            # Not the ones still sending: their flush may hold them (locking them too
            # deadlocked against it on PostgreSQL), and their statuses wait for it anyway.
            .where(db.kind.among(recipients.c.id, ids), recipients.c.status != _SENDING)
            .order_by(recipients.c.id)
        )
        for row in await conn.execute(query):
            self._recipients[row.id] = _Recipient(*row)
        unread = ids - self._recipients.keys()
        if unread:
            still_sending = select(recipients.c.id).where(
                db.kind.among(recipients.c.id, unread), recipients.c.status == _SENDING
            )
            self._sending = set((await conn.execute(still_sending)).scalars())
        if not self._recipients:
            return
        found = select(
            deliveries.c.recipient_id, deliveries.c.campaign_id,
            *(deliveries.c[name] for name in _DELIVERY_FIELDS),
        ).where(db.kind.among(deliveries.c.recipient_id, self._recipients.keys()))
        for recipient_id, campaign_id, *values in await conn.execute(found):
            # By position: Row._mapping builds a mapping at each call, a dozen a row.
            columns = dict(zip(_DELIVERY_FIELDS, values, strict=True))
            self._deliveries[recipient_id] = _Delivery(
                recipient_id, campaign_id, columns, stored=True, was=columns["state"]
            )
        if any(event.status == DeliveryState.FAILED.value for event in events):
            await self._load_campaigns(conn, defaults)

    async def _load_campaigns(self, conn: AsyncConnection, defaults: RetrySettings) -> None:
        """The retry policy and whether each campaign ended: only a failure after acceptance
        asks (most passes have none, and are a round trip shorter)."""
        campaign_ids = {recipient.campaign_id for recipient in self._recipients.values()}
        for row in await conn.execute(select(campaigns).where(campaigns.c.id.in_(campaign_ids))):
            record = CampaignRecord.from_row(row)
            self._campaigns[record.id] = _Campaign(
                retry_policy(record, defaults), record.status in _ENDED
            )

    def apply_all(self, events: Sequence[Any]) -> ApplyResult:
        result = ApplyResult(read=len(events), last_id=events[-1].id)
        latest = result.latest_by_number
        for event in events:
            if event.phone_number_id and latest.get(event.phone_number_id, 0.0) < event.received_at:
                latest[event.phone_number_id] = event.received_at
            verdict = self._apply(event)
            if verdict is None:
                result.waiting += 1
                continue
            (self._applied if verdict else self._not_ours).append(event.id)
            oldest = result.oldest_received_at
            if oldest is None or event.received_at < oldest:
                result.oldest_received_at = event.received_at
        result.applied, result.not_ours = len(self._applied), len(self._not_ours)
        return result

    def _apply(self, event: Any) -> bool | None:
        """True: applied; False: not about any recipient's latest send; None: wait."""
        recipient_id = recipient_from_callback(event.callback)
        if recipient_id is None:
            return False
        recipient = self._recipients.get(recipient_id)
        if recipient is None:
            if recipient_id in self._sending:
                return None
            return None if event.received_at > self._now - self._not_ours_after else False
        if not recipient.is_about(event.wamid):
            return False
        state = _STATES.get(event.status)
        if state is None:
            return True  # ours, but not a state the figures follow (e.g. deleted)
        delivery = self._delivery(recipient, event.wamid)
        delivery.note(event)
        if DELIVERY_RANK[state] <= delivery.rank():
            return True
        delivery.move(state, event.wamid)
        if state is DeliveryState.FAILED:
            self._failed_after_acceptance(recipient, delivery, event)
        elif recipient.status != _SENT:
            self._confirmed(recipient, event)
        return True

    def _delivery(self, recipient: _Recipient, wamid: str) -> _Delivery:
        delivery = self._deliveries.get(recipient.id)
        if delivery is None:
            delivery = _Delivery.fresh(recipient.id, recipient.campaign_id, wamid)
            self._deliveries[recipient.id] = delivery
        return delivery

    def _confirmed(self, recipient: _Recipient, event: Any) -> None:
        """Meta reports on the message: the recipient was sent (in doubt, unconfirmed, or a
        failure that a delivered or read now overrides)."""
        recipient.status, recipient.wamid, recipient.touched = _SENT, event.wamid, True
        recipient.error_code = recipient.error_title = None
        if recipient.sent_at is None:
            recipient.sent_at = event.timestamp

    def _failed_after_acceptance(self, recipient: _Recipient, delivery: _Delivery, event: Any) -> None:
        campaign = self._campaigns[recipient.campaign_id]
        title = " — ".join(part for part in (event.error_title, event.error_details) if part)
        verdict = self._judge(LateFailure(
            event.error_code, title, max(recipient.attempts, 1), campaign.policy, campaign.ended,
            self._now,
        ))  # fmt: skip
        recipient.touched = True
        recipient.error_code, recipient.error_title = event.error_code, (title or verdict.reason)[:500]
        self._attempts.append(self._attempt_row(recipient, event, verdict.kind))
        if verdict.opted_out:
            self._opt_outs.append(OptOut(
                recipient.phone, event.error_code, event.error_title, event.timestamp,
                after_acceptance=True, user_id=event.user_id, phone_number_id=event.phone_number_id,
            ))  # fmt: skip
        if verdict.action is LateAction.FAILED:
            recipient.status, recipient.wamid = _FAILED, event.wamid
            return
        # Sent again later: this send's delivery record goes, the next send's starts afresh.
        recipient.status, recipient.wamid = _RETRY, None
        delivery.move(None, event.wamid)
        recipient.next_attempt_at = verdict.retry_at if verdict.action is LateAction.RETRY else 0.0
        if verdict.action is LateAction.PAUSE:
            self._pauses[recipient.campaign_id] = verdict.reason

    def _attempt_row(self, recipient: _Recipient, event: Any, kind: str) -> dict[str, Any]:
        return {
            "recipient_id": recipient.id, "campaign_id": recipient.campaign_id,
            "attempt_no": recipient.attempts, "at": self._now, "latency_ms": None,
            "outcome": kind, "http_status": None, "error_code": event.error_code,
            "error_title": (event.error_title or "")[:500] or None, "wamid": event.wamid,
            "worker": WEBHOOK_WORKER,
        }  # fmt: skip

    async def write(self, conn: AsyncConnection, kind: Dialect) -> None:
        await _write_recipients(conn, [r for r in self._recipients.values() if r.touched], self._now)
        await _write_deliveries(conn, kind, [d for d in self._deliveries.values() if d.changed], self._now)
        if self._attempts:
            await conn.execute(insert(attempts), self._attempts)
        await record_opt_outs(conn, self._opt_outs, now=self._now)
        for applied, ids in ((True, self._applied), (False, self._not_ours)):
            if ids:
                await conn.execute(
                    update(delivery_events)
                    .where(kind.among(delivery_events.c.id, ids)).values(applied=applied)
                )
        for campaign_id, deltas in self._counter_deltas().items():
            await bump_counters(conn, campaign_id, deltas, self._now)
        for campaign_id, reason in self._pauses.items():
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id,
                       campaigns.c.status.in_([CampaignStatus.RUNNING.value, CampaignStatus.DRAFT.value]))
                .values(status=CampaignStatus.PAUSED.value, pause_reason=reason, updated_at=self._now)
            )  # fmt: skip

    def _counter_deltas(self) -> dict[int, dict[str, int]]:
        deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for recipient in self._recipients.values():
            if recipient.status != recipient.was:
                moved = deltas[recipient.campaign_id]
                if recipient.was in COUNTED:
                    moved[COUNTED[recipient.was]] -= 1
                if recipient.status in COUNTED:
                    moved[COUNTED[recipient.status]] += 1
        for delivery in self._deliveries.values():
            for counter, states in _DELIVERY_COUNTED.items():
                change = (delivery.state in states) - (delivery.was in states)
                if change:
                    deltas[delivery.campaign_id][counter] += change
        return {cid: {k: v for k, v in moved.items() if v} for cid, moved in deltas.items()}


_UPDATE_RECIPIENT = (
    update(recipients)
    .where(recipients.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"), wamid=bindparam("b_wamid"), sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next"), last_error_code=bindparam("b_code"),
        last_error_title=bindparam("b_title"), updated_at=bindparam("b_now"),
    )
)  # fmt: skip


async def _write_recipients(conn: AsyncConnection, changed: Sequence[_Recipient], now: float) -> None:
    if changed:
        await conn.execute(_UPDATE_RECIPIENT, [
            {"b_id": r.id, "b_status": r.status, "b_wamid": r.wamid, "b_sent_at": r.sent_at,
             "b_next": r.next_attempt_at, "b_code": r.error_code, "b_title": r.error_title,
             "b_now": now}
            for r in changed
        ])  # fmt: skip


async def _write_deliveries(
    conn: AsyncConnection, kind: Dialect, changed: Sequence[_Delivery], now: float
) -> None:
    gone = [d.recipient_id for d in changed if d.stored and d.state is None]
    if gone:
        await conn.execute(delete(deliveries).where(kind.among(deliveries.c.recipient_id, gone)))
    await kind.write_deliveries(
        conn,
        fresh=[d.row(now) for d in changed if not d.stored and d.state is not None],
        kept=[d.row(now) for d in changed if d.stored and d.state is not None],
    )


async def mark_unconfirmed(db: Database, *, in_doubt_before: float, now: float) -> dict[int, int]:
    """In-doubt recipients that went in doubt before ``in_doubt_before`` (the caller knows the
    receiver has been hearing statuses since) become unconfirmed. {campaign id: moved}."""
    in_doubt = RecipientStatus.IN_DOUBT.value
    moved: dict[int, int] = {}
    async with db.begin() as conn:
        campaign_ids = (await conn.execute(select(campaigns.c.id).where(campaigns.c.in_doubt > 0))).scalars()
        for campaign_id in list(campaign_ids):
            result = await conn.execute(
                update(recipients)
                .where(recipients.c.campaign_id == campaign_id, recipients.c.status == in_doubt,
                       or_(recipients.c.updated_at.is_(None),
                           recipients.c.updated_at <= in_doubt_before))
                .values(status=RecipientStatus.UNCONFIRMED.value, updated_at=now)
            )  # fmt: skip
            if result.rowcount:
                count = int(result.rowcount)
                moved[campaign_id] = count
                await bump_counters(conn, campaign_id, {"in_doubt": -count, "unconfirmed": count}, now)
    return moved


async def last_attempt_id(db: Database) -> int:
    """Where the attempt log ends now: a running sender counts late failures from here."""
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.max(attempts.c.id)))).scalar_one() or 0)


async def late_failures_after(db: Database, campaign_id: int, after_id: int) -> tuple[int, int]:
    """Failures after acceptance applied to the campaign since attempt ``after_id`` (each is
    logged as an attempt by the webhook, retried or not): (how many, the log's end now).

    A range of the attempts' primary key, a second's worth of rows: cheap once a second. Not
    the failed_after counter, which counts recipients whose message stays failed: a 131049 or
    a transient failure after acceptance goes back to retry and would not show there."""
    query = select(
        func.max(attempts.c.id),
        func.count(attempts.c.id).filter(
            attempts.c.campaign_id == campaign_id, attempts.c.worker == WEBHOOK_WORKER
        ),
    ).where(attempts.c.id > after_id)
    async with db.engine.connect() as conn:
        end, late = (await conn.execute(query)).one()
    return int(late or 0), int(end or after_id)
