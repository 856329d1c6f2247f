"""Connections sized by themselves: with only ``send.rate = 1000`` set, answers taking 300-500 ms
need ~400 requests in flight, which the old fixed pool of 100 capped at ~250 msg/s.

The sizing rule is checked alone (pure), then a real ``watui run`` process against the mock on
loopback, in a process of its own. The rate reached is a figure for ``bench/pool_bench.py`` to print,
not for a test to time: here the run shows the pool grew well past 100 with nobody sent twice.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.factories import make_campaign
from watui.engine.connections import FLOOR, ConnectionLimit, connections_needed
from watui.mockapi.process import MockProcess
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


@dataclass(frozen=True)
class Judged:
    """What the mock (in its own process) saw of a run."""

    arrivals: list[float]  # when each accepted message arrived, sorted
    per_phone: Counter[str]
    stats: dict[str, Any]

    @property
    def rate(self) -> float:
        """Messages per second between the first and the last arrival at the API."""
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])


@pytest.fixture
async def slow_mock() -> AsyncIterator[MockProcess]:
    """Answers in 300-500 ms, in its own process. Its limit has room over the 1,000 msg/s sent:
    on a busy machine its loop stamps arrivals late in bunches, and pacing is not on trial here."""
    mock = MockProcess(["--token", TOKEN, "--rate-limit", "2000", "--latency", "0.3,0.5",
                        "--no-pair-limit", "--seed", "7"])  # fmt: skip
    await mock.start()
    try:
        yield mock
    finally:
        await mock.stop()


async def judged(mock: MockProcess) -> Judged:
    async with httpx.AsyncClient(base_url=mock.base_url, timeout=30) as http:
        ledger = (await http.get("/_mock/ledger")).json()
        stats = (await http.get("/_mock/stats")).json()
    return Judged(sorted(entry["at"] for entry in ledger),
                  Counter(entry["to"] for entry in ledger), stats)  # fmt: skip


async def watui_run(name: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "run", name, "--quiet", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, stderr.decode()


def only_the_rate(database: Database, mock: MockProcess, **extra: str) -> dict[str, str]:
    """What a user sets: where to send and as whom, and the rate; nothing about connections."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env.update({
        "WATUI_DATABASE_URL": database.url, "WATUI_WHATSAPP__ACCESS_TOKEN": TOKEN,
        "WATUI_WHATSAPP__PHONE_NUMBER_ID": PHONE_ID, "WATUI_WHATSAPP__API_BASE_URL": mock.base_url,
        "WATUI_SEND__RATE": "1000", **extra,
    })  # fmt: skip
    return env


#: The pool is the HTTP side's: one database (SQLite) is enough to show it.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_only_the_rate_set_grows_the_pool_past_the_old_fixed_100(
    database: Database, slow_mock: MockProcess
) -> None:
    """Even at half the rate (a busy machine) ~200 requests are in flight: a pool still capped at
    100 fails here at any speed."""
    await make_campaign(database, "tier", recipients_per_step=2500)
    code, stderr = await watui_run("tier", only_the_rate(database, slow_mock))
    assert code == 0, stderr
    seen = await judged(slow_mock)
    assert len(seen.per_phone) == 2500 and set(seen.per_phone.values()) == {1}
    assert seen.stats["peak_in_flight"] > 150
    assert "caps sending" not in stderr


@sqlite_only
async def test_an_explicit_number_still_caps_requests_in_flight(
    database: Database, slow_mock: MockProcess
) -> None:
    await make_campaign(database, "narrow", recipients_per_step=300)
    env = only_the_rate(database, slow_mock, WATUI_HTTP__MAX_CONNECTIONS="50")
    code, stderr = await watui_run("narrow", env)
    assert code == 0, stderr
    seen = await judged(slow_mock)
    assert len(seen.arrivals) == 300
    assert 40 <= seen.stats["peak_in_flight"] <= 50
    assert seen.rate < 200  # 50 connections at ~0.4 s: ~125 msg/s
    assert "http.max_connections=50 caps sending at about" in stderr
