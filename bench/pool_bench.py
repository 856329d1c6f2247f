"""Connections sized by themselves: 1,000 msg/s with 100-300 ms answers and only the rate set,
side by side with the old fixed pool of 100 connections, in the same run.

    python -m bench.pool_bench              # 10,000 messages a run, two rounds (~1 min)
    python -m bench.pool_bench --quick      # 3,000 messages, one round
    python -m bench.pool_bench --rate 400 --latency 0.3,0.5   # the same shape, lighter on CPU

The mock runs in its own process (its ledger stamps each arrival; /_mock/stats tells the most
requests it held at once, i.e. connections in use), a fresh one for each run. Runs alternate
(automatic, fixed 100, automatic, ...) so both see the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from bench import engine_bench as engine
from bench.engine_bench import Row
from watui.engine.sender import CampaignSender
from watui.eventloop import use_fast_event_loop
from watui.settings import Settings
from watui.storage.database import Database
from watui.whatsapp.client import WhatsAppClient

TARGET = 0.98


def only_the_rate(database_url: str, base_url: str, rate: float, **http: object) -> Settings:
    """What a user sets for the upper tier: where to send, as whom, and the rate."""
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": engine.TOKEN, "phone_number_id": engine.PHONE_ID, "waba_id": "2000002",
                  "api_base_url": base_url},
        send={"rate": rate},
        http=http,
    )  # fmt: skip


async def one_run(
    args: argparse.Namespace, workdir: Path, label: str, run: int, **http: object
) -> list[Row]:
    database_url = f"sqlite+aiosqlite:///{workdir / f'pool-{run}.db'}"
    contacts = 3_000 if args.quick else args.contacts
    port = engine._free_port()
    with engine.MockProcess(rate_limit=args.rate, latency=args.latency, port=port) as mock:
        settings = only_the_rate(database_url, mock.base_url, args.rate, **http)
        campaign_id = await engine.make_campaign(settings, workdir, contacts, f"pool-{run}")
        async with Database(database_url) as db:
            async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                sender = CampaignSender(db, client, settings, campaign_id)
                wall, cpu, _ = await engine.timed(sender.run)
                opened = client.connection_stats().new_connections
        stats = mock.stats()
        ratio = mock.arrival_span_rate() / args.rate
    limit = sender._control.connections  # what the run sized itself to
    accepted = stats["accepted"]
    return [
        Row(label, "sqlite", "rate at the API / allowed", ratio, f">= {TARGET}", ratio >= TARGET),
        Row(label, "sqlite", "accepted", accepted, f"= {contacts}", accepted == contacts),
        Row(label, "sqlite", "130429 answers", stats["errors"].get("130429", 0), "= 0",
            stats["errors"].get("130429", 0) == 0),
        Row(label, "sqlite", "peak requests held by the API", stats["peak_in_flight"], "", None),
        Row(label, "sqlite", "connections opened", opened, "", None),
        Row(label, "sqlite", "connection limit, peak", limit.peak, "", None),
        Row(label, "sqlite", "wall s", wall, "", None),
        Row(label, "sqlite", "engine CPU s per 1,000 msg", cpu / accepted * 1000, "", None),
    ]  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="watui-pool-bench-"))
    print(f"rate {args.rate:g} msg/s, answers in {args.latency[0]:g}-{args.latency[1]:g} s")
    rows: list[Row] = []
    run = 0
    for _ in range(1 if args.quick else args.rounds):
        for label, http in (("auto (default)", {}), ("fixed 100 (old)", {"max_connections": 100})):
            run += 1
            rows += await one_run(args, workdir, label, run, **http)
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    engine.print_table(sorted(rows, key=lambda row: row.scenario))


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument(
        "--latency", type=lambda text: tuple(float(part) for part in text.split(",")),
        default=(0.1, 0.3), help="the mock's answer times in seconds: LOW,HIGH",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
