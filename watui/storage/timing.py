"""What the schedule of campaigns needs from the database: each campaign's zone keys, whether
rows in the open zones are waiting, and which campaigns are due to start.

Apart from claims.py because none of it runs per batch: the zone keys once per run, the others
only when a claim in the open zones came back empty, or once a minute (cron, the UI's timer).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select

from watui.rules import WINDOW_WAIT_REASON, CampaignStatus
from watui.storage.database import Database
from watui.storage.rows import CampaignRecord
from watui.storage.schema import CLAIMABLE, PENDING, campaigns, recipients


async def zone_keys(db: Database, campaign_id: int) -> list[str]:
    """The distinct zone keys of a campaign's recipients still to send (a handful: the zones
    of its countries, or of one country's area codes)."""
    query = select(recipients.c.tz).distinct().where(
        recipients.c.campaign_id == campaign_id,
        recipients.c.status.in_([status.value for status in PENDING]),
        recipients.c.tz.is_not(None),
    )
    async with db.engine.connect() as conn:
        return sorted((await conn.execute(query)).scalars())


async def next_claimable_at(db: Database, step_id: int, zones: Sequence[str]) -> float | None:
    """When the earliest queued or retrying row of the step in ``zones`` is due (now or later);
    None when those zones have none left."""
    query = select(func.min(recipients.c.next_attempt_at)).where(
        recipients.c.step_id == step_id,
        recipients.c.status.in_([status.value for status in CLAIMABLE]),
        recipients.c.tz.in_(list(zones)),
    )
    async with db.engine.connect() as conn:
        due = (await conn.execute(query)).scalar()
    return None if due is None else float(due)


async def due_campaigns(db: Database, now: float) -> list[CampaignRecord]:
    """Campaigns due to send now, oldest first: drafts whose start time has come, and those a
    ``watui run --due`` left paused outside every recipient's window."""
    query = select(campaigns).where(or_(
        and_(campaigns.c.status == CampaignStatus.DRAFT.value, campaigns.c.start_at <= now),
        and_(campaigns.c.status == CampaignStatus.PAUSED.value,
             campaigns.c.pause_reason == WINDOW_WAIT_REASON),
    )).order_by(campaigns.c.id)
    async with db.engine.connect() as conn:
        return [CampaignRecord.from_row(row) for row in await conn.execute(query)]
