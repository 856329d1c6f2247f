"""The database goes away under a running campaign: PostgreSQL stopped and started again, the
SQLite file locked by another process, the disk full. The run waits and retries, then finishes:
no recorded outcome lost, nobody sent twice (checked against the mock API's ledger)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from tests.factories import make_campaign
from tests.faults import assert_clean, audit, run_to_end, running_mock, status_counts
from tests.pgserver import PostgresServer, PostgresUnavailable
from tests.test_engine_http import env_for, settings_for
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.storage.database import Database
from watui.whatsapp.client import WhatsAppClient

WINDOW = 20


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(latency=(0.005, 0.02), seed=7) as mock:
        yield mock


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own (stopping the shared one would break every other test),
    durable: it is crashed, and a commit must survive that as it does in production."""
    try:
        server = PostgresServer(durable=True).start()
    except PostgresUnavailable as error:
        pytest.skip(f"PostgreSQL not available: {error}")
    try:
        yield server
    finally:
        server.cleanup()


def outage_env(db: Database, mock: MockCloudApi) -> dict[str, str]:
    env = env_for(settings_for(db.url, mock))
    env["WATUI_SEND__MAX_IN_FLIGHT"] = str(WINDOW)
    return env


async def wait_for_requests(mock: MockCloudApi, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while mock.counters["requests"] < count:
        assert time.monotonic() < deadline, "the run sent too little in time"
        await asyncio.sleep(0.01)


def database_warnings(sender: CampaignSender) -> int:
    """Claims and flushes that failed on the database and are being retried."""
    return sum(
        "database" in event.text for event in sender.metrics.events_since(0) if event.kind == "warning"
    )


@pytest.mark.postgres
async def test_postgres_stopped_and_started_mid_run_loses_nothing(
    own_postgres: PostgresServer, mock_api: MockCloudApi
) -> None:
    total = 1200
    async with Database(own_postgres.new_database()) as db:
        campaign_id = await make_campaign(db, "outage", recipients_per_step=total)
        env = outage_env(db, mock_api)
        await db.engine.dispose()  # our own pooled connections would die with the server too
        run = asyncio.create_task(run_to_end("outage", env, rate=200, timeout=40))
        await wait_for_requests(mock_api, 150)
        await asyncio.to_thread(own_postgres.stop, "immediate")
        during_outage = mock_api.counters["requests"]
        await asyncio.sleep(2.0)
        sent_while_down = mock_api.counters["requests"] - during_outage
        await asyncio.to_thread(own_postgres.start_again)
        code, stderr = await run
        assert code == 0, stderr
        result = await audit(db, campaign_id, mock_api, total)
    assert_clean(result)
    assert sent_while_down <= WINDOW, "with nothing recorded, sends must stop at one window"
    assert result.by_status == {"sent": total}, "a clean outage leaves nobody in doubt"


LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


async def test_sqlite_locked_by_another_process_waits_then_finishes(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    total = 1200
    lock_seconds = 4.0
    path = sqlite_url.split("///", 1)[1]
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, "locked", recipients_per_step=total)
        run = asyncio.create_task(run_to_end("locked", outage_env(db, mock_api), rate=200))
        await wait_for_requests(mock_api, 150)
        locker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, path, str(lock_seconds), stdout=asyncio.subprocess.PIPE,
        )
        assert locker.stdout is not None
        assert (await locker.stdout.readline()).strip() == b"locked"
        locked_at = mock_api.counters["requests"]
        await asyncio.sleep(lock_seconds - 1)
        sent_while_locked = mock_api.counters["requests"] - locked_at
        assert await locker.wait() == 0
        code, stderr = await run
        assert code == 0, stderr
        result = await audit(db, campaign_id, mock_api, total)
    assert_clean(result)
    assert sent_while_locked <= WINDOW, "with nothing recorded, sends must stop at one window"
    assert result.by_status == {"sent": total}


async def test_disk_full_mid_run_waits_and_loses_no_outcome(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    """Disk full, simulated with SQLite's max_page_count (no root tools needed): every write
    that needs a new page fails with SQLITE_FULL until the limit is lifted."""
    total = 1500
    limit = {"pages": 2_147_483_646}
    async with Database(sqlite_url) as setup:
        campaign_id = await make_campaign(setup, "full", recipients_per_step=total)
    db = Database(sqlite_url)
    event.listen(
        db.engine.sync_engine, "begin",
        lambda conn: conn.exec_driver_sql(f"PRAGMA max_page_count = {limit['pages']}"),
    )
    await db.open()
    settings = settings_for(sqlite_url, mock_api, rate=300, max_in_flight=WINDOW)
    try:
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(db, client, settings, campaign_id)
            run = asyncio.create_task(sender.run())
            await wait_for_requests(mock_api, 200)
            async with db.engine.connect() as conn:  # the disk fills up now
                limit["pages"] = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
            await asyncio.sleep(1.5)
            failures_while_full = database_warnings(sender)
            # Writes that fit in the pages the file already has still succeed, so sending goes
            # on at a crawl; what must hold is that no more than a window is unrecorded.
            recorded = (await status_counts(db, campaign_id)).get("sent", 0)
            unrecorded_while_full = mock_api.counters["accepted"] - recorded
            limit["pages"] = 2_147_483_646
            outcome = await asyncio.wait_for(run, 60)
        result = await audit(db, campaign_id, mock_api, total)
    finally:
        await db.close()
    assert outcome.status is RunStatus.COMPLETED
    assert failures_while_full > 0, "the full disk never bit: the test proves nothing"
    assert unrecorded_while_full <= WINDOW, "sends must never run more than a window ahead of the disk"
    assert_clean(result)
    assert result.by_status == {"sent": total}


async def test_a_claim_that_committed_but_raised_gives_its_rows_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection breaks after the claim's COMMIT: the rows are leased to us but we never
    saw them. They must go back to the queue (no request went out), not sit in `sending`."""
    from sqlalchemy.exc import OperationalError

    from tests.test_engine_logic import ScriptedClient, fast_settings
    from watui.storage import claims

    real_claim = claims.claim
    broken = {"left": 3}

    async def claim_then_lose_the_answer(*args: object, **kwargs: object) -> list:
        rows = await real_claim(*args, **kwargs)  # type: ignore[arg-type]
        if broken["left"] and rows:
            broken["left"] -= 1
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset"))
        return rows

    monkeypatch.setattr(claims, "claim", claim_then_lose_the_answer)
    campaign_id = await make_campaign(database, recipients_per_step=300)
    client = ScriptedClient()
    sender = CampaignSender(database, client, fast_settings(max_in_flight=WINDOW), campaign_id)
    outcome = await asyncio.wait_for(sender.run(), 60)
    assert outcome.status is RunStatus.COMPLETED
    assert broken["left"] == 0
    assert len(client.seen) == 300 and set(client.seen.values()) == {1}
    assert await status_counts(database, campaign_id) == {"sent": 300}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of our own (we run as root here); skipped where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte; returns the filler to delete."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                handle.write(chunk)
    with filler.open("ab", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0")
    return filler


async def test_a_really_full_disk_stalls_the_run_until_space_returns(
    small_disk: Path, mock_api: MockCloudApi
) -> None:
    total = 3000
    url = f"sqlite+aiosqlite:///{small_disk / 'watui.db'}"
    async with Database(url) as db:
        campaign_id = await make_campaign(db, "tmpfs", recipients_per_step=total)
        env = outage_env(db, mock_api)
        run = asyncio.create_task(run_to_end("tmpfs", env, rate=300, timeout=90))
        await wait_for_requests(mock_api, 200)
        filler = await asyncio.to_thread(fill, small_disk)
        await asyncio.sleep(2.0)
        recorded = (await status_counts(db, campaign_id)).get("sent", 0)
        unrecorded_while_full = mock_api.counters["accepted"] - recorded
        filler.unlink()
        code, stderr = await run
        assert code == 0, stderr
        result = await audit(db, campaign_id, mock_api, total)
    assert_clean(result)
    assert result.by_status == {"sent": total}
    assert "database or disk is full" in stderr, "the full disk never bit: the test proves nothing"
    assert unrecorded_while_full <= WINDOW, "sends must never run more than a window ahead of the disk"
