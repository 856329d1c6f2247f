"""Connections sized by themselves: with only ``send.rate = 1000`` set, answers taking 100-300 ms
need ~200-300 requests in flight, which the old fixed pool of 100 capped at ~500 msg/s.

The sizing rule is checked alone (pure), then a real ``watui run`` process against the mock on
loopback, whose ledger stamps each message when it arrived.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.factories import make_campaign, running_mock
from watui.engine.connections import FLOOR, ConnectionLimit, connections_needed
from watui.mockapi.server import MockCloudApi
from watui.rules import MAX_AUTO_CONNECTIONS
from watui.settings import HttpSettings
from watui.storage.database import Database

TOKEN = "pool-test-token"
PHONE_ID = "1000001"


def test_the_automatic_limit_follows_rate_and_latency_within_its_bounds() -> None:
    auto = ConnectionLimit(HttpSettings(), rate=1000)
    assert auto.fixed is None and auto.limit == 450  # 1,000 msg/s × 0.3 s assumed × 1.5
    assert auto.resize(1000, 0.6) == 900  # answers slowed: grown at once
    assert auto.resize(1000, 0.1) == 855  # faster again: given up 5% a resize, not at once
    for _ in range(60):
        auto.resize(1000, 0.1)
    assert auto.limit == connections_needed(1000, 0.1) == 150 and auto.peak == 900
    assert auto.resize(1000, 30.0) == MAX_AUTO_CONNECTIONS  # timeouts: never past the ceiling
    assert ConnectionLimit(HttpSettings(), rate=1).limit == FLOOR


def test_a_number_fixes_the_limit() -> None:
    fixed = ConnectionLimit(HttpSettings(max_connections=50), rate=1000)
    assert (fixed.fixed, fixed.limit) == (50, 50)
    assert fixed.resize(1000, 2.0) == 50


@pytest.fixture
async def slow_mock() -> AsyncIterator[MockCloudApi]:
    """Meta's limit for the upper tier, answers in 100-300 ms."""
    async with running_mock(access_token=TOKEN, rate_limit=1000, latency=(0.1, 0.3), seed=7) as mock:
        yield mock


async def watui_run(name: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "run", name, "--quiet", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, stderr.decode()


def only_the_rate(database: Database, mock: MockCloudApi, **extra: str) -> dict[str, str]:
    """What a user sets: where to send and as whom, and the rate; nothing about connections."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env.update({
        "WATUI_DATABASE_URL": database.url, "WATUI_WHATSAPP__ACCESS_TOKEN": TOKEN,
        "WATUI_WHATSAPP__PHONE_NUMBER_ID": PHONE_ID, "WATUI_WHATSAPP__API_BASE_URL": mock.base_url,
        "WATUI_SEND__RATE": "1000", **extra,
    })  # fmt: skip
    return env


def ledger_rate(mock: MockCloudApi) -> float:
    """Messages per second between the first and the last arrival at the API."""
    arrivals = sorted(entry.at for entry in mock.ledger)
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


#: The pool is the HTTP side's: one database (SQLite) is enough to show it.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_only_the_rate_set_reaches_1000_per_second_with_slow_answers(
    database: Database, slow_mock: MockCloudApi
) -> None:
    await make_campaign(database, "tier", recipients_per_step=2500)
    code, stderr = await watui_run("tier", only_the_rate(database, slow_mock))
    assert code == 0, stderr
    assert set(Counter(entry.to for entry in slow_mock.ledger).values()) == {1}
    assert len(slow_mock.ledger) == 2500
    assert ledger_rate(slow_mock) >= 950, ledger_rate(slow_mock)
    assert slow_mock.stats()["errors"].get("130429", 0) == 0
    assert slow_mock.peak_in_flight > 150  # well past the old fixed pool of 100
    assert "caps sending" not in stderr


@sqlite_only
async def test_an_explicit_number_still_caps_requests_in_flight(
    database: Database, slow_mock: MockCloudApi
) -> None:
    await make_campaign(database, "narrow", recipients_per_step=300)
    env = only_the_rate(database, slow_mock, WATUI_HTTP__MAX_CONNECTIONS="50")
    code, stderr = await watui_run("narrow", env)
    assert code == 0, stderr
    assert len(slow_mock.ledger) == 300
    assert 40 <= slow_mock.peak_in_flight <= 50
    assert ledger_rate(slow_mock) < 400  # 50 connections at ~0.2 s: ~250 msg/s
    assert "http.max_connections=50 caps sending at about" in stderr
