"""The applier keeps PostgreSQL's planner told how the webhook tables grew (a real server).

Until autovacuum analyses a freshly filled table (a minute or more), the planner guesses its
size from its pages and scanned the whole deliveries table for each pass's look-up by key:
8 ms a pass at 20,000 rows, a third of the server's time while sending at 1,000 msg/s."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from tests.factories import make_campaign
from tests.pgserver import PostgresServer
from tests.test_delivery_apply import recipient_ids, set_status, status_row, store
from watui.receiver import DeliveryApplier
from watui.receiver import applier as applier_module
from watui.settings import Settings
from watui.storage.database import Database

pytestmark = pytest.mark.postgres

GROWING = {"deliveries", "delivery_events"}


async def analysed_tables(db: Database) -> set[str]:
    """Tables the planner has statistics for: ANALYZE sets reltuples, which starts at -1."""
    query = text("SELECT relname FROM pg_class WHERE relname IN ('deliveries', 'delivery_events') "
                 "AND reltuples >= 0")  # fmt: skip
    async with db.engine.connect() as conn:
        return set((await conn.execute(query)).scalars())


async def test_the_applier_refreshes_the_statistics_once_statuses_pile_up(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applier_module, "STATISTICS_AFTER", 6)
    db = await Database(postgres_server.new_database()).open()
    settings = Settings(database_url=db.url)
    applier = DeliveryApplier(db, settings.webhook, settings.retry, interval=0.05)
    try:
        campaign_id = await make_campaign(db, recipients_per_step=4)
        ids = await recipient_ids(db, campaign_id)
        await set_status(db, campaign_id, ids, "sent")
        applier.start()
        await store(db, [status_row(rid, "delivered") for rid in ids])
        await asyncio.sleep(0.5)
        assert await analysed_tables(db) == set(), "4 statuses applied: not yet worth it"
        await store(db, [status_row(rid, "read") for rid in ids])
        deadline = time.monotonic() + 10
        while await analysed_tables(db) != GROWING and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await analysed_tables(db) == GROWING
    finally:
        await applier.close()
        await db.close()
