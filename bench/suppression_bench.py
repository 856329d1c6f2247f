"""Suppression benchmark: what the claim-time check costs with 1,000,000 suppressed numbers.

    python -m bench.suppression_bench                 # SQLite and PostgreSQL
    python -m bench.suppression_bench --sqlite-only
    python -m bench.suppression_bench --with-run      # also a 1,000 msg/s run (10,000 messages)

Fills the list with 1,000,000 numbers (a third marketing-only), then times the check the
engine runs after each claim (``storage.suppressions.skip_suppressed_claims``) on 250-row
batches of a MARKETING step: none of the batch suppressed (the usual case: the import rejected
them already), and one suppressed in each batch (a row is skipped, in its own transaction).
``--with-run`` then sends a 10,000-recipient campaign at 1,000 msg/s over that list through
the mock (in its own process, 100-300 ms answers), as bench.engine_bench does.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text, update

from bench.engine_bench import paced_scenario
from watui.eventloop import use_fast_event_loop
from watui.storage import claims
from watui.storage.database import Database
from watui.storage.schema import campaigns, recipients, steps, templates
from watui.storage.sending.outcomes import ClaimedRecipient
from watui.storage.suppressions import skip_suppressed_claims

SUPPRESSED = 1_000_000
BATCH = 250
BATCHES = 200
OWNER = "bench"

#: One statement that writes the list in the database itself: "+3470" and 7 digits.
_FILL = {
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
        INSERT INTO suppressions (phone, scope, reason, created_at)
        SELECT '+3470' || printf('%07d', i), CASE i % 3 WHEN 0 THEN 'marketing' ELSE 'all' END,
               'imported', 0 FROM n""",
    "postgresql": """
        INSERT INTO suppressions (phone, scope, reason, created_at)
        SELECT '+3470' || lpad(i::text, 7, '0'), CASE i % 3 WHEN 0 THEN 'marketing' ELSE 'all' END,
               'imported', 0 FROM generate_series(0, :count - 1) AS i""",
}


def suppressed_phone(index: int) -> str:
    return f"+3470{index:07d}"


async def fill(db: Database) -> float:
    started = time.perf_counter()
    async with db.begin() as conn:
        await conn.execute(text(_FILL[db.dialect]), {"count": SUPPRESSED})
    if db.dialect == "postgresql":  # as autovacuum would, but now rather than during a run
        autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE suppressions"))
    return time.perf_counter() - started


async def marketing_step(db: Database, rows: int) -> int:
    """A MARKETING step whose ``rows`` recipients are claimed by OWNER; every 250th number is
    suppressed (so each batch of the second pass holds one)."""
    now = time.time()
    async with db.begin() as conn:
        await conn.execute(insert(templates).values(
            name="promo", language="en_US", status="APPROVED", category="MARKETING",
            body_param_count=0, synced_at=now))  # fmt: skip
        campaign_id = (await conn.execute(insert(campaigns).values(
            name="bench", status="running", total=rows, created_at=now, updated_at=now,
        ).returning(campaigns.c.id))).scalar_one()  # fmt: skip
        step_id = (await conn.execute(insert(steps).values(
            campaign_id=campaign_id, position=0, template_name="promo", language="en_US",
            mapping=json.dumps({"body": [], "header": None, "buttons": []}), total=rows,
        ).returning(steps.c.id))).scalar_one()  # fmt: skip
        await conn.execute(insert(recipients), [
            {"campaign_id": campaign_id, "step_id": step_id, "line_no": i + 2, "phone": _phone(i),
             "params": "{}", "status": "sending", "lease_owner": OWNER, "attempts": 0,
             "next_attempt_at": 0.0}
            for i in range(rows)
        ])  # fmt: skip
    return int(step_id)


def _phone(index: int) -> str:
    """Recipient ``index``: a suppressed number (all templates) every 250th, else a free one."""
    return suppressed_phone(index * 3 + 1) if index % BATCH == 0 else f"+3461{index:07d}"


async def time_checks(db: Database, step_id: int, *, with_hits: bool) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (every thread of this process: aiosqlite runs SQLite in its own)
    of each batch's check."""
    async with db.engine.connect() as conn:
        found = await conn.execute(select(recipients.c.id, recipients.c.phone).order_by(recipients.c.id))
        rows = [ClaimedRecipient(rid, phone, {"body": []}, 0) for rid, phone in found]
    times, cpu = [], []
    for start in range(0, BATCHES * BATCH, BATCH):
        batch = rows[start : start + BATCH]
        if not with_hits:
            batch = [row for row in batch if not row.phone.startswith("+3470")]
        started, cpu_started = time.perf_counter(), time.process_time()
        kept = await skip_suppressed_claims(db, step_id, OWNER, batch, now=time.time())
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert len(kept) == BATCH - 1 if with_hits else len(kept) == len(batch)
    async with db.begin() as conn:  # for the next pass
        await conn.execute(update(recipients).values(status="sending", lease_owner=OWNER))
    return times, cpu


def describe(label: str, measured: tuple[list[float], list[float]]) -> str:
    times, cpu = measured
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(0.99 * (len(ordered) - 1))] * 1000
    cpu_ms = statistics.mean(cpu) * 1000
    return (f"  {label:<34} wall p50 {p50:6.2f} ms  p99 {p99:6.2f} ms;  CPU {cpu_ms:5.2f} ms a "
            f"batch = {cpu_ms * 1000 / BATCH:4.1f} us a message")  # fmt: skip


async def bench(database_url: str, label: str) -> None:
    async with Database(database_url) as db:
        seconds = await fill(db)
        step_id = await marketing_step(db, BATCHES * BATCH)
        print(f"{label}: {SUPPRESSED:,} suppressed numbers written in {seconds:.1f} s")
        print(describe("check, no number suppressed", await time_checks(db, step_id, with_hits=False)))
        print(describe("check, one suppressed (skipped)", await time_checks(db, step_id, with_hits=True)))


async def rate_run(database_url: str, label: str, workdir: Path, *, suppressed: bool) -> None:
    """10,000 messages at 1,000 msg/s: with the check over the full list, or (the control) with
    no check at all, as before the list existed."""
    if suppressed:
        async with Database(database_url) as db:
            await fill(db)
    spent: list[float] = []
    original = claims.skip_suppressed_claims

    async def timed_check(
        db: Database, step_id: int, owner: str, claimed: list[ClaimedRecipient], *, now: float
    ) -> list[ClaimedRecipient]:
        if not suppressed:
            return claimed
        started = time.perf_counter()
        try:
            return await original(db, step_id, owner, claimed, now=now)
        finally:
            spent.append(time.perf_counter() - started)

    claims.skip_suppressed_claims = timed_check
    try:
        rows = await paced_scenario(database_url, label, workdir, rate=1000, contacts=10_000,
                                    label=f"run-{'list' if suppressed else 'control'}")  # fmt: skip
    finally:
        claims.skip_suppressed_claims = original
    if suppressed:
        wall = next(row.value for row in rows if row.figure == "wall s")
        print(f"  claim checks: {len(spent)}, {sum(spent):.3f} s of wall time in all (awaited in a "
              f"busy loop; the run: {wall:.1f} s)")
    for row in rows:
        verdict = "" if row.ok is None else ("PASS" if row.ok else "FAIL")
        print(f"  {row.figure:<34} {row.value:>10,.3f}  {row.target:<18} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--with-run", action="store_true", help="also a 1,000 msg/s run")
    parser.add_argument("--run-only", action="store_true", help="only the 1,000 msg/s runs")
    args = parser.parse_args()
    use_fast_event_loop()
    with tempfile.TemporaryDirectory(prefix="watui-bench-") as tmp:
        urls = [] if args.postgres_only else [("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'check.db'}")]
        server = None
        if not args.sqlite_only:
            from tests.pgserver import PostgresServer

            server = PostgresServer().start()
            urls.append(("postgresql", server.new_database()))
        try:
            for label, url in urls if not args.run_only else ():
                asyncio.run(bench(url, label))
            if args.with_run or args.run_only:
                for (label, url), suppressed in itertools.product(urls, (False, True)):
                    fresh = server.new_database if server is not None else None
                    kind = "list" if suppressed else "control"
                    run_url = fresh() if fresh and label == "postgresql" else url.replace("check", kind)
                    listed = f"checked against {SUPPRESSED:,}" if suppressed else "no check (control)"
                    print(f"{label}: 1,000 msg/s, 10,000 messages, {listed}")
                    asyncio.run(rate_run(run_url, label, Path(tmp), suppressed=suppressed))
        finally:
            if server is not None:
                server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
