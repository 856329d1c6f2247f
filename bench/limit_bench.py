"""The 24-hour limit on the hot path: 1,000 msg/s unlimited and with a 100,000 limit, side by
side in one run (engine_bench's paced scenario: the mock in its own process, 100-300 ms answers).

Run: ``python -m bench.limit_bench [--contacts N] [--sqlite-only] [--rounds N]``. Each round runs
both variants on each database, alternating, so that the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import engine_bench  # noqa: E402
from bench.databases import bench_database  # noqa: E402
from watui.eventloop import use_fast_event_loop  # noqa: E402
from watui.settings import Settings  # noqa: E402

LIMIT = 100_000
SHOWN = ("achieved/allowed (at the API)", "130429 answers", "engine cores")


def limited_settings_for(*args: Any, **kwargs: Any) -> Settings:
    """engine_bench's settings, with the messaging limit set."""
    settings = _plain_settings_for(*args, **kwargs)
    settings.whatsapp.messaging_limit = LIMIT
    return settings


_plain_settings_for = engine_bench.settings_for


async def one(url: str, kind: str, workdir: Path, contacts: int, limited: bool, round_no: int) -> None:
    engine_bench.settings_for = limited_settings_for if limited else _plain_settings_for
    label = f"r{round_no}-{'limited' if limited else 'unlimited'}"
    rows = await engine_bench.paced_scenario(url, kind, workdir, rate=1000, contacts=contacts,
                                             label=label)
    figures = {row.figure: row.value for row in rows if row.figure in SHOWN}
    shown = "  ".join(f"{name} {value:.3f}" for name, value in figures.items())
    print(f"{kind:<9}{'limit ' + format(LIMIT, ',') if limited else 'unlimited':<15}{shown}", flush=True)


def main() -> int:
    use_fast_event_loop()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="watui-limit-bench-") as tmp:
        for kind in ["sqlite"] if args.sqlite_only else ["sqlite", "postgres"]:
            with bench_database(kind, Path(tmp)) as url:
                for round_no in range(args.rounds):
                    for limited in (False, True):
                        asyncio.run(one(url, kind, Path(tmp), args.contacts, limited, round_no))
    return 0


if __name__ == "__main__":
    sys.exit(main())
