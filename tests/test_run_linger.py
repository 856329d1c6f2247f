"""`watui run` with the receiver: once sending is done it keeps listening for statuses until
every accepted message is delivered (or failed), or webhook.linger_s passes, or a signal comes.

Real `watui run` processes against the mock on loopback, which posts signed statuses to the
run's own receiver; SQLite only (the listening does not depend on the database)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import make_campaign, running_mock
from tests.faults import ended
from tests.test_webhook_apply_live import SECRET, TOKEN, _child_env, free_port, process_env
from watui.cli.main import main
from watui.mockapi.server import MockCloudApi
from watui.rules import recipient_callback
from watui.storage.campaigns import campaign_row, counters_match_rows
from watui.storage.database import Database
from watui.storage.schema import delivery_events, recipients

LISTENING = "sending done; listening for statuses up to"
RECIPIENTS = 20


def quick_mock(seed: int, delivered_delay: tuple[float, float], **config: object) -> Any:
    """The mock, posting signed statuses: delivered ``delivered_delay`` s after each send.
    Each its own seed: its wamids are its own, as Meta's are unique."""
    return running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=seed, app_secret=SECRET,
                        webhook_read_share=0.0, webhook_delivered_delay=delivered_delay,
                        webhook_retry_delay=(0.1, 0.3), **config)  # fmt: skip


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    async with Database(sqlite_url) as database:
        yield database


async def start_run(
    db: Database, mock: MockCloudApi, name: str, *options: str
) -> asyncio.subprocess.Process:
    """`watui run NAME` with webhook.enabled, its receiver where the mock posts."""
    port = free_port()
    mock.update_config({"webhook_url": f"http://127.0.0.1:{port}/webhook"})
    env = _child_env(process_env(db, mock, port))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "run", name, "--rate", "200", *options, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str]:
    """Its exit code and stderr; a run that does not end by itself within ``timeout`` fails."""
    return await ended(process, "watui run", timeout)


async def stored_statuses(db: Database, campaign_id: int, status: str) -> int:
    """Statuses of the campaign's messages stored (by callback: each run has its own mock)."""
    async with db.engine.connect() as conn:
        ids = select(recipients.c.id).where(recipients.c.campaign_id == campaign_id)
        callbacks = [recipient_callback(rid) for rid in (await conn.execute(ids)).scalars()]
        query = select(func.count()).select_from(delivery_events).where(
            delivery_events.c.status == status, delivery_events.c.callback.in_(callbacks))
        return int((await conn.execute(query)).scalar_one())


async def test_run_listens_for_statuses_until_done_bounded_or_stopped(db: Database) -> None:
    """Three `watui run` at once, each with its own mock:

    - delivered 4.3-4.6 s after each send (the old 2 s quiet window gave up after 4 s):
      the run waits for every accepted message's final status, then ends by itself;
    - delivered after 30 s, ``--linger 0.5 --quiet``: it stops listening at the bound,
      exit 0, keeping what came, and prints no listening line;
    - delivered after 30 s, SIGTERM while listening: exit 0, what came is kept."""
    async with (
        quick_mock(1, (4.3, 4.6), webhook_failures={131026: 0.1}) as slow,
        quick_mock(2, (30.0, 40.0)) as never, quick_mock(3, (30.0, 40.0)) as stopped_mock,
    ):  # fmt: skip
        ids = [await make_campaign(db, name, recipients_per_step=RECIPIENTS,
                                   first_number=15550000000 + 1000 * index)
               for index, name in enumerate(("settles", "bounded", "stopped"))]  # fmt: skip
        settles, bounded, stopped = ids
        await asyncio.gather(
            _settles(db, slow, settles), _bounded(db, never, bounded),
            _stopped_by_sigterm(db, stopped_mock, stopped),
        )
    for campaign_id in ids:
        assert await counters_match_rows(db, campaign_id) == {}


async def _settles(db: Database, mock: MockCloudApi, campaign_id: int) -> None:
    code, stderr = await finish(await start_run(db, mock, "settles", "--linger", "60"))
    assert code == 0, stderr
    assert f"{LISTENING} 60 s (ctrl+c stops)" in stderr
    campaign = await campaign_row(db, campaign_id)
    assert campaign.sent + campaign.failed_after == RECIPIENTS and campaign.failed_after > 0
    assert campaign.delivered == campaign.sent, "every accepted message's final status came in"
    assert f"delivered {campaign.delivered}, read 0" in stderr


async def _bounded(db: Database, mock: MockCloudApi, campaign_id: int) -> None:
    process = await start_run(db, mock, "bounded", "--linger", "0.5", "--quiet")
    code, stderr = await finish(process, timeout=30)
    assert code == 0, stderr
    assert LISTENING not in stderr
    campaign = await campaign_row(db, campaign_id)
    assert (campaign.sent, campaign.delivered) == (RECIPIENTS, 0)
    assert await stored_statuses(db, campaign_id, "sent") == mock.webhooks.stats()["updates"], (
        "every status the receiver acknowledged is kept")


async def _stopped_by_sigterm(db: Database, mock: MockCloudApi, campaign_id: int) -> None:
    process = await start_run(db, mock, "stopped", "--linger", "600")
    assert process.stderr is not None
    seen = b""
    while LISTENING.encode() not in seen:
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert line, f"watui run ended before listening: {seen.decode()}"
        seen += line
    process.send_signal(signal.SIGTERM)
    code, stderr = await finish(process, timeout=30)
    assert code == 0, seen.decode() + stderr
    assert "Traceback" not in stderr
    campaign = await campaign_row(db, campaign_id)
    assert campaign.status == "completed" and campaign.sent == RECIPIENTS
    assert await stored_statuses(db, campaign_id, "sent") == mock.webhooks.stats()["updates"], (
        "every status the receiver acknowledged is kept")


def test_linger_is_checked_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("WATUI_DATABASE_URL", sqlite_url)
    problems = {
        ("--linger", "soon"): "argument --linger: 'soon' is not a number of seconds",
        ("--linger", "-1"): "webhook.linger_s = -1.0 from the command line: Input should be "
                            "greater than or equal to 0",
        ("--linger", "5"): "--linger listens for status webhooks: turn the receiver on with "
                           "WATUI_WEBHOOK__ENABLED=true",
    }
    for options, problem in problems.items():
        try:
            code = main(["run", "spring", *options])
        except SystemExit as refused:  # argparse's own refusal, one line too
            code = int(str(refused.code))
        assert code == 2
        err = capsys.readouterr().err
        assert problem in err and len(err.strip().splitlines()) == 1, err
