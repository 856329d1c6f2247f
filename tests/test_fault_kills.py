"""SIGKILL `watui run` at random moments, restart it each time, and prove the promise holds:
every recipient ends sent exactly once (by the API's ledger), failed, or in_doubt; each kill
costs at most one in-flight window of in_doubt rows; the counters always equal the rows.

The moments come from a seeded RNG, and each run gets a different API latency and flush interval
so that kills land while claiming, with requests in flight and between an answer and its flush.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator

import pytest

from tests.factories import make_campaign
from tests.faults import assert_clean, audit, run_to_end, running_mock, spawn_run, status_counts
from tests.test_engine_http import env_for, settings_for
from watui.mockapi.server import MockCloudApi
from watui.storage import leases
from watui.storage.campaigns import counters_match_rows
from watui.storage.database import Database

WINDOW = 20  # WATUI_SEND__MAX_IN_FLIGHT: the most rows one kill may leave in doubt
#: (low, high) API latency per run: fast answers make kills land mid-claim and mid-flush, slow
#: ones make them land with the whole window in flight.
LATENCIES = [(0.0, 0.004), (0.01, 0.05), (0.05, 0.15), (0.15, 0.4)]
FLUSH_INTERVALS_MS = [20, 50, 200, 500]


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(latency=(0.0, 0.002), seed=6) as mock:
        yield mock


async def kill_and_restart(
    db: Database, mock: MockCloudApi, campaign_id: int, name: str, base_env: dict[str, str],
    *, kills: int, seed: int, rate: float,
) -> list[int]:
    """Kill a fresh `watui run` ``kills`` times; after each, the rows it left sending become
    in_doubt (as the next run's recovery would do) and the per-kill bound is checked."""
    rng = random.Random(seed)
    newly_in_doubt: list[int] = []
    for _ in range(kills):
        mock.update_config({"latency": rng.choice(LATENCIES)})
        env = dict(base_env, WATUI_SEND__FLUSH_INTERVAL_MS=str(rng.choice(FLUSH_INTERVALS_MS)))
        requests_before = mock.counters["requests"]
        process = await spawn_run(name, env, rate=rate)
        await first_request_after(mock, requests_before, process)
        await asyncio.sleep(rng.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        await process.wait()
        moved = await leases.recover_in_doubt(db, campaign_id)
        assert moved <= WINDOW, f"one kill left {moved} rows in doubt, more than the window"
        assert await counters_match_rows(db, campaign_id) == {}
        newly_in_doubt.append(moved)
    return newly_in_doubt


async def first_request_after(
    mock: MockCloudApi, seen: int, process: asyncio.subprocess.Process, timeout: float = 20
) -> None:
    """Wait until the run's first request reaches the API (the interpreter takes a while to
    start on a busy machine), so that the kill lands while it is sending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while mock.counters["requests"] == seen:
        assert process.returncode is None, "watui run ended before sending anything"
        assert loop.time() < deadline, "watui run sent nothing in time"
        await asyncio.sleep(0.005)


def kill_env(db: Database, mock: MockCloudApi) -> dict[str, str]:
    env = env_for(settings_for(db.url, mock))
    env["WATUI_SEND__MAX_IN_FLIGHT"] = str(WINDOW)
    env["WATUI_SAFETY__MAX_FAILURE_RATE"] = "1.0"
    return env


@pytest.mark.slow
async def test_twenty_sigkills_on_sqlite_lose_nobody_and_send_nobody_twice(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    total = 3000
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, "killed", recipients_per_step=total)
        per_kill = await kill_and_restart(
            db, mock_api, campaign_id, "killed", kill_env(db, mock_api), kills=20, seed=20261129,
            rate=150,
        )
        mock_api.update_config({"latency": (0.0, 0.002)})
        before_last = await status_counts(db, campaign_id)
        assert before_last.get("queued", 0) > 0, "the kills must land before the campaign ends"
        code, stderr = await run_to_end("killed", kill_env(db, mock_api), rate=1000)
        assert code == 0, stderr
        result = await audit(db, campaign_id, mock_api, total)
    print(f"in_doubt per kill: {per_kill}; final {result.by_status}")
    assert_clean(result)
    assert sum(per_kill) > 0, "no kill landed with requests in flight: the test proves nothing"
    assert result.by_status.get("in_doubt", 0) == sum(per_kill) <= 20 * WINDOW
    assert result.by_status["sent"] + result.by_status.get("in_doubt", 0) == total


@pytest.mark.postgres
async def test_sigkills_on_postgres_lose_nobody_and_send_nobody_twice(
    postgres_server, mock_api: MockCloudApi
) -> None:
    total = 1200
    async with Database(postgres_server.new_database()) as db:
        campaign_id = await make_campaign(db, "killed", recipients_per_step=total)
        per_kill = await kill_and_restart(
            db, mock_api, campaign_id, "killed", kill_env(db, mock_api), kills=4, seed=6, rate=150,
        )
        mock_api.update_config({"latency": (0.0, 0.002)})
        code, stderr = await run_to_end("killed", kill_env(db, mock_api), rate=1000)
        assert code == 0, stderr
        result = await audit(db, campaign_id, mock_api, total)
    assert_clean(result)
    assert result.by_status.get("in_doubt", 0) == sum(per_kill) <= 4 * WINDOW


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_a_clean_stop_by_signal_leaves_nothing_in_doubt(
    sqlite_url: str, mock_api: MockCloudApi, signum: signal.Signals
) -> None:
    """Ctrl-C, a service manager's SIGTERM, a closed terminal: in-flight requests finish, their
    outcomes are written, unsent claims go back to the queue, and the run resumes later."""
    total = 1500
    mock_api.update_config({"latency": (0.1, 0.3)})  # a full window in flight at the signal
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, "stopped", recipients_per_step=total)
        env = kill_env(db, mock_api)
        process = await spawn_run("stopped", env, rate=150)
        await first_request_after(mock_api, 0, process)
        await asyncio.sleep(0.5)
        process.send_signal(signum)
        assert await asyncio.wait_for(process.wait(), 30) == 130
        after_stop = await status_counts(db, campaign_id)
        assert set(after_stop) <= {"queued", "sent"}, after_stop
        assert after_stop["sent"] == len(mock_api.ledger), "every accepted request is recorded"
        assert await counters_match_rows(db, campaign_id) == {}
        mock_api.update_config({"latency": (0.0, 0.002)})
        code, stderr = await run_to_end("stopped", env, rate=1000)
        assert code == 0, stderr
        result = await audit(db, campaign_id, mock_api, total)
    assert_clean(result)
    assert result.by_status == {"sent": total}
