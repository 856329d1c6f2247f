"""The 24-hour messaging limit against real parts: both databases, the mock on loopback, two
senders with a Database each (as two processes would have) sharing one limit."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, select, update

from tests.factories import make_campaign, running_mock
from watui.cli.run import _format_progress
from watui.engine import limit_gate
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.rules import MESSAGING_LIMIT_WINDOW_S
from watui.service.live import LiveBackend
from watui.service.models import CampaignState
from watui.settings import Settings
from watui.storage import messaging_limit
from watui.storage.campaigns import campaign_row
from watui.storage.database import Database
from watui.storage.schema import messaged_phones, recipients
from watui.storage.sending.outcomes import ClaimedRecipient
from watui.whatsapp.client import WhatsAppClient

TOKEN = "test-token-not-a-secret"
WAIT_REASON = re.compile(r"^messaging limit 250/24 h reached; next free slot at \d\d:\d\d$")


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=1) as mock:
        yield mock


def limited_settings(database_url: str, mock: MockCloudApi) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                  "api_base_url": mock.base_url, "messaging_limit": 250},
        send={"rate": 400, "flush_interval_ms": 50},
    )


async def fill_window(db: Database, count: int, *, leaves_in: float) -> None:
    """``count`` numbers of other campaigns, messaged long enough ago to leave the window in
    ``leaves_in`` seconds."""
    at = time.time() - MESSAGING_LIMIT_WINDOW_S + leaves_in
    async with db.begin() as conn:
        await conn.execute(
            insert(messaged_phones), [{"phone": f"+4470000{i:05d}", "last_at": at} for i in range(count)]
        )


def unique_reached(mock: MockCloudApi) -> int:
    return mock.stats()["unique_recipients_24h"]


async def test_two_campaigns_share_the_limit_wait_for_a_free_slot_and_carry_on(
    database: Database, mock_api: MockCloudApi
) -> None:
    # 40 numbers leave the window 2.5 s in: 210 free now, 250 then; the two campaigns want 350.
    await fill_window(database, 40, leaves_in=2.5)
    frees_at = time.time() + 2.5
    first = await make_campaign(database, "first", recipients_per_step=200)
    second = await make_campaign(database, "second", recipients_per_step=200, first_number=15550000150)
    settings = limited_settings(database.url, mock_api)
    async with Database(database.url) as other_db, WhatsAppClient(settings.whatsapp, settings.http) as client:
        senders = [CampaignSender(database, client, settings, first),
                   CampaignSender(other_db, client, settings, second)]
        runs = [asyncio.create_task(sender.run()) for sender in senders]
        while unique_reached(mock_api) < 210 and time.time() < frees_at:
            await asyncio.sleep(0.02)
        waited = time.time() < frees_at - 0.2
        most_while_full = 0
        while time.time() < frees_at - 0.05:
            most_while_full = max(most_while_full, unique_reached(mock_api))
            await asyncio.sleep(0.02)
        while unique_reached(mock_api) < 250 and time.time() < frees_at + 8:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # and no more come
        (waiting, *_) = [s for s in senders if s.messaging_limit.waiting_reason] or [None]
        seen_elsewhere = await LiveBackend(settings, database, lambda: None).list_campaigns()
        progress = "" if waiting is None else _format_progress(
            waiting, await campaign_row(database, waiting.campaign_id))
        for sender in senders:
            sender.request_stop()
        outcomes = await asyncio.wait_for(asyncio.gather(*runs), 30)
    # A campaign whose every number got in finishes; the other waits for the limit.
    assert RunStatus.STOPPED in {outcome.status for outcome in outcomes} <= {
        RunStatus.STOPPED, RunStatus.COMPLETED}
    assert waited and most_while_full == 210
    assert unique_reached(mock_api) == 250  # the 40 that left made room for 40 more, no more
    assert waiting is not None and WAIT_REASON.match(waiting.messaging_limit.waiting_reason or "")
    # What the campaigns list shows of runs in another process, and `watui run`'s line.
    for row in seen_elsewhere:
        waits = row.status is CampaignState.RUNNING and row.pending > 0
        assert bool(WAIT_REASON.match(row.waiting_reason or "")) == waits
    assert any(row.waiting_reason for row in seen_elsewhere)
    assert WAIT_REASON.match(progress.split(" | waiting: ")[1])
    async with database.engine.connect() as conn:
        statuses = (await conn.execute(select(recipients.c.status))).scalars().all()
    # Every message reached the mock once; a number both campaigns have went twice, counted once.
    assert statuses.count("sent") == len(mock_api.ledger) >= 250
    assert set(statuses) == {"sent", "queued"}

async def test_a_full_limit_still_sends_the_numbers_already_in_the_window(
    database: Database, mock_api: MockCloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limit_gate, "PROBE_EVERY", 0.2)
    campaign = await make_campaign(database, "again", recipients_per_step=12)
    repeats = [f"+{15550000000 + n}" for n in range(6, 12)]
    await fill_window(database, 244, leaves_in=3600)
    async with database.begin() as conn:  # the window is full: 244 others and 6 of ours
        await conn.execute(insert(messaged_phones), [{"phone": p, "last_at": time.time()} for p in repeats])
        # Claimed after the 6 new numbers, so that only a later look finds them.
        await conn.execute(update(recipients).where(recipients.c.phone.in_(repeats)).values(
            next_attempt_at=1.0))
    settings = limited_settings(database.url, mock_api)
    settings.send.claim_batch = 6
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, campaign)
        run = asyncio.create_task(sender.run())
        deadline = time.monotonic() + 10
        while len(mock_api.ledger) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # nothing more may come
        sender.request_stop()
        await asyncio.wait_for(run, 10)
    assert sorted(entry.to for entry in mock_api.ledger) == repeats
    assert sender.messaging_limit.waiting_reason and WAIT_REASON.match(sender.messaging_limit.waiting_reason)


def claimed(*phones: str) -> list[ClaimedRecipient]:
    return [ClaimedRecipient(i, phone, {"body": []}, 0) for i, phone in enumerate(phones)]  # type: ignore[arg-type]


async def test_numbers_already_in_the_window_pass_a_full_limit_and_count_once(database: Database) -> None:
    now = time.time()
    await fill_window(database, 249, leaves_in=3600)
    first = await messaging_limit.admit(database, claimed("+15550000001", "+15550000002"), 250, "me", now)
    assert [row.phone for row in first.admitted] == ["+15550000001"] and first.refused == 1
    again = await messaging_limit.admit(database, claimed("+15550000001", "+15550000001"), 250, "me", now + 1)
    assert len(again.admitted) == 2 and again.refused == 0 and again.usage.used == 250
    assert again.usage.next_free_at == pytest.approx(now + 3600, abs=1)


@pytest.mark.parametrize(("given", "read"), [("2,000", 2000), (" Unlimited ", "unlimited"), (250, 250)])
def test_the_limit_setting_takes_a_tier(given: object, read: object) -> None:
    assert Settings(whatsapp={"messaging_limit": given}).whatsapp.messaging_limit == read


@pytest.mark.parametrize("given", ["300", "abc", "", "1e3", True, 0])
def test_any_other_limit_names_the_tiers(given: object) -> None:
    with pytest.raises(ValueError, match="must be one of 250, 2000, 10000, 100000 or unlimited, or account"):
        Settings(whatsapp={"messaging_limit": given})
