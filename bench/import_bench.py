"""Import benchmark: 1,000,000 contacts into SQLite, against the targets of issue 2.

Run: ``python bench/import_bench.py [--rows N] [--postgres] [--senders N]``. Generates a CSV in a temp dir
(E.164 numbers, two body parameters, a few bad rows), imports it with ``create_campaign`` into a
fresh SQLite file (or a throwaway PostgreSQL), with ``--senders`` pinning each recipient to one of
N numbers, and prints rows, seconds, rows/s and peak RSS
against the targets (<= 30 s, <= 200 MB; the targets are for SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watui.storage import Database
from watui.storage.contacts import ContactsSource
from watui.storage.creation import NewStep, create_campaign

TARGET_SECONDS = 30.0
TARGET_RSS_MB = 200.0
#: Spanish mobile numbers: +34 6xx xxx xxx gives 100M distinct valid numbers to sample from.
_PREFIX = "+346"


def write_contacts(path: Path, rows: int, seed: int = 7) -> int:
    """A realistic contacts file; every 10,000th row is an invalid number. Returns bad rows."""
    # i * a prime mod 10**8 is a permutation: distinct numbers without holding a list of them.
    offset = random.Random(seed).randrange(10**8)
    bad = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("phone,first_name,order\n")
        for i in range(rows):
            number = (offset + i * 7_919_777) % 10**8
            if i % 10_000 == 9_999:
                handle.write(f"+12,Bad{i},A-{i}\n")
                bad += 1
            else:
                handle.write(f"{_PREFIX}{number:08d},Name{i},A-{i}\n")
    return bad


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_import(
    csv_path: Path, database_url: str, senders: list[str] | None = None
) -> tuple[int, int, float]:
    db = await Database(database_url).open()
    try:
        source = ContactsSource(path=csv_path, body_params=("first_name", "order"))
        started = time.perf_counter()
        created = await create_campaign(
            db, "bench", [NewStep("welcome", "en_US", source)], senders=senders
        )
        elapsed = time.perf_counter() - started
    finally:
        await db.close()
    return created.queued, created.invalid + created.duplicates, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", action="store_true", help="import into a throwaway PostgreSQL instead"
    )
    parser.add_argument(
        "--senders", type=int, default=0, help="pin recipients to N sender numbers (0: none)"
    )
    args = parser.parse_args()
    senders = [str(106540352242922 + i) for i in range(args.senders)] or None
    with tempfile.TemporaryDirectory(prefix="watui-bench-") as tmp:
        csv_path = Path(tmp) / "contacts.csv"
        expected_bad = write_contacts(csv_path, args.rows)
        server = None
        if args.postgres:
            from tests.pgserver import PostgresServer

            server = PostgresServer().start()
            url = server.new_database()
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        rss_before = peak_rss_mb()
        try:
            queued, rejected, seconds = asyncio.run(run_import(csv_path, url, senders))
        finally:
            if server is not None:
                server.cleanup()
        rss = peak_rss_mb()
    rate = args.rows / seconds
    print(f"{'figure':<22}{'measured':>14}{'target':>12}  result")
    print(f"{'rows':<22}{args.rows:>14,}{'':>12}")
    print(
        f"{'queued / rejected':<22}{f'{queued:,} / {rejected:,}':>14}{'':>12}  "
        f"{'PASS' if rejected == expected_bad and queued + rejected == args.rows else 'FAIL'}"
    )
    print(
        f"{'seconds':<22}{seconds:>14.1f}{f'<= {TARGET_SECONDS:.0f}':>12}  "
        f"{'PASS' if seconds <= TARGET_SECONDS else 'FAIL'}"
    )
    print(f"{'rows/s':<22}{rate:>14,.0f}{'':>12}")
    print(
        f"{'peak RSS MB':<22}{rss:>14.0f}{f'<= {TARGET_RSS_MB:.0f}':>12}  "
        f"{'PASS' if rss <= TARGET_RSS_MB else 'FAIL'}  (before import: {rss_before:.0f})"
    )
    return 0 if seconds <= TARGET_SECONDS and rss <= TARGET_RSS_MB else 1


if __name__ == "__main__":
    sys.exit(main())
