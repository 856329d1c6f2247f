"""The engine's queries while sending: which step is next, claim its due rows, write outcomes.

Apart from leases and the retry-queue review because these run for every batch at 1,000
msg/s; how each database does them is its Dialect's (storage.dialects), asked once per call
here, never per row. Every change to recipient rows updates the campaign's counters in the
same transaction, so the counters always equal the rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select

from watui.rules import RecipientStatus
from watui.storage.database import Database
from watui.storage.opt_outs import record_opt_outs
from watui.storage.schema import PENDING, recipients, steps
from watui.storage.sending.outcomes import ClaimedRecipient, FlushResult, Outcome
from watui.storage.suppressions import skip_suppressed_claims

_CLAIMED_FIRST = (RecipientStatus.RETRY.value, RecipientStatus.QUEUED.value)


@dataclass(frozen=True, slots=True)
class StepInfo:
    id: int
    position: int
    template_name: str
    language: str
    mapping: dict[str, Any]


async def current_step(db: Database, campaign_id: int, sender: str | None = None) -> StepInfo | None:
    """The first step, in order, that still has queued, retrying or sending rows (pinned to
    ``sender`` when given: each number of a campaign of several goes through the steps at its
    own pace, and each of its recipients still gets them in order)."""
    pending = (
        select(recipients.c.id)
        .where(recipients.c.step_id == steps.c.id, recipients.c.status.in_([s.value for s in PENDING]),
               *_pinned_to(sender))
        .limit(1)
        .exists()
    )
    query = (
        select(steps)
        .where(steps.c.campaign_id == campaign_id, pending)
        .order_by(steps.c.position)
        .limit(1)
    )
    async with db.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StepInfo(row.id, row.position, row.template_name, row.language, json.loads(row.mapping))


def _pinned_to(sender: str | None) -> list[ColumnElement[bool]]:
    return [] if sender is None else [recipients.c.sender == sender]


async def has_pending(db: Database, campaign_id: int) -> bool:
    query = select(recipients.c.id).where(
        recipients.c.campaign_id == campaign_id,
        recipients.c.status.in_([s.value for s in PENDING]),
    ).limit(1)
    async with db.engine.connect() as conn:
        return (await conn.execute(query)).first() is not None


async def next_due_at(db: Database, step_id: int, sender: str | None = None) -> float | None:
    """When the earliest waiting retry of this step (pinned to ``sender`` when given) becomes due."""
    query = select(func.min(recipients.c.next_attempt_at)).where(
        recipients.c.step_id == step_id, recipients.c.status == RecipientStatus.RETRY.value,
        *_pinned_to(sender),
    )
    async with db.engine.connect() as conn:
        due = (await conn.execute(query)).scalar()
    return None if due is None else float(due)


async def claim(
    db: Database, step_id: int, owner: str, limit: int, *, lease_seconds: float, now: float,
    zones: Sequence[str] | None = None, sender: str | None = None,
) -> list[ClaimedRecipient]:
    """Lease up to ``limit`` due rows of one step (due retries first) and mark them sending;
    with ``zones``, only rows whose zone key (recipients.tz) is one of them (their send window
    is open); with ``sender``, only rows pinned to that number (a campaign of several numbers).

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several processes claim side by side.
    Rows whose number was suppressed while they were being claimed are skipped, not returned.
    """
    kind = db.kind
    async with kind.claim_transaction(db) as conn:
        found = await kind.claim_rows(
            conn, step_id=step_id, statuses=_CLAIMED_FIRST, limit=limit, owner=owner,
            expires=now + lease_seconds, now=now, zones=zones, sender=sender,
        )
    claimed = [ClaimedRecipient(*row) for row in found]
    return await skip_suppressed_claims(db, step_id, owner, claimed, now=now)


async def record_outcomes(
    db: Database, campaign_id: int, owner: str, outcomes: Sequence[Outcome]
) -> FlushResult:
    """Write a batch in ONE transaction: recipient rows, attempt log, campaign counters.

    Only rows still leased by ``owner`` are changed (another process may have taken over an
    expired lease); every attempt is logged regardless, since the request really went out.
    A batch with a 131050 answer also records the opt-out, in the same transaction.
    """
    opt_outs = [o.opt_out for o in outcomes if o.opt_out is not None]
    if not opt_outs:
        return await db.kind.record_outcomes(db, campaign_id, owner, outcomes, time.time())
    now = time.time()
    async with db.begin() as conn:
        result = await db.kind.write_outcomes(conn, campaign_id, owner, outcomes, now)
        await record_opt_outs(conn, opt_outs, now=now)
    return result
