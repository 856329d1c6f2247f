"""Acting on what the webhooks say, for real: the engine sends over HTTP to the mock API, the
mock posts signed status webhooks to the real receiver on 127.0.0.1, the receiver stores them
and its applier applies them, on a real SQLite file and a real PostgreSQL server; `watui run`
and `watui webhook` as real processes; a receiver killed with SIGKILL and a database stopped
while the mock keeps posting."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests import test_fault_outages
from tests.factories import make_campaign, running_mock
from tests.faults import run_to_end
from tests.pgserver import PostgresServer
from tests.test_engine_http import PHONE_ID, TOKEN, env_for, settings_for
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.receiver import DeliveryApplier, WebhookReceiver, applying_receiver
from watui.settings import Settings
from watui.storage.campaigns import campaign_row, counters_match_rows
from watui.storage.counters import bump_counters
from watui.storage.database import Database
from watui.storage.schema import delivery_events, recipients
from watui.whatsapp.client import WhatsAppClient

SECRET = "app-secret-for-apply-tests"
#: Statuses come fast, so a test waits seconds, not minutes.
QUICK_WEBHOOKS = {
    "webhook_delivered_delay": (0.05, 0.3), "webhook_read_share": 0.5,
    "webhook_read_delay": (0.05, 0.3), "webhook_retry_delay": (0.1, 0.5),
}  # fmt: skip

own_postgres = test_fault_outages.own_postgres


def webhook_settings(
    db: Database, mock: MockCloudApi, *, rate: float = 500, max_failure_rate: float = 1.0,
    **webhook: Any,
) -> Settings:  # fmt: skip
    """The engine tests' settings, with the app secret and the receiver on a free port."""
    return Settings(
        database_url=db.url,
        whatsapp={"access_token": TOKEN, "phone_number_id": PHONE_ID, "waba_id": "2000002",
                  "api_base_url": mock.base_url, "app_secret": SECRET},
        send={"rate": rate, "flush_interval_ms": 50},
        retry={"max_retries": 2, "delays": [0.2, 0.4]},
        safety={"max_failure_rate": max_failure_rate},
        webhook={"enabled": True, "port": 0, **webhook},
    )


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=16, app_secret=SECRET,
                            **QUICK_WEBHOOKS) as mock:  # fmt: skip
        yield mock


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def unapplied(db: Database) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(delivery_events).where(delivery_events.c.applied.is_(None))
        return int((await conn.execute(query)).scalar_one())


async def all_in(db: Database, mock: MockCloudApi) -> bool:
    """The mock has nothing left to post and every stored status is applied."""
    return mock.webhooks.stats()["waiting"] == 0 and await unapplied(db) == 0


def expected_figures(mock: MockCloudApi) -> tuple[int, int, int]:
    """delivered (or read), read, failed after acceptance: what the mock decided per message."""
    final = Counter(mock.webhooks.final_status.values())
    return final["delivered"] + final["read"], final["read"], final["failed"]


async def send_all(db: Database, settings: Settings, campaign_id: int) -> RunStatus:
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(db, client, settings, campaign_id)
        return (await asyncio.wait_for(sender.run(), 60)).status


async def set_in_doubt(db: Database, campaign_id: int, ids: list[int], *, since: float) -> None:
    async with db.begin() as conn:
        await conn.execute(update(recipients).where(recipients.c.id.in_(ids))
                           .values(status="in_doubt", attempts=1, updated_at=since))  # fmt: skip
        await bump_counters(conn, campaign_id, {"in_doubt": len(ids)}, time.time())


async def test_the_mocks_webhooks_fill_delivered_and_read_to_its_ledger(
    database: Database, mock_api: MockCloudApi
) -> None:
    mock_api.update_config({"webhook_failures": {131026: 0.1}, "webhook_duplicate_share": 0.2,
                            "webhook_late_share": 0.2})  # fmt: skip
    campaign_id = await make_campaign(database, recipients_per_step=300)
    settings = webhook_settings(database, mock_api)
    receiver = applying_receiver(database, settings)
    mock_api.update_config({"webhook_url": await receiver.start()})
    try:
        assert await send_all(database, settings, campaign_id) is RunStatus.COMPLETED
        await eventually(lambda: all_in(database, mock_api), "every status applied")
    finally:
        await receiver.stop()
    campaign = await campaign_row(database, campaign_id)
    delivered, read, failed_after = expected_figures(mock_api)
    assert (campaign.delivered, campaign.read, campaign.failed_after) == (delivered, read, failed_after)
    assert failed_after > 10 and read > 50, "the test must cover every kind"
    assert (campaign.sent, campaign.failed) == (300 - failed_after, failed_after)
    assert await counters_match_rows(database, campaign_id) == {}
    assert mock_api.webhooks.stats()["duplicates"] > 0


async def test_a_storm_of_late_failures_pauses_the_running_campaign(
    database: Database, mock_api: MockCloudApi
) -> None:
    mock_api.update_config({"webhook_failures": {131049: 0.6}})
    campaign_id = await make_campaign(database, recipients_per_step=3_000)
    settings = webhook_settings(database, mock_api, rate=300, max_failure_rate=0.2)
    receiver = applying_receiver(database, settings)
    mock_api.update_config({"webhook_url": await receiver.start()})
    try:
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(database, client, settings, campaign_id)
            outcome = await asyncio.wait_for(sender.run(), 60)
    finally:
        await receiver.stop()
    assert outcome.status is RunStatus.PAUSED and outcome.by_safety_rule, outcome
    assert outcome.reason is not None and "after acceptance" in outcome.reason
    campaign = await campaign_row(database, campaign_id)
    assert campaign.status == "paused" and campaign.sent < 3_000
    retrying = await count_status(database, campaign_id, "retry")
    assert retrying > 0, "131049 after acceptance is retried (a day later)"
    assert await counters_match_rows(database, campaign_id) == {}


async def count_status(db: Database, campaign_id: int, status: str) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(recipients).where(
            recipients.c.campaign_id == campaign_id, recipients.c.status == status)
        return int((await conn.execute(query)).scalar_one())


async def test_in_doubt_resolved_or_unconfirmed_then_resent(
    database: Database, mock_api: MockCloudApi
) -> None:
    """Recipients left in doubt: those Meta reports on become sent; the rest, after the grace
    period with statuses for the number coming all along, become unconfirmed and are resent
    (automatically with webhook.resend_unconfirmed)."""
    doubtful = await make_campaign(database, "doubtful", recipients_per_step=20)
    busy = await make_campaign(database, "busy", recipients_per_step=400, first_number=15560000000)
    ids = [row async for row in _ids(database, doubtful)]
    settings = webhook_settings(database, mock_api, unconfirmed_after_s=1.0, resend_unconfirmed=True)
    await set_in_doubt(database, doubtful, ids, since=time.time())
    applier = DeliveryApplier(database, settings.webhook, settings.retry,
                              phone_number_id=PHONE_ID, interval=0.2)  # fmt: skip
    receiver = WebhookReceiver(database, settings.webhook, settings.whatsapp.app_secret, applier=applier)
    mock_api.update_config({"webhook_url": await receiver.start()})
    # Ten were really accepted before the crash: the mock reports on them.
    for rid in ids[:10]:
        mock_api.webhooks.message_accepted(PHONE_ID, "+1", f"wamid.CRASH{rid}", "t", f"w:{rid}")
    try:
        # Statuses for the number keep coming while it sends (4 s).
        await send_all(database, webhook_settings(database, mock_api, rate=100), busy)
        await eventually(lambda: _queued(database, doubtful, 10), "unconfirmed ones requeued")
    finally:
        await receiver.stop()
    statuses = {rid: status async for rid, status in _statuses(database, doubtful)}
    assert [statuses[rid] for rid in ids[:10]] == ["sent"] * 10
    assert [statuses[rid] for rid in ids[10:]] == ["queued"] * 10
    assert applier.stats().unconfirmed == 10 and applier.stats().resent == 10
    assert await counters_match_rows(database, doubtful) == {}


async def _ids(db: Database, campaign_id: int) -> AsyncIterator[int]:
    async for rid, _ in _statuses(db, campaign_id):
        yield rid


async def _statuses(db: Database, campaign_id: int) -> AsyncIterator[tuple[int, str]]:
    async with db.engine.connect() as conn:
        query = select(recipients.c.id, recipients.c.status).where(
            recipients.c.campaign_id == campaign_id).order_by(recipients.c.id)
        for rid, status in (await conn.execute(query)).all():
            yield rid, status


async def _queued(db: Database, campaign_id: int, count: int) -> bool:
    return await count_status(db, campaign_id, "queued") == count


async def test_without_a_receiver_in_doubt_stays_in_doubt(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=3)
    ids = [rid async for rid in _ids(database, campaign_id)]
    await set_in_doubt(database, campaign_id, ids, since=time.time() - 10_000)
    settings = Settings(database_url=database.url, webhook={"unconfirmed_after_s": 1.0})
    applier = DeliveryApplier(database, settings.webhook, settings.retry, interval=0.05)
    assert await applier.give_up_unconfirmed() == 0, "no statuses heard: nothing is proven"
    assert await count_status(database, campaign_id, "in_doubt") == 3


# ----- as processes: `watui run`, `watui retry`, `watui webhook` -----


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_env(db: Database, mock: MockCloudApi, port: int) -> dict[str, str]:
    env = env_for(settings_for(db.url, mock))
    env.update({"WATUI_WEBHOOK__ENABLED": "true", "WATUI_WEBHOOK__PORT": str(port),
                "WATUI_WHATSAPP__APP_SECRET": SECRET, "WATUI_SAFETY__MAX_FAILURE_RATE": "1.0"})
    return env


async def test_watui_run_with_webhooks_enabled_counts_delivered_and_read(
    database: Database, mock_api: MockCloudApi
) -> None:
    mock_api.update_config({"webhook_failures": {131026: 0.05}})
    campaign_id = await make_campaign(database, "e2e", recipients_per_step=400)
    port = free_port()
    mock_api.update_config({"webhook_url": f"http://127.0.0.1:{port}/webhook"})
    code, stderr = await run_to_end("e2e", process_env(database, mock_api, port), rate=200)
    assert code == 0, stderr
    assert mock_api.webhooks.stats()["waiting"] == 0, "the run received until the statuses stopped"
    campaign = await campaign_row(database, campaign_id)
    assert (campaign.delivered, campaign.read, campaign.failed_after) == expected_figures(mock_api)
    assert f"delivered {campaign.delivered}, read {campaign.read}" in stderr
    assert await counters_match_rows(database, campaign_id) == {}


async def test_watui_retry_unconfirmed_requeues_them(database: Database) -> None:
    campaign_id = await make_campaign(database, "unsure", recipients_per_step=4)
    ids = [rid async for rid in _ids(database, campaign_id)]
    await set_in_doubt(database, campaign_id, ids, since=0.0)
    from watui.storage.deliveries import mark_unconfirmed

    await mark_unconfirmed(database, in_doubt_before=1.0, now=time.time())
    env = {"WATUI_DATABASE_URL": database.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "retry", "unsure", "--unconfirmed", env=_child_env(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("requeued 4 recipients of unsure")
    assert await count_status(database, campaign_id, "queued") == 4
    assert await counters_match_rows(database, campaign_id) == {}


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("WATUI_")}, **extra}


async def start_webhook_process(db_url: str, port: int) -> asyncio.subprocess.Process:
    env = _child_env({"WATUI_DATABASE_URL": db_url, "WATUI_WHATSAPP__APP_SECRET": SECRET,
                      "WATUI_WEBHOOK__PORT": str(port)})  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "webhook", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.startswith(b"listening on"), line
    return process


@pytest.mark.postgres
async def test_receiver_killed_and_database_stopped_every_status_counted_once(
    own_postgres: PostgresServer,
) -> None:
    """`watui webhook` (storing and applying) is killed with SIGKILL mid-stream and restarted,
    then the database is stopped and started: the mock's redeliveries leave every status
    counted once."""
    quick = {**QUICK_WEBHOOKS, "webhook_delivered_delay": (0.2, 2.0), "webhook_give_up_s": 600.0}
    async with (
        running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=17, app_secret=SECRET,
                     **quick) as mock,
        Database(own_postgres.new_database()) as db,
    ):  # fmt: skip
        campaign_id = await make_campaign(db, "killed", recipients_per_step=1_500)
        port = free_port()
        mock.update_config({"webhook_url": f"http://127.0.0.1:{port}/webhook",
                            "webhook_failures": {131026: 0.05}})  # fmt: skip
        receiver = await start_webhook_process(db.url, port)
        sending = asyncio.create_task(send_all(db, settings_for(db.url, mock, rate=300), campaign_id))
        try:
            await eventually(lambda: _posted(mock, 20), "the first POSTs")
            receiver.send_signal(signal.SIGKILL)
            await receiver.wait()
            await asyncio.sleep(0.5)
            receiver = await start_webhook_process(db.url, port)
            await eventually(lambda: _posted(mock, 40), "POSTs to the restarted receiver")
            assert await sending is RunStatus.COMPLETED
            # Statuses are still coming (delivered up to 2 s after the last send).
            await asyncio.to_thread(own_postgres.stop, "immediate")
            await asyncio.sleep(1.5)  # the receiver answers 503; the mock posts again later
            await asyncio.to_thread(own_postgres.start_again)
            await db.engine.dispose()  # our pooled connections died with the server
            await eventually(lambda: all_in(db, mock), "every status applied", timeout=90)
        finally:
            receiver.send_signal(signal.SIGTERM)
            await asyncio.wait_for(receiver.wait(), 30)
        campaign = await campaign_row(db, campaign_id)
        assert (campaign.delivered, campaign.read, campaign.failed_after) == expected_figures(mock)
        assert mock.webhooks.stats()["retried"] > 0, "the kill and the outage made the mock post again"
        assert await counters_match_rows(db, campaign_id) == {}


async def _posted(mock: MockCloudApi, count: int) -> bool:
    return mock.webhooks.stats()["posted"] >= count
