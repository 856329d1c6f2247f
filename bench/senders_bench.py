"""Two numbers at 1,000 msg/s each in one process, against the mock in its own process.

    python -m bench.senders_bench            # 20,000 recipients (10 s at 2,000 msg/s)
    python -m bench.senders_bench --quick    # 6,000
    python -m bench.senders_bench --postgres # on a throwaway PostgreSQL server too

Each number must reach >= 0.98 of its rate at the API (arrivals of its messages, by the mock's
ledger, which records the number that sent each), with zero 130429; the engine's CPU per 1,000
messages is printed beside the one-number figure of bench.engine_bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import update

from bench.engine_bench import (
    MockProcess,
    Row,
    _free_port,
    make_campaign,
    most_in_one_second,
    print_table,
    settings_for,
    span_rate,
    timed,
)
from watui.engine.numbers import NumbersSender
from watui.eventloop import use_fast_event_loop
from watui.storage import pinning
from watui.storage.database import Database
from watui.storage.schema import campaigns
from watui.whatsapp.client import WhatsAppClient

NUMBERS = ("1000001", "1000002")
RATE = 1000.0


async def pin_to_numbers(db: Database, campaign_id: int) -> None:
    """What `--senders` at creation does: the campaign's numbers, each recipient pinned by
    rules.sender_for (here: all to the first, then the first's spread over both)."""
    async with db.begin() as conn:
        await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                           .values(senders=json.dumps(NUMBERS)))
    await pinning.pin_waiting(db, campaign_id, NUMBERS[:1])
    await pinning.reassign(db, campaign_id, NUMBERS[:1], NUMBERS)


async def two_numbers(database_url: str, db_label: str, workdir: Path, *, contacts: int) -> list[Row]:
    port = _free_port()
    with MockProcess(rate_limit=RATE, latency=(0.1, 0.3), port=port) as mock:
        # 2,000 msg/s at up to 300 ms answers: ~600 requests in flight on as many connections.
        settings = settings_for(database_url, mock.base_url, rate=RATE, max_connections=900)
        campaign_id = await make_campaign(settings, workdir, contacts, f"two-{db_label}")
        async with Database(database_url) as db:
            await pin_to_numbers(db, campaign_id)
            async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                sender = NumbersSender(db, client, settings, campaign_id, NUMBERS)
                wall, cpu, outcome = await timed(sender.run)
        stats = mock.stats()
        ledger = httpx.get(f"{mock.base_url}/_mock/ledger", timeout=60).json()
    arrivals: dict[str, list[float]] = defaultdict(list)
    for entry in ledger:
        arrivals[entry["phone_number_id"]].append(entry["at"])
    accepted = stats.get("accepted", 0)
    throttled = stats.get("errors", {}).get("130429", 0)
    label = "2 numbers @1,000 each"
    rows = [
        Row(label, db_label, "run", 1.0 if outcome.status.value == "completed" else 0.0,
            "completed", outcome.status.value == "completed"),
        Row(label, db_label, "accepted", accepted, f"= {contacts}", accepted == contacts),
    ]
    for number in NUMBERS:
        times = sorted(arrivals[number])
        achieved = span_rate(times)
        rows.append(Row(label, db_label, f"{number} at the API / allowed", achieved / RATE,
                        ">= 0.98", achieved / RATE >= 0.98))
        rows.append(Row(label, db_label, f"{number} most arrivals in 1 s", most_in_one_second(times),
                        f"<= {RATE:g}", most_in_one_second(times) <= RATE))
    rows += [
        Row(label, db_label, "130429 answers", throttled, "= 0", throttled == 0),
        Row(label, db_label, "engine CPU s per 1,000 msg", cpu / accepted * 1000, "", None),
        Row(label, db_label, "engine cores", cpu / wall, "", None),
        Row(label, db_label, "wall s", wall, "", None),
    ]
    return rows


async def main_async(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="watui-senders-bench-"))
    contacts = 6_000 if args.quick else 20_000
    rows = await two_numbers(f"sqlite+aiosqlite:///{workdir / 'bench.db'}", "sqlite", workdir,
                             contacts=contacts)
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.pgserver import PostgresServer

        server = PostgresServer().start()
        try:
            rows += await two_numbers(server.new_database(), "postgres", workdir, contacts=contacts)
        finally:
            server.cleanup()
    print_table(rows)
    print(f"machine: {os.cpu_count()} cores, load average (1 min) {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    use_fast_event_loop()  # as `watui` itself does
    asyncio.run(main_async(options()))
