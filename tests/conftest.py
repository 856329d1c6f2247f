"""Shared fixtures: a real SQLite file per test, a real PostgreSQL server per session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.pgserver import PostgresServer, PostgresUnavailable
from watui.storage import Database

# Tests must never read the developer's own settings or database.
os.environ.pop("WATUI_CONFIG", None)
for _key in list(os.environ):
    if _key.startswith("WATUI_"):
        del os.environ[_key]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not available: {error}")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'watui.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a real SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'watui.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = await Database(database_url).open()
    try:
        yield db
    finally:
        await db.close()
