"""An API outage in the middle of a 1,000 msg/s campaign: how soon sending is back at full rate,
and what the outage cost the recipients (nothing, if the circuit breaker does its job).

    python -m bench.outage_bench                 # a 60 s outage (about 90 s in all)
    python -m bench.outage_bench --outage 10     # a quick run
    python -m bench.outage_bench --answering     # the API answers 503 all along instead

The mock runs in its own process. The outage: a gateway refusing every send (bare 503) for a
second, then the mock's process stopped (connections refused) until the outage's end, then a
new mock process on the same port. Its ledger is read before it stops and after the run, so
"sent twice" counts across both. While nothing connects, the sender checks the port with a TCP
connect every 0.5 s and probes once one goes through. With ``--answering`` the mock keeps
answering 503 for the whole outage: a connect tells nothing, and the probe itself goes every
1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.engine_bench import (
    MockProcess,
    Row,
    _free_port,
    make_campaign,
    most_in_one_second,
    print_table,
    settings_for,
)
from watui.engine.sender import CampaignSender
from watui.eventloop import use_fast_event_loop
from watui.storage.database import Database
from watui.storage.schema import recipients
from watui.whatsapp.client import WhatsAppClient

LATENCY = (0.1, 0.3)
BEFORE_S = 8.0  # seconds of sending before the outage
AFTER_S = 12.0  # seconds of sending wanted after it
REFUSING_S = 1.0  # the gateway refuses this long before the process stops
FULL_RATE = 0.98  # of the rate, over FULL_SPAN seconds of arrivals
FULL_SPAN = 0.25


async def ledger(base_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as client:
        entries: list[dict[str, Any]] = (await client.get(f"{base_url}/_mock/ledger")).json()
        return entries


async def configure(base_url: str, changes: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        (await client.post(f"{base_url}/_mock/config", json=changes)).raise_for_status()


def reached_full_rate(arrivals: list[float], rate: float) -> float | None:
    """The first arrival from which FULL_SPAN seconds held FULL_RATE of the rate."""
    wanted = FULL_RATE * rate * FULL_SPAN
    for index, start in enumerate(arrivals):
        if bisect.bisect_left(arrivals, start + FULL_SPAN) - index >= wanted:
            return start
    return None


@dataclass
class Outage:
    """What happened around the outage, on the bench's monotonic clock (the mock's is the same
    system-wide clock: its ledger's arrival times compare with these)."""

    down_at: float = 0.0
    back_at: float = 0.0
    before: list[dict[str, Any]] = field(default_factory=list)  # the first process's ledger
    second: MockProcess | None = None  # the mock that came back (the first, if it never left)


async def play_outage(
    first: MockProcess, port: int, rate: float, seconds: float, *, answering: bool
) -> Outage:
    """Refusing, then stopped, then a new mock on the same port ``seconds`` after it began
    (``answering``: refusing all along, then answering again)."""
    outage = Outage(down_at=time.monotonic())
    await configure(first.base_url, {"refuse_status": 503})
    await asyncio.sleep(REFUSING_S)
    outage.before = await ledger(first.base_url)
    if answering:
        await asyncio.sleep(max(0.0, outage.down_at + seconds - time.monotonic()))
        await configure(first.base_url, {"refuse_status": None})
        outage.back_at, outage.second = time.monotonic(), first
        return outage
    await asyncio.to_thread(first.__exit__)
    await asyncio.sleep(max(0.0, outage.down_at + seconds - time.monotonic()))
    comeback = MockProcess(rate_limit=rate, latency=LATENCY, port=port)
    listening = asyncio.create_task(port_opens(port))
    outage.second = await asyncio.to_thread(comeback.__enter__)
    outage.back_at = await listening
    return outage


async def port_opens(port: int) -> float:
    """When the mock's port accepts connections again (monotonic, to ~5 ms): the API's return.
    The mock answers its first request a little later, but a sender may connect from then."""
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        writer.close()
        return time.monotonic()


async def outage_run(workdir: Path, *, rate: float, seconds: float, answering: bool) -> list[Row]:
    port = _free_port()
    database_url = f"sqlite+aiosqlite:///{workdir / 'outage.db'}"
    contacts = int(rate * (BEFORE_S + AFTER_S))
    first = MockProcess(rate_limit=rate, latency=LATENCY, port=port).__enter__()
    outage = Outage()
    settings = settings_for(database_url, first.base_url, rate=rate,
                            max_connections=max(100, int(rate * 0.4)))
    campaign_id = await make_campaign(settings, workdir, contacts, "outage")
    try:
        async with Database(database_url) as db, \
                WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(db, client, settings, campaign_id)
            run = asyncio.create_task(sender.run())
            await asyncio.sleep(BEFORE_S)
            outage = await play_outage(first, port, rate, seconds, answering=answering)
            await run
            statuses, charged = await recipient_figures(db)
        assert outage.second is not None
        after = [entry for entry in await ledger(outage.second.base_url)
                 if entry["at"] >= outage.back_at]
        if answering:
            outage.before = [entry for entry in outage.before if entry["at"] < outage.back_at]
        throttled = (await asyncio.to_thread(outage.second.stats)).get("errors", {}).get("130429", 0)
    finally:
        for mock in {id(first): first, id(outage.second): outage.second}.values():
            with contextlib.suppress(AssertionError, OSError):
                if mock is not None:
                    mock.__exit__()
    probes = sender.metrics.outage_probes
    scenario = f"{seconds:g} s {'503s' if answering else 'outage'} at {rate:g}/s"
    return [
        Row(scenario, "sqlite", "outage s (first refusal -> return)", outage.back_at - outage.down_at,
            "", None),
        Row(scenario, "sqlite", "probes that met the outage", probes, "", None),
        *recovery_rows(scenario, sorted(entry["at"] for entry in after), outage.back_at, rate),
        cold_start_row(scenario, sorted(entry["at"] for entry in outage.before), rate),
        Row(scenario, "sqlite", "130429 answers, after", throttled, "= 0", throttled == 0),
        *cost_rows(scenario, statuses, charged, contacts, outage.before + after),
    ]


async def recipient_figures(db: Database) -> tuple[dict[str, int], int]:
    """Recipients by status, and the most requests any was charged."""
    async with db.engine.connect() as conn:
        statuses = dict((await conn.execute(
            select(recipients.c.status, func.count()).group_by(recipients.c.status))).all())
        charged = (await conn.execute(select(func.max(recipients.c.attempts)))).scalar_one()
    return statuses, int(charged or 0)


def recovery_rows(scenario: str, arrivals: list[float], back_at: float, rate: float) -> list[Row]:
    full_at = reached_full_rate(arrivals, rate)
    ramp = -1.0 if full_at is None else full_at - arrivals[0]
    most = most_in_one_second(arrivals)
    return [
        Row(scenario, "sqlite", "return -> first accepted (probe) s", arrivals[0] - back_at,
            "", None),
        Row(scenario, "sqlite", "first accepted -> full rate s", ramp, "<= 2", 0 <= ramp <= 2),
        Row(scenario, "sqlite", "return -> full rate s", -1.0 if full_at is None else full_at - back_at,
            "<= 2", full_at is not None and full_at - back_at <= 2),
        Row(scenario, "sqlite", "most arrivals in 1 s, after", most, f"<= {rate:g}", most <= rate),
        Row(scenario, "sqlite", "control: msg/s 2-5 s after", steady_rate(arrivals), "", None),
    ]


def steady_rate(arrivals: list[float]) -> float:
    """Arrivals a second from 2 to 5 s after the first: what the machine sustains once the ramp
    is long over (on a loaded machine, well under the rate: then so is the ramp)."""
    start = arrivals[0] + 2
    return (bisect.bisect_left(arrivals, start + 3) - bisect.bisect_left(arrivals, start)) / 3


def cold_start_row(scenario: str, arrivals: list[float], rate: float) -> Row:
    """The same ramp at the run's start, from a cold pool: what the ramp after an outage is
    measured against on a loaded machine."""
    full_at = reached_full_rate(arrivals, rate)
    ramp = -1.0 if full_at is None else full_at - arrivals[0]
    return Row(scenario, "sqlite", "control: start -> full rate s", ramp, "", None)


def cost_rows(
    scenario: str, statuses: dict[str, int], charged: int, contacts: int,
    ledgers: list[dict[str, Any]],
) -> list[Row]:
    sent, failed = statuses.get("sent", 0), statuses.get("failed", 0)
    twice = sum(count - 1 for count in Counter(entry["to"] for entry in ledgers).values())
    return [
        Row(scenario, "sqlite", "recipients sent", sent, f"= {contacts}", sent == contacts),
        Row(scenario, "sqlite", "recipients failed", failed, "= 0", failed == 0),
        Row(scenario, "sqlite", "recipients in doubt", statuses.get("in_doubt", 0), "", None),
        Row(scenario, "sqlite", "most attempts of a recipient", charged, "= 1", charged == 1),
        Row(scenario, "sqlite", "messages sent twice (ledgers)", twice, "= 0", twice == 0),
    ]


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="watui-outage-bench-"))
    rows = await outage_run(workdir, rate=args.rate, seconds=args.outage, answering=args.answering)
    print_table(rows)
    print("load average: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=60.0,
                        help="seconds the API is away (default 60)")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s (default 1000)")
    parser.add_argument("--answering", action="store_true",
                        help="the API answers 503 all along (default: its port refuses)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
