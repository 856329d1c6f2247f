"""SQLite: a whole batch of the send queue in one statement, its rows as one JSON array.

Python's sqlite3 lets go of the GIL for every row it steps through and takes it back after:
once for each row a query returns, and twice for each row of an executemany. aiosqlite runs the
queries in a thread, so while the event loop's thread keeps the CPU busy (sending fast), taking
the GIL back costs up to a switch interval (5 ms) each time. A flush of 500 outcomes and a
claim of 500 rows then took 50-100 ms each, and claiming could not keep up with sending.

Here a claim reads its rows as one JSON value (one row), and a flush writes its updates and its
attempt rows from one JSON parameter each (one step per statement). SQLite's JSON functions do
the per-row work in C. PostgreSQL (asyncpg, no thread) keeps the plain statements.

Needs UPDATE ... FROM (SQLite 3.33) and the JSON functions; AVAILABLE says whether this
Python's SQLite has both, and the callers fall back to the plain statements when it has not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection


def _sqlite_can_do_it() -> bool:
    if sqlite3.sqlite_version_info < (3, 33, 0):
        return False
    try:
        with sqlite3.connect(":memory:") as probe:
            probe.execute("SELECT json_group_array(value) FROM json_each('[1]')").fetchone()
    except sqlite3.Error:
        return False
    return True


AVAILABLE = _sqlite_can_do_it()

_CLAIM_READ = """
SELECT json_group_array(json_array(id, phone, json(params), attempts)) FROM (
    SELECT id, phone, params, attempts FROM recipients
    WHERE step_id = ? AND status = ? AND next_attempt_at <= ?
    ORDER BY next_attempt_at LIMIT ?)
"""
_CLAIM_MARK = """
UPDATE recipients SET status = 'sending', lease_owner = ?, lease_expires_at = ?, updated_at = ?
WHERE id IN (SELECT value FROM json_each(?)) AND status = ?
"""


class ClaimRaced(OperationalError):
    """Another process changed rows between our read and our write: the claim is undone, and
    the claimer tries again as after any database error."""

    def __init__(self, detail: str) -> None:
        super().__init__(_CLAIM_MARK, None, sqlite3.OperationalError(detail))


async def claim_rows(
    conn: AsyncConnection, *, step_id: int, status: str, limit: int, owner: str,
    expires: float, now: float,
) -> list[list[Any]]:
    """Lease up to ``limit`` due rows of one status; returns [id, phone, params, attempts] each.

    Read, then mark only the rows read that are still in ``status``. Within this process
    writers take turns (Database.begin); if another process took some of them in between, the
    count does not match and the claim is undone: a row is never leased twice."""
    found = (await conn.exec_driver_sql(_CLAIM_READ, (step_id, status, now, limit))).scalar()
    rows: list[list[Any]] = orjson.loads(found or "[]")
    if not rows:
        return rows
    ids = orjson.dumps([row[0] for row in rows]).decode()
    result = await conn.exec_driver_sql(_CLAIM_MARK, (owner, expires, now, ids, status))
    if result.rowcount != len(rows):
        raise ClaimRaced(f"marked {result.rowcount} of {len(rows)} rows read: another process raced")
    return rows


_OWNED = """
SELECT group_concat(id) FROM recipients
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'sending' AND lease_owner = ?
"""


async def still_owned(conn: AsyncConnection, owner: str, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` are still leased by ``owner`` (one row back, whatever their number)."""
    found = (await conn.exec_driver_sql(_OWNED, (orjson.dumps(list(ids)).decode(), owner))).scalar()
    return {int(text) for text in found.split(",")} if found else set()


def _json_columns(names: Sequence[str]) -> str:
    """``json_extract(value, '$[0]') AS first, ...``: the columns of one json_each row."""
    return ", ".join(f"json_extract(value, '$[{index}]') AS {name}" for index, name in enumerate(names))


#: The outcome of each row, in this order.
RECORD_FIELDS = ("id", "status", "attempts", "next_at", "wamid", "code", "title", "maybe_sent",
                 "sent_at")
_RECORD = f"""
UPDATE recipients SET
    status = o.status, attempts = o.attempts, next_attempt_at = o.next_at, wamid = o.wamid,
    last_error_code = o.code, last_error_title = o.title, possibly_sent = o.maybe_sent,
    sent_at = o.sent_at, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
FROM (SELECT {_json_columns(RECORD_FIELDS)} FROM json_each(?)) AS o
WHERE recipients.id = o.id
"""


async def record(conn: AsyncConnection, rows: Sequence[Sequence[Any]], now: float) -> None:
    """Write each row's outcome (values in the order of RECORD_FIELDS) in one statement."""
    await conn.exec_driver_sql(_RECORD, (now, orjson.dumps(rows).decode()))


class JsonInsert:
    """INSERT INTO ``table`` the rows of one JSON parameter (values in the order of ``columns``)."""

    def __init__(self, table: str, columns: Sequence[str]) -> None:
        self._statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {_json_columns(columns)} FROM json_each(?)"
        )

    async def run(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        await conn.exec_driver_sql(self._statement, (orjson.dumps(rows).decode(),))
