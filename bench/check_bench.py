"""Dry-run benchmark: ``campaign check`` of a 1,000,000-recipient campaign, and the 24-hour
limit's reservation per claim, on SQLite and PostgreSQL (issue 18).

Run: ``python -m bench.check_bench [--rows N] [--sqlite-only]``. Seeds a draft campaign in bulk
(numbers in four countries, 1% rejects), then times the dry run with a rate card, without and
with a messaging limit (which adds the query for numbers new to the window), against the target
(<= 10 s). Then fills the window with 100,000 numbers and times ``messaging_limit.admit`` for
claims of 250 rows (what 1,000 msg/s claims four times a second): the cost of the limit on the
hot path, as a share of one core at 1,000 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from bench.databases import bench_database  # noqa: E402
from tests.factories import make_campaign  # noqa: E402
from watui.rules import MESSAGING_LIMIT_WINDOW_S  # noqa: E402
from watui.service.checks import check_campaign  # noqa: E402
from watui.settings import Settings  # noqa: E402
from watui.storage import Database, claims, messaging_limit  # noqa: E402
from watui.storage.schema import messaged_phones, recipients, rejects, steps  # noqa: E402

TARGET_SECONDS = 10.0
COUNTRIES = ("+1415", "+3461", "+4477", "+4915")  # US, Spain, UK, Germany
CARD = "calling_code,category,price,currency\n*,marketing,0.05,EUR\n34,marketing,0.06,EUR\n"
WINDOW = 100_000
CLAIM = 250


async def seed(db: Database, rows: int) -> int:
    campaign_id = await make_campaign(db, "bench", recipients_per_step=0)
    columns = ("campaign_id", "step_id", "line_no", "phone", "params", "status", "attempts",
               "next_attempt_at", "possibly_sent", "updated_at")
    async with db.begin() as conn:
        step_id = (await conn.execute(
            steps.select().with_only_columns(steps.c.id).where(steps.c.campaign_id == campaign_id)
        )).scalar_one()
        write = await db.kind.bulk_inserter(conn, columns)
        params = json.dumps({"body": ["x"]})
        for start in range(0, rows, 100_000):
            await write([
                (campaign_id, step_id, n + 2, f"{COUNTRIES[n % 4]}{n:07d}", params, "queued", 0, 0.0,
                 0, 0.0)
                for n in range(start, min(start + 100_000, rows))
            ])
        await conn.execute(insert(rejects), [
            {"campaign_id": campaign_id, "step_id": step_id, "line_no": rows + n,
             "phone_raw": "x", "reason": "duplicate of line 2" if n % 2 else "not a phone number"}
            for n in range(rows // 100)
        ])
    await db.refresh_statistics([recipients])
    return step_id


async def time_checks(db: Database, card: Path) -> list[tuple[str, float, int]]:
    found = []
    for limit in ("unlimited", 100_000):
        settings = Settings(database_url=db.url, whatsapp={"messaging_limit": limit})
        started = time.perf_counter()
        check = await check_campaign(db, settings, "bench", card, time.time())
        found.append((f"check, limit {limit}", time.perf_counter() - started, check.will_send))
    return found


async def time_admit(db: Database, step_id: int) -> tuple[float, float]:
    """Median and p95 ms of one admit of a CLAIM-row claim with WINDOW numbers in the window."""
    now = time.time()
    async with db.begin() as conn:
        await conn.execute(insert(messaged_phones), [
            {"phone": f"+99{n:09d}", "last_at": now - MESSAGING_LIMIT_WINDOW_S / 2} for n in range(WINDOW)
        ])
    took = []
    for _ in range(40):
        claimed = await claims.claim(db, step_id, "bench", CLAIM, lease_seconds=60, now=time.time())
        started = time.perf_counter()
        await messaging_limit.admit(db, claimed, 250_000, "bench", time.time())
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95)]


async def run(url: str, rows: int, card: Path) -> bool:
    async with Database(url) as db:
        started = time.perf_counter()
        step_id = await seed(db, rows)
        print(f"  seed {rows:,} recipients: {time.perf_counter() - started:.1f} s")
        ok = True
        for label, seconds, will_send in await time_checks(db, card):
            good = seconds <= TARGET_SECONDS and will_send == rows
            ok &= good
            print(f"  {label:<26}{seconds:>8.2f} s  {will_send:>11,} to send  "
                  f"{'PASS' if good else 'FAIL'}")
        median, p95 = await time_admit(db, step_id)
        share = median * (1000 / CLAIM) / 1000
        print(f"  admit {CLAIM} rows, {WINDOW:,} in window: median {median:.1f} ms, p95 {p95:.1f} ms"
              f" (~{share:.2f} core at 1,000 msg/s)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="watui-check-bench-") as tmp:
        card = Path(tmp) / "card.csv"
        card.write_text(CARD)
        for kind in ["sqlite"] if args.sqlite_only else ["sqlite", "postgres"]:
            print(f"{kind} (target: check <= {TARGET_SECONDS:.0f} s)")
            with bench_database(kind, Path(tmp)) as url:
                ok &= asyncio.run(run(url, args.rows, card))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
