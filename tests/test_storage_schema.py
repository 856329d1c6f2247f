"""The schema is created, versioned, and a newer database is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from watui.storage import SCHEMA_VERSION, Database, StorageError
from watui.storage.schema import schema_info


async def test_open_creates_schema_and_records_version(database: Database) -> None:
    async with database.engine.connect() as conn:
        version = (await conn.execute(select(schema_info.c.version))).scalar_one()
    assert version == SCHEMA_VERSION


async def test_reopening_keeps_the_version(database_url: str) -> None:
    for _ in range(2):
        db = await Database(database_url).open()
        async with db.engine.connect() as conn:
            rows = (await conn.execute(select(schema_info))).all()
        await db.close()
        assert len(rows) == 1


async def test_database_from_newer_watui_is_refused(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(update(schema_info).values(version=SCHEMA_VERSION + 5))
    with pytest.raises(StorageError, match="newer watui"):
        await Database(database.url).open()


async def test_sqlite_file_is_private(sqlite_url: str, tmp_path) -> None:
    db = await Database(sqlite_url).open()
    await db.close()
    mode = (tmp_path / "watui.db").stat().st_mode & 0o777
    assert mode == 0o600
