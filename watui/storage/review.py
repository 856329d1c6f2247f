"""The retry queue as a person reviews it: list, export, requeue or skip rows by status and code.

Apart from the engine's queries because a person drives these (from the UI or the command
line), at any time, over rows the engine has finished with; none of them runs while a row is
leased to a sender.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from watui.rules import REVIEWABLE_STATUSES
from watui.storage.counters import COUNTED, bump_counters
from watui.storage.database import Database
from watui.storage.schema import CampaignStatus, RecipientStatus, campaigns, recipients, steps


async def requeue(
    db: Database,
    campaign_id: int,
    *,
    statuses: Sequence[RecipientStatus],
    code: int | None = None,
    ids: Sequence[int] | None = None,
) -> int:
    """Put failed / in_doubt / skipped rows back in the queue for a fresh set of attempts.

    A person decides this (for in_doubt rows it risks a duplicate), so it is never automatic.
    A completed campaign reopens as paused, ready to run again.
    """
    now = time.time()
    wanted = [s.value for s in statuses if s.value in COUNTED and s is not RecipientStatus.SENT]
    moved_by_status: dict[str, int] = {}
    due_now = 0
    async with db.begin() as conn:
        if RecipientStatus.RETRY in statuses:  # waiting for a retry: make it due now
            condition = [recipients.c.campaign_id == campaign_id,
                         recipients.c.status == RecipientStatus.RETRY.value]
            if code is not None:
                condition.append(recipients.c.last_error_code == code)
            if ids is not None:
                condition.append(recipients.c.id.in_(list(ids)))
            result = await conn.execute(update(recipients).where(*condition).values(next_attempt_at=0.0))
            due_now = result.rowcount
        for status in wanted:
            condition = [recipients.c.campaign_id == campaign_id, recipients.c.status == status]
            if code is not None:
                condition.append(recipients.c.last_error_code == code)
            if ids is not None:
                condition.append(recipients.c.id.in_(list(ids)))
            result = await conn.execute(
                update(recipients)
                .where(*condition)
                .values(status=RecipientStatus.QUEUED.value, attempts=0, next_attempt_at=0.0,
                        possibly_sent=0, updated_at=now)
            )
            moved_by_status[COUNTED[status]] = -result.rowcount
        moved = -sum(moved_by_status.values())
        if moved:
            await bump_counters(conn, campaign_id, moved_by_status, now)
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id,
                       campaigns.c.status == CampaignStatus.COMPLETED.value)
                .values(status=CampaignStatus.PAUSED.value, finished_at=None,
                        pause_reason=f"{moved} recipients requeued; run it to send them")
            )
    return moved + due_now


#: What the retry queue lists: rows waiting for a retry, failed for good, in doubt, unconfirmed.
REVIEWABLE = REVIEWABLE_STATUSES


@dataclass(frozen=True, slots=True)
class ReviewRow:
    id: int
    phone: str
    status: str
    attempts: int
    error_code: int | None
    error_title: str | None
    next_attempt_at: float | None
    step_position: int


def _review_conditions(
    campaign_id: int, status: RecipientStatus | None, code: int | None
) -> list[Any]:
    statuses = [status.value] if status else [s.value for s in REVIEWABLE]
    conditions: list[Any] = [recipients.c.campaign_id == campaign_id, recipients.c.status.in_(statuses)]
    if code is not None:
        conditions.append(recipients.c.last_error_code == code)
    return conditions


async def review_page(
    db: Database,
    campaign_id: int,
    *,
    status: RecipientStatus | None = None,
    code: int | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[ReviewRow], int]:
    """One page of the retry queue (by id, so pages are stable) and the total that match."""
    conditions = _review_conditions(campaign_id, status, code)
    query = (
        select(recipients.c.id, recipients.c.phone, recipients.c.status, recipients.c.attempts,
               recipients.c.last_error_code, recipients.c.last_error_title,
               recipients.c.next_attempt_at, steps.c.position)
        .join(steps, steps.c.id == recipients.c.step_id)
        .where(*conditions)
        .order_by(recipients.c.id)
        .offset(offset)
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        rows = [ReviewRow(*row) for row in await conn.execute(query)]
        total = (
            await conn.execute(select(func.count()).select_from(recipients).where(*conditions))
        ).scalar_one()
    return rows, int(total)


async def iter_review_rows(
    db: Database, campaign_id: int, *, status: RecipientStatus | None = None, code: int | None = None,
    batch: int = 5_000,
) -> AsyncIterator[ReviewRow]:
    """Every matching row, a batch at a time (for exports of any size)."""
    last_id = 0
    while True:
        conditions = [*_review_conditions(campaign_id, status, code), recipients.c.id > last_id]
        query = (
            select(recipients.c.id, recipients.c.phone, recipients.c.status, recipients.c.attempts,
                   recipients.c.last_error_code, recipients.c.last_error_title,
                   recipients.c.next_attempt_at, steps.c.position)
            .join(steps, steps.c.id == recipients.c.step_id)
            .where(*conditions).order_by(recipients.c.id).limit(batch)
        )
        async with db.engine.connect() as conn:
            rows = [ReviewRow(*row) for row in await conn.execute(query)]
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id


async def skip(
    db: Database,
    campaign_id: int,
    *,
    statuses: Sequence[RecipientStatus] = REVIEWABLE,
    code: int | None = None,
    ids: Sequence[int] | None = None,
) -> int:
    """A person decided these rows are never to be sent: they become skipped (counted)."""
    now = time.time()
    deltas: dict[str, int] = {"skipped": 0}
    async with db.begin() as conn:
        for status in statuses:
            condition = [recipients.c.campaign_id == campaign_id, recipients.c.status == status.value]
            if code is not None:
                condition.append(recipients.c.last_error_code == code)
            if ids is not None:
                condition.append(recipients.c.id.in_(list(ids)))
            result = await conn.execute(
                update(recipients).where(*condition)
                .values(status=RecipientStatus.SKIPPED.value, updated_at=now)
            )
            column = COUNTED.get(status.value)
            if column and result.rowcount:
                deltas[column] = deltas.get(column, 0) - result.rowcount
            deltas["skipped"] += result.rowcount
        if deltas["skipped"]:
            await bump_counters(conn, campaign_id, deltas, now)
    return deltas["skipped"]


async def count_status(db: Database, campaign_id: int, status: RecipientStatus) -> int:
    """Rows of one status (an index range count: cheap even at millions of rows)."""
    query = select(func.count()).select_from(recipients).where(
        recipients.c.campaign_id == campaign_id, recipients.c.status == status.value
    )
    async with db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())
