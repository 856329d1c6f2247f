"""Storms from the API while a campaign sends: HTTP 500s, connection resets, answers slower than
the client's timeout, and 130429 throttling. Retries stay bounded, the pacer backs off and then
recovers, and no message is accepted twice (by the mock API's ledger)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import make_campaign
from tests.faults import FINAL_STATUSES, audit, running_mock
from tests.test_engine_http import PHONE_ID, TOKEN
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.settings import Settings
from watui.storage.database import Database
from watui.storage.schema import attempts, recipients
from watui.whatsapp.client import WhatsAppClient

RATE = 300.0
MAX_RETRIES = 2
CALM: dict[str, Any] = {"http500_rate": 0.0, "reset_rate": 0.0, "slow_rate": 0.0, "rate_limit": 10_000}
#: (seconds into the run, mock settings from then on): each storm lasts until the next line.
STORMS: list[tuple[float, dict[str, Any]]] = [
    (0.8, {"http500_rate": 1.0}),
    (1.5, {**CALM, "reset_rate": 0.5}),
    (2.2, {**CALM, "slow_rate": 0.5, "slow_seconds": 0.6}),  # the client gives up after 0.3 s
    (2.9, {**CALM, "rate_limit": 60}),  # 130429 for most of each second's sends
    (4.4, CALM),
]


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(latency=(0.002, 0.01), seed=42) as mock:
        yield mock


def storm_settings(database_url: str, mock: MockCloudApi) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": PHONE_ID, "waba_id": "2000002",
                  "api_base_url": mock.base_url},
        send={"rate": RATE, "flush_interval_ms": 50},
        retry={"max_retries": MAX_RETRIES, "delays": [0.05, 0.1]},
        safety={"max_failure_rate": 1.0},  # storms fail many: the safety pause is tested elsewhere
        http={"timeout": 0.3},
    )


async def play_storms(mock: MockCloudApi) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for at, changes in STORMS:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        mock.update_config(changes)


async def sample_rate(sender: CampaignSender, samples: list[float]) -> None:
    while True:
        samples.append(sender.pacer.effective_rate)
        await asyncio.sleep(0.05)


async def test_api_storms_bounded_retries_backoff_and_recovery_no_duplicates(
    database: Database, mock_api: MockCloudApi
) -> None:
    total = 2400
    campaign_id = await make_campaign(database, "stormy", recipients_per_step=total)
    settings = storm_settings(database.url, mock_api)
    samples: list[float] = []
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, campaign_id)
        storms = asyncio.create_task(play_storms(mock_api))
        sampler = asyncio.create_task(sample_rate(sender, samples))
        outcome = await asyncio.wait_for(sender.run(), 90)
        sampler.cancel()
        await storms
    assert outcome.status is RunStatus.COMPLETED
    result = await audit(database, campaign_id, mock_api, total)
    assert result.lost == 0 and result.duplicates == 0 and result.sent_not_in_ledger == 0, result
    assert result.counter_mismatches == {}
    assert set(result.by_status) <= FINAL_STATUSES
    stats = mock_api.stats()
    assert stats["errors"].get("http500", 0) > 0 and stats["resets"] > 0 and stats["slow"] > 0
    assert stats["errors"].get("130429", 0) > 0
    # Every reset or timeout is in doubt and never resent: the ledger above has no duplicate.
    assert result.by_status.get("in_doubt", 0) >= stats["resets"]

    async with database.engine.connect() as conn:
        most_attempts = (await conn.execute(select(func.max(recipients.c.attempts)))).scalar_one()
        logged = (await conn.execute(select(func.count()).select_from(attempts))).scalar_one()
    assert most_attempts <= MAX_RETRIES + 1, "retries must be bounded by retry.max_retries"
    assert logged == stats["requests"], "every request the API saw is in the attempt log"

    lowest = min(samples)
    assert lowest < RATE * 0.9, "130429 storms must slow the pacer"
    after_lowest = samples[samples.index(lowest):]
    assert max(after_lowest) > lowest, "the pacer must recover once the throttling stops"
