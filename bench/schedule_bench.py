"""Send-window benchmark: what a campaign with a send window costs at import (each recipient's
zone key from phonenumbers) and at claim time (``tz IN (open zones)``), on SQLite and
PostgreSQL.

Run: ``python -m bench.schedule_bench [--rows N] [--sqlite-only]``. The contacts put the closed
zones' rows first (the worst case: a claim's index scan passes them all before reaching rows of
an open zone). Prints rows/s of the import with and without a window, and the mean time of a
claim of 250 rows with and without the zone filter.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pgserver import PostgresServer  # noqa: E402
from watui.storage import claims  # noqa: E402
from watui.storage.contacts import ContactsSource  # noqa: E402
from watui.storage.creation import NewStep, create_campaign  # noqa: E402
from watui.storage.database import Database  # noqa: E402
from watui.storage.timing import zone_keys  # noqa: E402

CLAIM_ROWS = 250
CLAIMS = 20
#: (first number, zones): Chicago and Tokyo closed, Madrid open, in this order in the file.
BLOCKS = (("+131255", "America/Chicago"), ("+8131", "Asia/Tokyo"), ("+34912", "Europe/Madrid"))


def write_contacts(path: Path, rows: int) -> None:
    per_block = rows // len(BLOCKS)
    with path.open("w") as handle:
        handle.write("phone,name\n")
        for prefix, _ in BLOCKS:
            width = 12 - len(prefix)  # all three are 11 digits after the +
            for index in range(per_block):
                handle.write(f"{prefix}{index:0{width}d},N\n")


async def import_seconds(url: str, contacts: Path, name: str, window: str | None) -> tuple[float, int]:
    async with Database(url) as db:
        started = time.perf_counter()
        created = await create_campaign(
            db, name, [NewStep("welcome", "en_US", ContactsSource(contacts, body_params=("name",)))],
            send_window=window,
        )
        return time.perf_counter() - started, created.queued


async def claim_ms(url: str, name: str, zoned: bool) -> float:
    async with Database(url) as db:
        from watui.storage.campaigns import get_campaign

        campaign = await get_campaign(db, name)
        step = await claims.current_step(db, campaign.id)
        assert step is not None
        keys = await zone_keys(db, campaign.id)
        zones = [key for key in keys if key == "Europe/Madrid"] if zoned else None
        started = time.perf_counter()
        claimed = 0
        for _ in range(CLAIMS):
            claimed += len(await claims.claim(db, step.id, "bench", CLAIM_ROWS,
                                              lease_seconds=600, now=time.time(), zones=zones))
        assert claimed == CLAIMS * CLAIM_ROWS, claimed
        return (time.perf_counter() - started) / CLAIMS * 1000


async def measure(url: str, contacts: Path, rows: int) -> None:
    plain, queued = await import_seconds(url, contacts, "plain", None)
    windowed, _ = await import_seconds(url, contacts, "windowed", "09:00-20:00")
    print(f"  import {queued:,} rows: {queued / plain:,.0f} rows/s without a window, "
          f"{queued / windowed:,.0f} rows/s with one (zone keys)")
    print(f"  claim of {CLAIM_ROWS}: {await claim_ms(url, 'plain', False):.1f} ms without zones; "
          f"{await claim_ms(url, 'windowed', True):.1f} ms of the open zone, "
          f"{rows * 2 // 3:,} closed rows ahead of them")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        contacts = Path(folder) / "contacts.csv"
        write_contacts(contacts, args.rows)
        print("SQLite")
        asyncio.run(measure(f"sqlite+aiosqlite:///{folder}/bench.db", contacts, args.rows))
        if not args.sqlite_only:
            server = PostgresServer().start()
            try:
                print("PostgreSQL")
                asyncio.run(measure(server.new_database(), contacts, args.rows))
            finally:
                server.cleanup()


if __name__ == "__main__":
    main()
