"""Meta's ``phone_number_quality_update`` webhooks, kept where the engine reads number health.

Stored as they arrive (no later applying step): the table holds one row per number, and the
engine reads it each control interval, so a number flagged RED pauses within about a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from watui.storage.database import Database
from watui.storage.number_health import WEBHOOK, HeardNumber, record_heard
from watui.whatsapp.webhooks import QualityUpdate


async def store_quality_updates(
    db: Database, updates: Sequence[QualityUpdate], *, received_at: float
) -> int:
    """Record each update (in one transaction); how many there were."""
    await record_heard(db, [_heard(update) for update in updates], source=WEBHOOK, now=received_at)
    return len(updates)


def _heard(update: QualityUpdate) -> HeardNumber:
    return HeardNumber(
        display_number=update.display_phone_number,
        quality=update.quality,
        throughput_level=update.throughput_level,
        messaging_limit=update.messaging_limit,
        event=update.event,
    )
