"""Sending at 1,000 msg/s with the webhook receiver and its applier in the same process.

    python -m bench.apply_bench              # SQLite and PostgreSQL, 20,000 messages each
    python -m bench.apply_bench --quick      # 5,000 messages
    python -m bench.apply_bench --sqlite-only

The mock API runs in its own process and posts signed status webhooks (sent, delivered, read:
three per message) to the receiver in this one, as `watui run` with webhook.enabled would
have it. Figures: the rate at the API against the allowed one (the receiver must not slow the
sending), this process's CPU while sending (engine, receiver and applier together), the
applier's lag (from a status's commit to its application, p50/p99), how long after the last
send every status was applied, and whether the delivered and read counters came to the mock's
count. Single runs on a shared machine: read them with the load average printed below.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.engine_bench import (
    PHONE_ID,
    TOKEN,
    MockProcess,
    Row,
    _free_port,
    make_campaign,
    print_table,
    span_rate,
    timed,
)
from bench.webhook_bench import bench_databases
from watui.cli.mock import DEFAULT_APP_SECRET
from watui.engine.sender import CampaignSender
from watui.eventloop import use_fast_event_loop
from watui.receiver import applying_receiver
from watui.settings import Settings
from watui.storage.campaigns import campaign_row
from watui.storage.database import Database
from watui.storage.schema import delivery_events
from watui.whatsapp.client import WhatsAppClient

RATE = 1_000.0
#: Every message gets sent, delivered and read: three statuses, within ~5 s of the send.
WEBHOOK_ARGS = ["--webhook-delivered-delay", "0.5,2", "--webhook-read-share", "1.0",
                "--webhook-read-delay", "0.5,3"]  # fmt: skip
CATCH_UP_LIMIT = 120.0  # seconds after the last send


def settings_for(database_url: str, base_url: str, webhook_port: int) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": PHONE_ID, "waba_id": "2000002",
                  "api_base_url": base_url, "app_secret": DEFAULT_APP_SECRET},
        send={"rate": RATE},
        http={"max_connections": 500, "max_keepalive_connections": 500, "timeout": 10},
        safety={"max_failure_rate": 1.0},
        webhook={"enabled": True, "port": webhook_port},
    )


async def unapplied(db: Database) -> int:
    query = select(func.count()).select_from(delivery_events).where(delivery_events.c.applied.is_(None))
    async with db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def scenario(database_url: str, label: str, contacts: int, *, receiving: bool) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="watui-apply-bench-"))  # the contacts file
    port, webhook_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{webhook_port}/webhook"
    extra = ["--webhook-url", url, *WEBHOOK_ARGS] if receiving else []
    with MockProcess(rate_limit=RATE, latency=(0.1, 0.3), port=port, extra=extra) as mock:
        settings = settings_for(database_url, mock.base_url, webhook_port)
        campaign_id = await make_campaign(settings, workdir, contacts, f"apply-{label}")
        async with Database(database_url) as db:
            receiver = applying_receiver(db, settings)
            if receiving:
                await receiver.start()
            try:
                async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                    sender = CampaignSender(db, client, settings, campaign_id)
                    wall, cpu, _ = await timed(sender.run)
                ended = time.monotonic()
                while time.monotonic() - ended < CATCH_UP_LIMIT:
                    waiting = mock.stats()["webhooks"]["waiting"]
                    if waiting == 0 and await unapplied(db) == 0:
                        break
                    await asyncio.sleep(0.2)
                catch_up = time.monotonic() - ended
            finally:
                await receiver.stop()
            applier = receiver.applier.stats() if receiver.applier else None
            campaign = await campaign_row(db, campaign_id)
        arrivals = mock.arrivals()
        achieved = span_rate(arrivals)
        stats = mock.stats()
        accepted = stats.get("accepted", 0)
        throttled = stats.get("errors", {}).get("130429", 0)
    assert applier is not None
    name = "send 1,000/s + receiver" if receiving else "send 1,000/s (control)"
    ratio, statuses = achieved / RATE, 3 * accepted if receiving else 0
    counted = campaign.delivered == campaign.read == (accepted if receiving else 0)
    return [
        Row(name, label, "achieved/allowed (at the API)", ratio, ">= 0.98", ratio >= 0.98),
        # One 130429 is retried seconds later, after the others: it stretches the span above.
        Row(name, label, "130429 answers", throttled, "= 0", throttled == 0),
        # Where a shortfall happened: a 130429's back-off, or slots lost to the loop's stalls.
        Row(name, label, "slowest whole second at the API", slowest_second(arrivals), "", None),
        Row(name, label, "process cores while sending", cpu / wall, "", None),
        Row(name, label, "process CPU s per 1,000 msg", cpu / max(accepted, 1) * 1000, "", None),
        Row(name, label, "statuses applied", applier.applied, f"= {statuses}", applier.applied == statuses),
        Row(name, label, "applier lag p50 ms", applier.lag_p50_ms or 0.0, "", None),
        Row(name, label, "applier lag p99 ms", applier.lag_p99_ms or 0.0, "", None),
        Row(name, label, "all applied, s after last send", catch_up, "", None),
        Row(name, label, "delivered = read = accepted", float(counted), "= 1", counted),
    ]


def slowest_second(arrivals: list[float]) -> int:
    """The fewest arrivals in any whole second after the first arrival (the last, partial
    second left out)."""
    if len(arrivals) < 2:
        return 0
    counts = [0] * int(arrivals[-1] - arrivals[0])
    for at in arrivals:
        second = int(at - arrivals[0])
        if second < len(counts):
            counts[second] += 1
    return min(counts, default=0)


async def main_async(args: argparse.Namespace) -> None:
    contacts = 5_000 if args.quick else 20_000
    rows: list[Row] = []
    with bench_databases("watui-apply-bench-", sqlite_only=args.sqlite_only) as databases:
        for label, url in databases:
            rows += await scenario(url, label, contacts, receiving=not args.without_receiver)
    print_table(rows)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    use_fast_event_loop()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--without-receiver", action="store_true",
                        help="the same sending with no receiver and no webhooks: the control")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
