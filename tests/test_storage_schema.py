"""The schema is created, versioned and migrated, and a newer database is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.ext.asyncio import create_async_engine

from watui.storage import SCHEMA_VERSION, Database, StorageError
from watui.storage.schema import campaigns, metadata, schema_info


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


def _v1_metadata() -> MetaData:
    """The tables as watui wrote them at schema version 1: campaigns without the retry policy
    columns (a frozen copy of its v1 definition), every other table as it is now."""
    v1 = MetaData()
    for table in metadata.sorted_tables:
        if table.name != "campaigns":
            table.to_metadata(v1)
    Table(
        "campaigns",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(200), nullable=False, unique=True),
        Column("status", String(16), nullable=False),
        Column("rate", Float, nullable=True),
        Column("current_step", Integer, nullable=False),
        *(Column(counter, Integer, nullable=False)
          for counter in ("total", "sent", "failed", "invalid", "skipped", "in_doubt")),
        Column("pause_reason", Text, nullable=True),
        Column("created_at", Float, nullable=False),
        Column("started_at", Float, nullable=True),
        Column("finished_at", Float, nullable=True),
        Column("updated_at", Float, nullable=False),
    )  # fmt: skip
    return v1


async def _write_v1_database(url: str) -> None:
    """A database as the v1 watui left it: its tables, schema_info at 1 and one campaign."""
    v1 = _v1_metadata()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(v1.create_all)
            await conn.execute(insert(v1.tables["schema_info"]).values(
                id=1, version=1, written_by="0.1.0"
            ))
            await conn.execute(insert(v1.tables["campaigns"]).values(
                name="old", status="paused", rate=40.0, current_step=0, total=3, sent=1, failed=0,
                invalid=0, skipped=0, in_doubt=0, pause_reason="by a person", created_at=1.0,
                updated_at=2.0,
            ))  # fmt: skip
    finally:
        await engine.dispose()


async def test_version_1_database_gains_the_retry_policy_columns(database_url: str) -> None:
    await _write_v1_database(database_url)
    db = await Database(database_url).open()
    try:
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync_conn: {c["name"] for c in inspect(sync_conn).get_columns("campaigns")}
            )
            info = (await conn.execute(select(schema_info))).one()
            old = (await conn.execute(select(campaigns))).one()
        assert {"max_retries", "retry_delays"} <= columns
        assert info.version == SCHEMA_VERSION
        assert (old.name, old.status, old.rate, old.sent, old.pause_reason) == (
            "old", "paused", 40.0, 1, "by a person"
        )
        assert (old.max_retries, old.retry_delays) == (None, None)  # None: the settings' policy
        async with db.engine.begin() as conn:  # the new columns take values
            await conn.execute(update(campaigns).values(max_retries=0, retry_delays="[1.0]"))
    finally:
        await db.close()
    reopened = await Database(database_url).open()  # a second open has nothing left to add
    await reopened.close()
