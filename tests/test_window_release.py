"""No send after a recipient's send window closes, even for rows claimed before it closed.

Rows wait between their claim and the pacer's release (here two seconds' worth, claimed at
once); the window closes one second after the run starts. Every row still waiting then goes
back to the queue unsent instead of leaving late. Real HTTP to the mock, a real SQLite file
(the check is the engine's; giving rows back is the same statement as at a clean stop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

import watui.engine.sender as sender_module
from tests.factories import running_mock
from tests.test_engine_http import TOKEN, settings_for
from tests.test_schedule_live import contacts_file, madrid_window_around_now, numbers
from watui.engine.schedule import Gate, GateKind, SendableUntil, SendSchedule
from watui.engine.sender import CampaignSender, RunStatus
from watui.rules import WINDOW_WAIT_REASON, Schedule
from watui.storage.campaigns import campaign_row, counters_match_rows
from watui.storage.creation import NewStep, create_campaign
from watui.storage.database import Database
from watui.storage.rows import CampaignRecord
from watui.storage.schema import recipients
from watui.whatsapp.client import WhatsAppClient

RECIPIENTS = 20
ZONE = "Europe/Madrid"


class ClosesSoon(SendSchedule):
    """Madrid's window, open from the run's start for ``OPEN_FOR`` seconds, then closed."""

    OPEN_FOR = 1.0

    def __init__(self, schedule: Schedule, zone_keys: Sequence[str]) -> None:
        super().__init__(schedule, zone_keys)
        self.closes_at = time.time() + self.OPEN_FOR

    @classmethod
    def of(cls, campaign: CampaignRecord, zone_keys: Sequence[str]) -> SendSchedule:
        return cls(Schedule(), zone_keys)

    def gate(self, now: float) -> Gate:
        if now < self.closes_at:
            return Gate(GateKind.OPEN, (ZONE,), self.closes_at)
        return self.closed(now)

    def closed(self, now: float) -> Gate:
        return Gate(GateKind.OUTSIDE_WINDOWS, until=now + 3600, reason="outside the window")


def test_rows_claimed_under_a_window_are_sendable_until_its_next_change() -> None:
    sendable = SendableUntil()
    sendable.claimed(Gate(GateKind.OPEN))  # no window: no edge
    assert sendable.until == float("inf")
    sendable.claimed(Gate(GateKind.OPEN, (ZONE,), 200.0))
    sendable.claimed(Gate(GateKind.OPEN, (ZONE,), 300.0))
    assert sendable.until == 200.0, "the earliest edge of any waiting row's claim"
    sendable.reset()
    assert sendable.until == float("inf")


@pytest.fixture
async def database(sqlite_url: str) -> AsyncIterator[Database]:
    async with Database(sqlite_url) as db:
        yield db


async def test_rows_waiting_when_the_window_closes_go_back_unsent(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_campaign(
        database, "closing", [NewStep("welcome", "en_US", contacts_file(tmp_path, numbers(RECIPIENTS)))],
        send_window=madrid_window_around_now(),
    )
    monkeypatch.setattr(sender_module, "SendSchedule", ClosesSoon)
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002)) as mock:
        # Every row claimed at once, then released at 10 msg/s: two seconds of waiting rows.
        settings = settings_for(database.url, mock, rate=10, claim_batch=RECIPIENTS,
                                max_in_flight=RECIPIENTS)  # fmt: skip
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(database, client, settings, created.campaign_id)
            sender.leave_when_outside_windows = True
            outcome = await asyncio.wait_for(sender.run(), 30)
        accepted = len(mock.ledger)
    assert (outcome.status, outcome.reason) == (RunStatus.PAUSED, WINDOW_WAIT_REASON)
    assert 0 < accepted < RECIPIENTS, "some sent while open, the rest held back at the close"
    async with database.engine.connect() as conn:
        rows = (await conn.execute(select(recipients.c.status, recipients.c.attempts))).all()
    assert sorted(rows) == sorted([("queued", 0)] * (RECIPIENTS - accepted) + [("sent", 1)] * accepted)
    campaign = await campaign_row(database, created.campaign_id)
    assert (campaign.sent, campaign.in_doubt) == (accepted, 0)
    assert await counters_match_rows(database, created.campaign_id) == {}
