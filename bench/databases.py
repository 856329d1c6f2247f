"""The databases a benchmark runs on: a SQLite file in a scratch directory, and a throwaway
PostgreSQL server (tests/pgserver.py) started for the run and removed after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def bench_database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of a fresh ``kind`` ("sqlite" or "postgres") database, gone afterwards."""
    if kind != "postgres":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.new_database()
    finally:
        server.cleanup()
