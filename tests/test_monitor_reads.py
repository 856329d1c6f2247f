"""What the live monitor costs the database per tick: one read of the campaign's row and retry
count (not one each for its status line and its figures), on a real database, while the real
engine sends to the mock on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

from tests.factories import make_campaign, running_mock
from watui.demo_data import write_demo_contacts
from watui.errors import CampaignNotFound
from watui.rules import RecipientStatus
from watui.service.live import SAME_TICK, LiveBackend
from watui.service.models import CampaignSpec, StepSpec
from watui.service.open import open_live_backend
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import review
from watui.storage import templates as template_store
from watui.storage.database import Database
from watui.storage.monitoring import campaign_and_retrying
from watui.storage.schema import recipients
from watui.whatsapp.client import WhatsAppClient

TOKEN = "monitor-reads-token"


async def test_campaign_and_retrying_is_the_row_and_the_retry_count(database: Database) -> None:
    campaign_id = await make_campaign(database, "spring", recipients_per_step=12)
    await make_campaign(database, "other", recipients_per_step=5, first_number=15560000000)
    async with database.engine.begin() as conn:
        await conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.id % 3 == 0)
            .values(status=RecipientStatus.RETRY.value, attempts=1)
        )
    record, retrying = await campaign_and_retrying(database, "spring")
    assert record == await campaign_store.get_campaign(database, "spring")
    assert retrying == await review.count_status(database, campaign_id, RecipientStatus.RETRY) == 4
    assert (await campaign_and_retrying(database, "other"))[1] == 0
    with pytest.raises(CampaignNotFound, match="no campaign named 'autumn'"):
        await campaign_and_retrying(database, "autumn")


@pytest.fixture
async def sending_backend(sqlite_url: str, tmp_path: Path) -> AsyncIterator[LiveBackend]:
    """A LiveBackend sending a campaign slowly enough to still be sending during the test."""
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002)) as mock:
        settings = Settings(
            database_url=sqlite_url,
            whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                      "api_base_url": mock.base_url},
            send={"rate": 20, "flush_interval_ms": 50},
        )
        live = await open_live_backend(settings, lambda: WhatsAppClient(settings.whatsapp, settings.http))
        try:
            await template_store.sync_templates(live.db, live.client)
            path = write_demo_contacts(tmp_path / "contacts.csv", 200)
            await live.create_campaign(CampaignSpec(
                "watched", (StepSpec("order_update", "en_US", str(path), ("first_name", "order"), "photo"),),
            ))
            await live.start("watched")
            yield live
        finally:
            await live.shutdown()


@contextmanager
def campaign_reads(db: Database) -> Iterator[list[str]]:
    """The statements that read the campaigns table, as they reach the driver."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "FROM campaigns" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_a_monitor_tick_reads_the_campaign_once(sending_backend: LiveBackend) -> None:
    backend = sending_backend
    await asyncio.sleep(0.3)  # sending, outcomes written
    with campaign_reads(backend.db) as reads:
        status = await backend.campaign_status("watched")
        snapshot = await backend.metrics("watched")
    assert len(reads) == 1, reads
    assert snapshot is not None and backend.is_sending("watched")
    assert (snapshot.sent, snapshot.total, snapshot.retrying) == (status.sent, status.total,
                                                                   status.retrying)

    # Older than a tick, the figures read the campaign again: they never lag behind.
    await asyncio.sleep(SAME_TICK + 0.3)
    with campaign_reads(backend.db) as reads:
        later = await backend.metrics("watched")
    assert len(reads) == 1
    assert later is not None and later.sent > snapshot.sent

    # The status line always reads: a command's effect shows at the next refresh.
    with campaign_reads(backend.db) as reads:
        await backend.campaign_status("watched")
        await backend.campaign_status("watched")
    assert len(reads) == 2
