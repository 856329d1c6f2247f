"""Export benchmark: 1,000,000 recipients with their deliveries rows, exported by a real
``watui export`` process as CSV and as JSON Lines, on SQLite and PostgreSQL (issue 16).

Run: ``python -m bench.export_bench [--rows N] [--sqlite-only]``. Seeds the campaign in bulk
(tests/delivery_seed.py: 40% read, 40% delivered, 10% accepted, 5% failed at the send, 2% after
acceptance, 3% queued), then times each export in its own process and reads that process's
peak RSS, against the targets (<= 20 s, <= 200 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import bench_database  # noqa: E402
from tests.delivery_seed import seed_big_campaign  # noqa: E402
from watui.storage import Database  # noqa: E402

TARGET_SECONDS = 20.0
TARGET_RSS_MB = 200.0


async def _seed(url: str, rows: int) -> None:
    async with Database(url) as db:
        await seed_big_campaign(db, "bench", rows)


def seed(url: str, rows: int) -> float:
    """Seed in a process of its own, so that this one stays small: a child forked from a big
    parent is charged the parent's pages in its peak RSS."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.export_bench", "--seed", url, "--rows", str(rows)],
                   check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    return time.perf_counter() - started


def export(url: str, file_format: str, output: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, lines) of one ``watui export`` process (its own rusage)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "watui", "--database-url", url, "export", "bench",
         "--format", file_format, "--output", str(output)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=output.parent,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"watui export failed with {process.returncode}")
    with output.open("rb") as handle:
        lines = sum(1 for _ in handle)
    return seconds, usage.ru_maxrss / 1024, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--seed", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        asyncio.run(_seed(args.seed, args.rows))
        return 0
    ok = True
    print(f"{'database':<11}{'format':<7}{'rows':>11}{'seconds':>9}{'peak RSS MB':>13}  result"
          f"  (targets <= {TARGET_SECONDS:.0f} s, <= {TARGET_RSS_MB:.0f} MB)")
    with tempfile.TemporaryDirectory(prefix="watui-export-bench-") as tmp:
        kinds = ["sqlite"] if args.sqlite_only else ["sqlite", "postgres"]
        for kind in kinds:
            with bench_database(kind, Path(tmp)) as url:
                seeded = seed(url, args.rows)
                print(f"{kind:<11}{'seed':<7}{args.rows:>11,}{seeded:>9.1f}")
                for file_format in ("csv", "jsonl"):
                    output = Path(tmp) / f"{kind}.{file_format}"
                    seconds, rss, lines = export(url, file_format, output)
                    header = 1 if file_format == "csv" else 0
                    good = (lines - header == args.rows and seconds <= TARGET_SECONDS
                            and rss <= TARGET_RSS_MB)
                    ok &= good
                    print(f"{kind:<11}{file_format:<7}{lines - header:>11,}{seconds:>9.1f}"
                          f"{rss:>13.0f}  {'PASS' if good else 'FAIL'}")
                    output.unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
