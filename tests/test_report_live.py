"""The delivery figures through the real LiveBackend: a campaign sent to the mock API over a
SQLite file, then delivery rows written as the webhook applier would (counters with them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from tests.factories import running_mock
from watui.demo_data import write_demo_contacts
from watui.errors import BackendError
from watui.service.live import LiveBackend
from watui.service.models import CampaignSpec, StepSpec
from watui.service.open import open_live_backend
from watui.service.reports import CounterSeries, SlowFigures
from watui.settings import Settings
from watui.storage import templates as template_store
from watui.storage.campaigns import counters_match_rows, get_campaign
from watui.storage.database import Database
from watui.storage.schema import campaigns, deliveries, recipients
from watui.whatsapp.client import WhatsAppClient

TOKEN = "report-test-token"


@pytest.fixture
async def backend(sqlite_url: str) -> AsyncIterator[LiveBackend]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.005), seed=5) as mock:
        settings = Settings(
            database_url=sqlite_url,
            whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                      "api_base_url": mock.base_url},
            send={"rate": 200, "flush_interval_ms": 50},
        )
        live = await open_live_backend(
            settings, lambda: WhatsAppClient(settings.whatsapp, settings.http))
        await template_store.sync_templates(live.db, live.client)
        try:
            yield live
        finally:
            await live.shutdown()


async def send_all(backend: LiveBackend, tmp_path: Path, name: str) -> int:
    """Create and send a 20-row campaign (18 valid numbers) to the end; its id."""
    path = write_demo_contacts(tmp_path / "contacts.csv", 20, bad_every=10)
    await backend.create_campaign(CampaignSpec(
        name, (StepSpec("order_update", "en_US", str(path), ("first_name", "order"), "photo"),),
        rate=200,
    ))
    await backend.start(name)
    for _ in range(200):
        if not backend.is_sending(name):
            break
        await asyncio.sleep(0.05)
    return (await get_campaign(backend.db, name)).id


async def deliver(db: Database, campaign_id: int, *, read: int) -> list[float]:
    """Every sent recipient delivered 1, 2, 3... s after acceptance, the first ``read`` read;
    counters bumped in the same transaction. Returns the delivery delays."""
    async with db.engine.begin() as conn:
        sent = (await conn.execute(
            select(recipients.c.id, recipients.c.sent_at).where(
                recipients.c.campaign_id == campaign_id, recipients.c.status == "sent")
            .order_by(recipients.c.id))).all()
        rows = [{"recipient_id": rid, "campaign_id": campaign_id, "state":
                 "read" if i < read else "delivered", "delivered_at": at + i + 1,
                 "read_at": at + 60 if i < read else None, "pricing_category": "utility",
                 "updated_at": at} for i, (rid, at) in enumerate(sent)]
        await conn.execute(insert(deliveries), rows)
        await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
            delivered=campaigns.c.delivered + len(rows), read=campaigns.c.read + read))
    return [float(i + 1) for i in range(len(sent))]


async def test_metrics_report_and_export_carry_what_webhooks_told(
    backend: LiveBackend, tmp_path: Path
) -> None:
    campaign_id = await send_all(backend, tmp_path, "spring")
    before = await backend.metrics("spring")
    assert before is not None and before.sent == 18 and before.delivered == 0
    assert before.deliver_p50 is None and before.delivered_share == 0.0
    backend.slow_figures.every = 0.5  # refresh sooner than the monitor's 5 s, for the test
    delays = await deliver(backend.db, campaign_id, read=6)
    assert await counters_match_rows(backend.db, campaign_id) == {}
    await asyncio.sleep(1.1)
    await backend.metrics("spring")  # a reading in the second the counter rose
    await asyncio.sleep(1.1)
    after = await backend.metrics("spring")
    assert after is not None and (after.delivered, after.read) == (18, 6)
    assert after.delivered_share == 1.0 and after.read_share == pytest.approx(6 / 18)
    assert after.deliver_p50 == pytest.approx(delays[8], abs=1e-3)  # nearest rank of 18
    assert after.deliver_p95 == pytest.approx(delays[17], abs=1e-3)
    assert sum(after.delivered_per_s) == 18, after.delivered_per_s
    row = (await backend.list_campaigns())[0]
    assert (row.delivered, row.read, row.delivered_share) == (18, 6, 1.0)
    report = await backend.report("spring")
    assert (report.accepted, report.delivered, report.read) == (18, 18, 6)
    assert report.pricing == (("utility", 18),) and report.countries[0].recipients == 18
    assert sum(point.delivered for point in report.timeline) == 18
    assert sum(point.read for point in report.timeline) == 6
    target = tmp_path / "all.jsonl"
    assert await backend.export_recipients("spring", target, "jsonl") == 18
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert sum(1 for row in exported if row["read_at"]) == 6
    with pytest.raises(BackendError, match="unknown format"):
        await backend.export_recipients("spring", target, "xml")


async def test_slow_figures_are_cached_between_refreshes(database: Database) -> None:
    from tests.delivery_seed import Outcomes, seed_outcomes
    from tests.factories import make_campaign

    campaign_id = await make_campaign(database, "cached", recipients_per_step=20)
    figures = SlowFigures(every=5.0)
    first = await figures.get(database, campaign_id, now=100.0)
    await seed_outcomes(database, campaign_id, Outcomes(delivered=10, failed_after=2))
    assert await figures.get(database, campaign_id, now=104.0) is first
    fresh = await figures.get(database, campaign_id, now=105.0)
    assert first.deliver_p50 is None and fresh.deliver_p50 == 6.0
    assert [(error.code, error.count) for error in fresh.late_errors] == [(131049, 2)]


def test_counter_series_differences_per_second() -> None:
    series = CounterSeries(seconds=10)
    for at, value in ((100.2, 0), (100.9, 5), (101.5, 12), (103.1, 20), (104.0, 20)):
        series.record(at, value)
    # Seconds 100..103 complete at 104.5: +5 in 100 (from nothing before: 0), +7, 0, +8.
    assert series.per_second(104.5, 4) == (0.0, 7.0, 0.0, 8.0)
