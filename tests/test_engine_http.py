"""The engine end to end: real HTTP to the mock API on loopback, real databases, real processes.

In-process runs check exactly-once delivery and the rate limit; `watui run` subprocesses check the
exit codes, a SIGKILL mid-campaign followed by a restart, and two processes sharing a campaign on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.factories import make_campaign, running_mock
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.settings import Settings
from watui.storage.database import Database
from watui.storage.schema import campaigns, recipients
from watui.whatsapp.client import WhatsAppClient

TOKEN = "test-token-not-a-secret"
PHONE_ID = "1000001"


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=1) as mock:
        yield mock


def settings_for(database_url: str, mock: MockCloudApi, **send: object) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": PHONE_ID, "waba_id": "2000002",
                  "api_base_url": mock.base_url},
        send={"rate": 500, "flush_interval_ms": 50, **send},
        retry={"max_retries": 2, "delays": [0.2, 0.4]},
    )


def env_for(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env.update({
        "WATUI_DATABASE_URL": settings.database_url,
        "WATUI_WHATSAPP__ACCESS_TOKEN": TOKEN,
        "WATUI_WHATSAPP__PHONE_NUMBER_ID": PHONE_ID,
        "WATUI_WHATSAPP__API_BASE_URL": settings.whatsapp.api_base_url,
        "WATUI_RETRY__DELAYS": "[0.2, 0.4]",
        "WATUI_SEND__FLUSH_INTERVAL_MS": "50",
    })
    return env


async def counts(db: Database, campaign_id: int) -> dict[str, int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.status, func.count())
            .where(recipients.c.campaign_id == campaign_id).group_by(recipients.c.status)
        )
        return dict(rows.all())


async def counters(db: Database, campaign_id: int) -> dict[str, int]:
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).one()
    return {k: getattr(row, k) for k in ("sent", "failed", "in_doubt", "skipped") if getattr(row, k)}


def accepted_per_phone(mock: MockCloudApi) -> Counter[str]:
    return Counter(entry.to for entry in mock.ledger)


def most_in_one_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_right(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


async def test_every_recipient_accepted_exactly_once_over_http(
    database: Database, mock_api: MockCloudApi
) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=400)
    settings = settings_for(database.url, mock_api)
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, campaign_id)
        outcome = await asyncio.wait_for(sender.run(), 60)
        snapshot = sender.metrics.snapshot()
        opened_first = [e.text for e in sender.metrics.events_since(0) if e.kind == "connections"]
    assert outcome.status is RunStatus.COMPLETED
    assert opened_first and "connections to the API opened" in opened_first[0]
    per_phone = accepted_per_phone(mock_api)
    assert len(per_phone) == 400 and set(per_phone.values()) == {1}
    assert await counts(database, campaign_id) == {"sent": 400}
    assert await counters(database, campaign_id) == {"sent": 400}
    assert snapshot.connection_reuse is not None and snapshot.connection_reuse >= 0.9


class TimedClient(WhatsAppClient):
    """The real client, noting when each request is handed to the transport."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.started: list[float] = []

    async def send(self, payload, on_written=None, url=None):  # type: ignore[no-untyped-def]
        self.started.append(time.monotonic())
        return await super().send(payload, on_written, url)


class BallastClient(TimedClient):
    """Keeps 30 new objects per request alive, as a busy UI beside the engine would: enough for
    several collections to fall due during a run of 1,000."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.ballast: list[list[list[int]]] = []

    async def send(self, payload, on_written=None, url=None):  # type: ignore[no-untyped-def]
        self.ballast.append([[index] for index in range(30)])
        return await super().send(payload, on_written, url)


async def test_collections_run_between_sends_and_never_by_themselves(
    database: Database, mock_api: MockCloudApi
) -> None:
    """From the first request to the end of sending, the interpreter starts no collection of its
    own (one could fall between a release and its write); the engine's collector runs them."""
    campaign_id = await make_campaign(database, recipients_per_step=1000)
    settings = settings_for(database.url, mock_api, rate=2000)
    started_in: list[str] = []
    async with BallastClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, campaign_id)

        def note(phase: str, _info: dict[str, int]) -> None:
            if phase == "start" and client.started and sender.running:
                started_in.append(sys._getframe(1).f_code.co_name)

        gc.callbacks.append(note)
        try:
            outcome = await asyncio.wait_for(sender.run(), 60)
        finally:
            gc.callbacks.remove(note)
    assert outcome.status is RunStatus.COMPLETED
    assert gc.isenabled()
    assert started_in  # not vacuous: collections did run while sending
    assert set(started_in) == {"_collect"}


async def test_paced_sends_never_exceed_the_rate_in_any_second(
    database: Database, mock_api: MockCloudApi
) -> None:
    """The pacer's promise, measured where it holds: when requests leave. (Arrival-side figures,
    zero 130429 with the mock in its own process, are in bench/engine_bench.py.)"""
    mock_api.config.rate_limit = 100
    campaign_id = await make_campaign(database, recipients_per_step=250)
    settings = settings_for(database.url, mock_api, rate=100)
    async with TimedClient(settings.whatsapp, settings.http) as client:
        await asyncio.wait_for(CampaignSender(database, client, settings, campaign_id).run(), 60)
    assert most_in_one_second(client.started) <= 100
    assert len(client.started) >= 250
    assert await counts(database, campaign_id) == {"sent": 250}
    per_phone = accepted_per_phone(mock_api)
    assert len(per_phone) == 250 and set(per_phone.values()) == {1}


async def run_cli(*args: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, stderr.decode()


async def test_spam_switch_pauses_with_exit_3_and_resume_finishes_without_duplicates(
    database: Database, mock_api: MockCloudApi
) -> None:
    campaign_id = await make_campaign(database, "spammy", recipients_per_step=200)
    env = env_for(settings_for(database.url, mock_api))
    mock_api.config.spam_after = 60
    code, stderr = await run_cli("run", "spammy", "--rate", "400", env=env)
    assert code == 3, stderr
    assert "131048" in stderr
    mock_api.config.spam_after = None
    code, stderr = await run_cli("run", "spammy", "--rate", "400", env=env)
    assert code == 0, stderr
    assert "resuming" in stderr and "131048" in stderr
    per_phone = accepted_per_phone(mock_api)
    assert len(per_phone) == 200 and set(per_phone.values()) == {1}
    assert await counts(database, campaign_id) == {"sent": 200}  # a pause leaves nothing in doubt


async def test_run_refuses_unknown_and_completed_campaigns(
    database: Database, mock_api: MockCloudApi
) -> None:
    env = env_for(settings_for(database.url, mock_api))
    code, stderr = await run_cli("run", "nope", env=env)
    assert code == 2 and stderr.count("\n") == 1 and "no campaign named 'nope'" in stderr
    await make_campaign(database, "small", recipients_per_step=5)
    assert (await run_cli("run", "small", env=env))[0] == 0
    code, stderr = await run_cli("run", "small", env=env)
    assert code == 2 and "already completed" in stderr


async def test_run_says_when_the_connection_pool_caps_the_rate(
    database: Database, mock_api: MockCloudApi
) -> None:
    """Two connections and 50 ms answers cannot carry 400 msg/s: a silent 40 msg/s would look
    like a watui bug, so the run says why, even with --quiet."""
    campaign_id = await make_campaign(database, "narrow", recipients_per_step=100)
    mock_api.config.latency = (0.05, 0.05)
    env = env_for(settings_for(database.url, mock_api))
    env["WATUI_HTTP__MAX_CONNECTIONS"] = "2"
    code, stderr = await run_cli("run", "narrow", "--rate", "400", "--quiet", env=env)
    assert code == 0, stderr
    assert "watui: warning: http.max_connections=2 caps sending at about" in stderr
    assert await counts(database, campaign_id) == {"sent": 100}


@pytest.mark.slow
async def test_sigkill_mid_campaign_then_restart_sends_nobody_twice(
    database: Database, mock_api: MockCloudApi
) -> None:
    mock_api.config.latency = (0.02, 0.08)
    campaign_id = await make_campaign(database, "crashy", recipients_per_step=600)
    env = env_for(settings_for(database.url, mock_api))
    window = 40
    env["WATUI_SEND__MAX_IN_FLIGHT"] = str(window)
    for delay in (0.8, 1.3, 0.5):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watui", "run", "crashy", "--rate", "200", "--quiet", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(delay)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    code, stderr = await run_cli("run", "crashy", "--rate", "400", env=env)
    assert code == 0, stderr
    final = await counts(database, campaign_id)
    assert set(final) <= {"sent", "in_doubt"}
    assert final.get("in_doubt", 0) <= 3 * window  # at most one window per kill
    per_phone = accepted_per_phone(mock_api)
    assert max(per_phone.values()) == 1  # nobody got the message twice
    assert final["sent"] <= len(per_phone)
    assert await counters(database, campaign_id) == final


@pytest.mark.postgres
async def test_two_processes_share_a_campaign_on_postgres(
    postgres_server, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    url = postgres_server.new_database()
    async with Database(url) as db:
        campaign_id = await make_campaign(db, "shared", recipients_per_step=500)
    mock_api.config.rate_limit = 100
    env = env_for(settings_for(url, mock_api))
    results = await asyncio.gather(
        run_cli("run", "shared", "--rate", "100", "--quiet", env=env),
        run_cli("run", "shared", "--rate", "100", "--quiet", env=env),
    )
    assert [code for code, _ in results] == [0, 0], results
    per_phone = accepted_per_phone(mock_api)
    assert len(per_phone) == 500 and set(per_phone.values()) == {1}
    # Arrival times bunch a little on a busy machine; the sum must still stay at the rate.
    assert most_in_one_second([entry.at for entry in mock_api.ledger]) <= 105
    async with Database(url) as db:
        assert await counts(db, campaign_id) == {"sent": 500}


async def test_run_without_a_token_says_what_to_set(database: Database, mock_api: MockCloudApi) -> None:
    await make_campaign(database, "tokenless", recipients_per_step=3)
    env = env_for(settings_for(database.url, mock_api))
    del env["WATUI_WHATSAPP__ACCESS_TOKEN"]
    code, stderr = await run_cli("run", "tokenless", env=env)
    assert code == 2
    assert stderr.strip() == (
        "watui: error: whatsapp.access_token is not set: set WATUI_WHATSAPP__ACCESS_TOKEN "
        "or add it to watui.toml before sending"
    )
    assert mock_api.stats()["requests"] == 0
