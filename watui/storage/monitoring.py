"""What the live monitor reads on every tick, in one statement.

The monitor refreshes 4 times a second while the engine writes to the same database. On SQLite
each statement is several hand-overs to the driver's thread, each waiting for the GIL behind the
engine (up to a switch interval, 5 ms), and on PostgreSQL a round trip: the campaign's row and
its retry count as one statement cost half of what two did.
"""

from __future__ import annotations

from sqlalchemy import func, select

from watui.rules import RecipientStatus
from watui.storage.campaigns import get_campaign
from watui.storage.database import Database
from watui.storage.rows import CampaignRecord
from watui.storage.schema import campaigns, recipients

_RETRYING = (
    select(func.count())
    .select_from(recipients)
    .where(recipients.c.campaign_id == campaigns.c.id,
           recipients.c.status == RecipientStatus.RETRY.value)
    .scalar_subquery()  # an index range count (ix_recipients_campaign_status)
    .label("watui_retrying")
)


async def campaign_and_retrying(db: Database, name: str) -> tuple[CampaignRecord, int]:
    """The campaign of that name and how many of its recipients wait for a retry;
    CampaignNotFound when there is none."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns, _RETRYING).where(campaigns.c.name == name))).first()
    if row is None:  # get_campaign says it as everywhere else (or finds one created since)
        return await get_campaign(db, name), 0
    fields = dict(row._mapping)
    retrying = int(fields.pop(_RETRYING.name))
    return CampaignRecord(**fields), retrying
