"""``Dialect.among``: ``column IN ids`` with the ids as one parameter where the database can,
the same rows as a plain IN list on every database."""

from __future__ import annotations

from sqlalchemy import select

from watui.storage.database import Database
from watui.storage.dialects import Dialect
from watui.storage.schema import delivery_events


async def test_among_finds_the_rows_a_plain_in_list_finds(database: Database) -> None:
    async with database.begin() as conn:
        await conn.execute(delivery_events.insert(), [
            {"id": number, "wamid": f"wamid.{number}", "status": "sent", "timestamp": 1.0,
             "received_at": 1.0}
            for number in range(1, 3_001)
        ])  # fmt: skip
    wanted = set(range(2, 3_001, 3)) | {99_999}  # 1,000 of them, and one that is not there
    found: dict[str, set[int]] = {}
    async with database.engine.connect() as conn:
        for name, kind in (("dialect", database.kind), ("plain", Dialect())):
            for ids in (wanted, set()):
                query = select(delivery_events.c.id).where(kind.among(delivery_events.c.id, ids))
                found[f"{name}:{len(ids)}"] = set((await conn.execute(query)).scalars())
    assert found["dialect:1001"] == found["plain:1001"] == wanted - {99_999}
    assert found["dialect:0"] == found["plain:0"] == set()
