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


# --- Terminal UI snapshots -----------------------------------------------------------------
# Snapshots live in the top-level snapshots/<test file stem>/ folder, not tests/__snapshots__/:
# pytest-textual-snapshot looks SVGImageExtension up when snap_compare runs, so swapping the
# module attribute for a subclass with our own dirname is enough.
import pytest_textual_snapshot  # noqa: E402

SNAPSHOTS_DIR = Path(__file__).resolve().parent.parent / "snapshots"


class _TopLevelSvgExtension(pytest_textual_snapshot.SVGImageExtension):
    @classmethod
    def dirname(cls, *, test_location) -> str:  # type: ignore[no-untyped-def, override]
        return str(SNAPSHOTS_DIR / Path(test_location.filepath).stem)


pytest_textual_snapshot.SVGImageExtension = _TopLevelSvgExtension  # type: ignore[misc]


@pytest.fixture
def tui_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    """No animations, a steady cursor and UTC times, so screens render the same every run."""
    import time

    import textual.constants
    from textual.widgets import Input

    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
