"""Campaign records: look up, list, report, delete, and change a campaign's status or rate.

Plain async functions over a Database, shared by the command line, the engine and the UI.
Creating a campaign (contacts, templates) is creation.py's. Counters in ``campaigns`` change
only in the same transaction as the rows they count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.errors import CampaignError, CampaignNotFound
from watui.rules import CampaignStatus, DeliveryState, RecipientStatus
from watui.storage.database import Database
from watui.storage.rows import (
    CampaignRecord,
    CampaignStatusReport,
    Reject,
    RetryPolicy,
    StepStatus,
)
from watui.storage.schema import attempts, campaigns, deliveries, recipients, rejects, steps

if TYPE_CHECKING:
    from watui.settings import RetrySettings

Clock = Callable[[], float]


async def campaign_row(db: Database, campaign_id: int) -> CampaignRecord:
    """The campaign with this id (one that exists: the engine's own, or just created)."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).one()
    return CampaignRecord.from_row(row)


async def campaign_by_name(db: Database, name: str) -> CampaignRecord | None:
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).first()
    return None if row is None else CampaignRecord.from_row(row)


async def set_campaign_status(
    db: Database,
    campaign_id: int,
    status: CampaignStatus,
    *,
    reason: str | None = None,
    only_from: Sequence[CampaignStatus] | None = None,
) -> bool:
    """Move a campaign to ``status``; with ``only_from``, only from those statuses. True if moved."""
    now = time.time()
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status is CampaignStatus.RUNNING:
        values["pause_reason"] = None
        values["started_at"] = func.coalesce(campaigns.c.started_at, now)
        values["finished_at"] = None
    elif status is CampaignStatus.PAUSED:
        values["pause_reason"] = reason
    elif status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        values["finished_at"] = now
    statement = update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
    if only_from is not None:
        statement = statement.where(campaigns.c.status.in_([s.value for s in only_from]))
    async with db.begin() as conn:
        result = await conn.execute(statement)
    return result.rowcount > 0


async def set_campaign_rate(db: Database, campaign_id: int, rate: float) -> None:
    """Remember the campaign's rate, so a restart sends at the rate last chosen."""
    async with db.begin() as conn:
        await conn.execute(
            update(campaigns).where(campaigns.c.id == campaign_id).values(rate=rate, updated_at=time.time())
        )


async def campaign_id_named(conn: AsyncConnection, name: str) -> int | None:
    row = (await conn.execute(select(campaigns.c.id).where(campaigns.c.name == name))).first()
    return None if row is None else int(row.id)


def retry_policy(campaign: CampaignRecord, fallback: RetrySettings) -> RetryPolicy:
    """The policy in force for a campaign row: its own values, else the settings' ``retry``."""
    own_max = campaign.max_retries
    own_delays = campaign.retry_delays
    return RetryPolicy(
        max_retries=fallback.max_retries if own_max is None else int(own_max),
        delays=tuple(fallback.delays if own_delays is None else json.loads(own_delays)),
        max_retries_from="settings" if own_max is None else "campaign",
        delays_from="settings" if own_delays is None else "campaign",
    )


async def get_campaign(db: Database, name: str) -> CampaignRecord:
    """The campaign of that name; CampaignNotFound when there is none."""
    campaign = await campaign_by_name(db, name)
    if campaign is None:
        raise CampaignNotFound(
            f"no campaign named {name!r} (see 'watui campaign list' for the names)"
        )
    return campaign


async def list_campaigns(db: Database) -> list[CampaignRecord]:
    """Every campaign, newest first (its counters: no per-row counting)."""
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.id.desc())
            )
        ).all()
    return [CampaignRecord.from_row(row) for row in rows]


async def delete_campaign(db: Database, name: str) -> None:
    """Remove the campaign and everything of it: steps, recipients, rejects, attempts."""
    async with db.begin() as conn:
        campaign_id = await campaign_id_named(conn, name)
        if campaign_id is None:
            raise CampaignNotFound(f"no campaign named {name!r} (see 'watui campaign list')")
        for table in (attempts, rejects, deliveries, recipients, steps):
            await conn.execute(delete(table).where(table.c.campaign_id == campaign_id))
        await conn.execute(delete(campaigns).where(campaigns.c.id == campaign_id))


async def count_by_status(db: Database, campaign_id: int) -> dict[str, int]:
    """Recipients per status (one GROUP BY); statuses with no rows are 0."""
    async with db.engine.connect() as conn:
        return await _count_by_status(conn, campaign_id)


async def _count_by_status(conn: AsyncConnection, campaign_id: int) -> dict[str, int]:
    counts = {status.value: 0 for status in RecipientStatus}
    result = await conn.execute(
        select(recipients.c.status, func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.status)
    )
    for status, count in result:
        counts[status] = int(count)
    return counts


async def campaign_status(
    db: Database, name: str, *, retry_defaults: RetrySettings | None = None
) -> CampaignStatusReport:
    """The status the CLI and the UI show (see ``watui status --json``).

    With ``retry_defaults`` (the settings' ``retry``) it also says which retry policy is in
    force: max_retries, delays, and whether each is the campaign's own.
    """
    campaign = await get_campaign(db, name)
    async with db.engine.connect() as conn:
        by_status = await _count_by_status(conn, campaign.id)
        step_rows = (
            await conn.execute(
                select(steps)
                .where(steps.c.campaign_id == campaign.id)
                .order_by(steps.c.position)
            )
        ).all()
        per_step = await _step_counts(conn, campaign.id)
    return CampaignStatusReport(
        campaign=campaign,
        retrying=by_status[RecipientStatus.RETRY.value],
        sending=by_status[RecipientStatus.SENDING.value],
        steps=tuple(
            StepStatus(
                position=row.position + 1,
                template=row.template_name,
                language=row.language,
                contacts_file=row.contacts_file,
                total=row.total,
                by_status=per_step.get(row.id, {}),
            )
            for row in step_rows
        ),
        retry=None if retry_defaults is None else retry_policy(campaign, retry_defaults),
    )


async def _step_counts(conn: AsyncConnection, campaign_id: int) -> dict[int, dict[str, int]]:
    result = await conn.execute(
        select(recipients.c.step_id, recipients.c.status, func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.step_id, recipients.c.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for step_id, status, count in result:
        counts.setdefault(step_id, {})[status] = int(count)
    return counts


async def list_rejects(db: Database, name: str) -> list[Reject]:
    """The campaign's rejected import rows in step and line order."""
    campaign = await get_campaign(db, name)
    async with db.engine.connect() as conn:
        positions = dict(
            (
                await conn.execute(
                    select(steps.c.id, steps.c.position).where(
                        steps.c.campaign_id == campaign.id
                    )
                )
            ).all()
        )
        result = await conn.execute(
            select(rejects.c.step_id, rejects.c.line_no, rejects.c.phone_raw, rejects.c.reason)
            .where(rejects.c.campaign_id == campaign.id)
            .order_by(rejects.c.line_no, rejects.c.id)
        )
        rows = [
            Reject(
                step=positions.get(row.step_id, -1) + 1,
                line=row.line_no,
                phone=row.phone_raw,
                reason=row.reason,
            )
            for row in result
        ]
    rows.sort(key=lambda reject: (reject.step, reject.line))
    return rows


async def counters_match_rows(db: Database, campaign_id: int) -> dict[str, tuple[int, int]]:
    """Counters that disagree with the rows, as {name: (counter, rows)}; empty when all agree."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).first()
        if row is None:
            raise CampaignNotFound(f"no campaign with id {campaign_id}")
        by_status = await _count_by_status(conn, campaign_id)
        delivery_counts = await _delivery_counts(conn, campaign_id)
        reject_count = (
            await conn.execute(
                select(func.count())
                .select_from(rejects)
                .where(rejects.c.campaign_id == campaign_id)
            )
        ).scalar_one()
    actual = {
        "total": sum(by_status.values()),
        "sent": by_status[RecipientStatus.SENT.value],
        "failed": by_status[RecipientStatus.FAILED.value],
        "skipped": by_status[RecipientStatus.SKIPPED.value],
        "in_doubt": by_status[RecipientStatus.IN_DOUBT.value],
        "unconfirmed": by_status[RecipientStatus.UNCONFIRMED.value],
        "invalid": int(reject_count),
        **delivery_counts,
    }
    return {
        name: (row._mapping[name], count)
        for name, count in actual.items()
        if row._mapping[name] != count
    }


async def _delivery_counts(conn: AsyncConnection, campaign_id: int) -> dict[str, int]:
    """What the delivery counters count: recipients whose message was delivered (or read),
    read, and failed after acceptance, by their furthest reported state."""
    result = await conn.execute(
        select(deliveries.c.state, func.count())
        .where(deliveries.c.campaign_id == campaign_id)
        .group_by(deliveries.c.state)
    )
    by_state = {str(state): int(count) for state, count in result}
    return {
        "delivered": by_state.get(DeliveryState.DELIVERED.value, 0)
        + by_state.get(DeliveryState.READ.value, 0),
        "read": by_state.get(DeliveryState.READ.value, 0),
        "failed_after": by_state.get(DeliveryState.FAILED.value, 0),
    }


#: Statuses a person may pause, resume or cancel from.
_PAUSABLE = {CampaignStatus.DRAFT.value, CampaignStatus.RUNNING.value}
_FINISHED = {CampaignStatus.COMPLETED.value, CampaignStatus.CANCELLED.value}


async def pause_campaign(
    db: Database, campaign_id: int, reason: str, *, clock: Clock = time.time
) -> None:
    """Mark the campaign paused with a reason people can read (the engine stops claiming)."""
    async with db.begin() as conn:
        current = await _locked_status(db, conn, campaign_id)
        if current == CampaignStatus.PAUSED.value:
            raise CampaignError("the campaign is already paused")
        if current not in _PAUSABLE:
            raise CampaignError(f"the campaign is {current}: only a draft or running one can pause")
        await conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(status=CampaignStatus.PAUSED.value, pause_reason=reason, updated_at=clock())
        )


async def resume_campaign(db: Database, campaign_id: int, *, clock: Clock = time.time) -> None:
    """Undo a pause: back to running if it had started, else to draft."""
    async with db.begin() as conn:
        current = await _locked_status(db, conn, campaign_id)
        if current != CampaignStatus.PAUSED.value:
            raise CampaignError(f"the campaign is {current}, not paused: nothing to resume")
        started = (
            await conn.execute(select(campaigns.c.started_at).where(campaigns.c.id == campaign_id))
        ).scalar_one()
        status = CampaignStatus.RUNNING if started is not None else CampaignStatus.DRAFT
        await conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(status=status.value, pause_reason=None, updated_at=clock())
        )


async def cancel_campaign(db: Database, campaign_id: int, *, clock: Clock = time.time) -> int:
    """Stop for good: every queued or retry row becomes skipped (and counted). Returns how many."""
    async with db.begin() as conn:
        current = await _locked_status(db, conn, campaign_id)
        if current in _FINISHED:
            raise CampaignError(f"the campaign is already {current}")
        now = clock()
        result = await conn.execute(
            update(recipients)
            .where(
                recipients.c.campaign_id == campaign_id,
                recipients.c.status.in_(
                    [RecipientStatus.QUEUED.value, RecipientStatus.RETRY.value]
                ),
            )
            .values(status=RecipientStatus.SKIPPED.value, updated_at=now)
        )
        skipped = int(result.rowcount or 0)
        await conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(
                status=CampaignStatus.CANCELLED.value,
                skipped=campaigns.c.skipped + skipped,
                finished_at=now,
                updated_at=now,
            )
        )
    return skipped


async def _locked_status(db: Database, conn: AsyncConnection, campaign_id: int) -> str:
    """The campaign's status, row-locked where the database can, so two writers cannot
    interleave."""
    query = db.kind.locked(select(campaigns.c.status).where(campaigns.c.id == campaign_id))
    status = (await conn.execute(query)).scalar_one_or_none()
    if status is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    return str(status)
