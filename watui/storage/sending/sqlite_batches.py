"""SQLite: a claim or a flush of the send queue as one call into the driver's thread.

aiosqlite runs every sqlite3 call in its own thread, and SQLAlchemy makes four such calls per
statement (cursor, execute, fetch, close). Each hand-over needs the GIL back, and while the
event loop's thread keeps the CPU busy (sending fast) that costs up to a switch interval
(5 ms). A claim was 13 hand-overs and a flush 15: under load a claim took 50-100 ms, the
batcher waited behind it for the write turn, outcomes piled up, and the run ended with a
backlog to write. Here a whole claim or flush is one function run in aiosqlite's thread
(``_execute``, what its own methods use; aiosqlite has no public call for it), inside the
transaction SQLAlchemy began: three hand-overs with the commit and the pool's reset.

Inside, each batch is one statement with its rows as one JSON value, for the same reason at
the level of rows: Python's sqlite3 lets go of the GIL for every row it steps through. A claim
reads its rows as one ``json_group_array`` value and marks them with one UPDATE over
``json_each``; a flush checks ownership with one ``group_concat`` row and writes its updates
and its attempt rows from one JSON parameter each. SQLite's JSON functions do the per-row work
in C.

Needs UPDATE ... FROM (SQLite 3.33), the JSON functions and aiosqlite's ``_execute``; AVAILABLE
says whether all are there, and the callers fall back to plain statements when not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from itertools import product
from typing import Any, TypeVar, cast

import aiosqlite
import orjson
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


def _sqlite_can_do_it() -> bool:
    if sqlite3.sqlite_version_info < (3, 33, 0) or not hasattr(aiosqlite.Connection, "_execute"):
        return False
    try:
        with sqlite3.connect(":memory:") as probe:
            probe.execute("SELECT json_group_array(value) FROM json_each('[1]')").fetchone()
    except sqlite3.Error:
        return False
    return True


AVAILABLE = _sqlite_can_do_it()


async def in_driver_thread(conn: AsyncConnection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` on the connection's sqlite3 connection, in aiosqlite's thread, inside the
    transaction ``conn`` is in. sqlite3 errors come out as SQLAlchemy's, as from a statement."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, aiosqlite.Connection)
    try:
        execute = cast("Callable[..., Awaitable[T]]", driver._execute)  # untyped in aiosqlite
        return await execute(work, driver._conn)
    except sqlite3.Error as error:
        raise DBAPIError.instance(
            getattr(work, "__name__", "batch"), None, error, sqlite3.Error
        ) from error


class ClaimRaced(OperationalError):
    """Another process changed rows between our read and our write: the claim is undone, and
    the claimer tries again as after any database error."""

    def __init__(self, detail: str) -> None:
        super().__init__(_CLAIM_MARK, None, sqlite3.OperationalError(detail))


_CLAIM_READ = """
SELECT json_group_array(json_array(id, phone, json(params), attempts)) FROM (
    SELECT id, phone, params, attempts FROM recipients
    WHERE step_id = ? AND status = ? AND next_attempt_at <= ?{zones}
    ORDER BY next_attempt_at LIMIT ?)
"""
_CLAIM_READ_ANY_ZONE = _CLAIM_READ.format(zones="")
#: Rows of one zone key whose send window is open: one zone at a time, so that the read walks
#: ix_recipients_zone_claim in order instead of passing every row of the closed zones.
_CLAIM_READ_IN_ZONE = _CLAIM_READ.format(zones=" AND tz = ?")
#: The same for one number of a campaign of several: its pinned rows (ix_recipients_claim_sender).
_BY_SENDER = ("WHERE step_id = ? AND", "WHERE step_id = ? AND sender = ? AND")
#: By (one number's rows only, one zone's rows only).
_CLAIM_READS = {
    (False, False): _CLAIM_READ_ANY_ZONE,
    (False, True): _CLAIM_READ_IN_ZONE,
    (True, False): _CLAIM_READ_ANY_ZONE.replace(*_BY_SENDER),
    (True, True): _CLAIM_READ_IN_ZONE.replace(*_BY_SENDER),
}
_CLAIM_MARK = """
UPDATE recipients SET status = 'sending', lease_owner = ?, lease_expires_at = ?, updated_at = ?
WHERE id IN (SELECT value FROM json_each(?)) AND status = ?
"""


def read_due(
    db: sqlite3.Connection, step_id: int, status: str, now: float, limit: int,
    zone: str | None = None, sender: str | None = None,
) -> str:
    """Up to ``limit`` due rows of one status (of one zone key, of one number's, when given),
    as one JSON array of [id, phone, params, attempts]."""
    parameters = (
        step_id, *(() if sender is None else (sender,)), status, now,
        *(() if zone is None else (zone,)), limit,
    )
    found = db.execute(_CLAIM_READS[sender is not None, zone is not None], parameters)
    return str(found.fetchone()[0] or "[]")


def _claim(
    db: sqlite3.Connection, *, step_id: int, statuses: Sequence[str], limit: int, owner: str,
    expires: float, now: float, zones: Sequence[str] | None, sender: str | None = None,
) -> list[list[Any]]:
    """In the driver's thread: read each status's due rows in turn, then mark only the rows
    read that are still in that status. Within this process writers take turns
    (Database.begin); if another process took some of them in between, the count does not
    match and the claim is undone: a row is never leased twice."""
    claimed: list[list[Any]] = []
    for status, zone in product(statuses, [None] if zones is None else zones):
        wanted = limit - len(claimed)
        if wanted <= 0:
            break
        rows: list[list[Any]] = orjson.loads(
            read_due(db, step_id, status, now, wanted, zone, sender)
        )
        if not rows:
            continue
        ids = orjson.dumps([row[0] for row in rows]).decode()
        marked = db.execute(_CLAIM_MARK, (owner, expires, now, ids, status)).rowcount
        if marked != len(rows):
            raise ClaimRaced(f"marked {marked} of {len(rows)} rows read: another process raced")
        claimed.extend(rows)
    return claimed


async def claim_rows(
    conn: AsyncConnection, *, step_id: int, statuses: Sequence[str], limit: int, owner: str,
    expires: float, now: float, zones: Sequence[str] | None = None, sender: str | None = None,
) -> list[list[Any]]:
    """Lease up to ``limit`` due rows, taking ``statuses`` in order; [id, phone, params,
    attempts] each. ``zones``: only rows whose tz is one of them; ``sender``: only rows pinned
    to that number."""
    return await in_driver_thread(conn, partial(
        _claim, step_id=step_id, statuses=statuses, limit=limit, owner=owner, expires=expires,
        now=now, zones=zones, sender=sender,
    ))


_OWNED = """
SELECT group_concat(id) FROM recipients
WHERE id IN (SELECT value FROM json_each(?)) AND status = 'sending' AND lease_owner = ?
"""


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


class FlushStatements:
    """A flush's statements, built once from the attempt log's columns and the counters."""

    def __init__(self, attempts_table: str, attempt_columns: Sequence[str],
                 counted: Mapping[str, str]) -> None:
        self._log = (
            f"INSERT INTO {attempts_table} ({', '.join(attempt_columns)}) "
            f"SELECT {_json_columns(attempt_columns)} FROM json_each(?)"
        )
        self._counters = list(dict.fromkeys(counted.values()))
        bumps = ", ".join(f"{column} = {column} + ?" for column in self._counters)
        self._bump = f"UPDATE campaigns SET {bumps}, updated_at = ? WHERE id = ?"
        self._counted = counted

    async def run(
        self, conn: AsyncConnection, *, campaign_id: int, owner: str, now: float,
        outcomes: Sequence[Sequence[Any]], attempt_rows: Sequence[Sequence[Any]],
    ) -> tuple[int, dict[str, int]]:
        """Write the ``outcomes`` still leased by ``owner`` (values in the order of
        RECORD_FIELDS), every attempt row, and the counters; returns how many outcomes were
        written and how much each counter moved."""
        return await in_driver_thread(conn, partial(
            self._write, campaign_id=campaign_id, owner=owner, now=now, outcomes=outcomes,
            attempt_rows=attempt_rows,
        ))

    def _write(
        self, db: sqlite3.Connection, *, campaign_id: int, owner: str, now: float,
        outcomes: Sequence[Sequence[Any]], attempt_rows: Sequence[Sequence[Any]],
    ) -> tuple[int, dict[str, int]]:
        ids = orjson.dumps([outcome[0] for outcome in outcomes]).decode()
        found = db.execute(_OWNED, (ids, owner)).fetchone()[0]
        owned = {int(text) for text in found.split(",")} if found else set()
        mine = [outcome for outcome in outcomes if outcome[0] in owned]
        if mine:
            db.execute(_RECORD, (now, orjson.dumps(mine).decode()))
        if attempt_rows:
            db.execute(self._log, (orjson.dumps(attempt_rows).decode(),))
        entered: dict[str, int] = {}
        for outcome in mine:
            entered[outcome[1]] = entered.get(outcome[1], 0) + 1
        counts = {self._counted[status]: n for status, n in entered.items() if status in self._counted}
        deltas = [counts.get(column, 0) for column in self._counters]
        db.execute(self._bump, (*deltas, now, campaign_id))
        return len(mine), counts
