"""PostgreSQL: a claim's rows as one JSON value, and a whole flush in one statement.

With executemany a flush of 500 outcomes was BEGIN, an ownership SELECT, 500 UPDATEs, 500
INSERTs, a counters UPDATE and COMMIT: a thousand executions in the server, a thousand
messages encoded in the event loop's thread (asyncpg runs there), on the same two cores that
send. Here the outcomes and the attempt rows go as one JSON parameter each, which
``json_populate_recordset`` turns back into typed rows, and the ownership check, the recipients
UPDATE, the attempts INSERT and the counters UPDATE are parts of one statement (data-modifying
CTEs). One statement is atomic by itself, so it runs without BEGIN and COMMIT: one round trip
per flush, and the counters still move in the same transaction as the rows.

Ownership is checked by a LATERAL lookup of each outcome by primary key, FOR UPDATE (as the
SELECT it replaced): a row another process took over (its lease expired) is left untouched.
It is a lookup by key so that the planner cannot drive the join from the 'sending' rows: the
table's statistics are taken while hardly any row is sending, so that filter looked like one
row, and every flush scanned all 'sending' rows once per outcome (700 ms a flush with 50,000
older rows in the table).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

#: The outcome of each row, in this order (that of sqlite_batches.RECORD_FIELDS), as the
#: recipients columns they go to.
OUTCOME_COLUMNS = ("id", "status", "attempts", "next_attempt_at", "wamid", "last_error_code",
                   "last_error_title", "possibly_sent", "sent_at")

@functools.cache
def _claim_statement(statuses: int, zoned: bool = False, by_sender: bool = False) -> str:
    """One statement that leases due rows of each status in turn (``$6``, ``$7``, ...), up to
    ``$5`` in all: UNION ALL under a LIMIT locks only the rows it takes. The rows come back as
    one JSON value, earlier statuses first. ``zoned``: only rows whose tz is in the array
    parameter after the statuses (their send window is open); ``by_sender``: only the rows
    pinned to the number in the parameter after those (ix_recipients_claim_sender)."""
    # One zone at a time (a LATERAL per zone key), so that each walks ix_recipients_zone_claim
    # in order instead of passing every row of the closed zones.
    zones = f"unnest(${6 + statuses}::text[]) AS zone(key), LATERAL " if zoned else ""
    in_zone = "AND tz = zone.key " if zoned else ""
    sender = f"sender = ${6 + statuses + zoned} AND " if by_sender else ""
    picks = "\n    UNION ALL\n    ".join(
        f"SELECT due_{index}.* FROM {zones}(SELECT id, status FROM recipients WHERE step_id = $4 "
        f"AND {sender}status = ${6 + index} AND next_attempt_at <= $3 {in_zone}"
        "ORDER BY next_attempt_at "
        f"LIMIT $5 FOR UPDATE SKIP LOCKED) AS due_{index}"
        for index in range(statuses)
    )
    order = ", ".join(f"status_before = ${6 + index} DESC" for index in range(statuses))
    return f"""
WITH picked AS (
    SELECT id, status AS status_before FROM (
    {picks}
    ) AS due LIMIT $5
), claimed AS (
    UPDATE recipients AS r SET status = 'sending', lease_owner = $1, lease_expires_at = $2,
        updated_at = $3
    FROM picked AS p
    WHERE r.id = p.id AND r.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING r.id, r.phone, r.params, r.attempts, r.next_attempt_at, p.status_before
)
SELECT json_agg(json_build_array(id, phone, params::json, attempts)
                ORDER BY {order}, next_attempt_at, id)::text
FROM claimed
"""


async def claim_rows(
    conn: AsyncConnection, *, step_id: int, statuses: Sequence[str], limit: int, owner: str,
    expires: float, now: float, zones: Sequence[str] | None = None, sender: str | None = None,
) -> list[list[Any]]:
    """Lease up to ``limit`` due rows, taking ``statuses`` in order; [id, phone, params,
    attempts] each. ``FOR UPDATE SKIP LOCKED`` lets several processes claim side by side.

    One statement (so it runs in autocommit: no BEGIN and COMMIT round trips, each of which
    woke the server on the cores that send), and its rows come back as one JSON value:
    asyncpg's records, SQLAlchemy's rows and a JSON parse per row's parameters had cost 6 us
    a row in the event loop's thread."""
    zoned = () if zones is None else (list(zones),)
    pinned = () if sender is None else (sender,)
    found = (await conn.exec_driver_sql(
        _claim_statement(len(statuses), bool(zoned), bool(pinned)),
        (owner, expires, now, step_id, limit, *statuses, *zoned, *pinned),
    )).scalar()
    return orjson.loads(found) if found else []


class FlushStatement:
    """The flush of a batch as one statement; built once from the tables' own columns.

    Parameters: $1 now, $2 owner, $3 campaign id, $4 the outcomes and $5 the attempt rows, each
    a JSON array of objects keyed by column (json_populate_recordset gives them the table's
    types). Returns one row per new status: (status, how many)."""

    def __init__(self, recipients: Table, attempts: Table, attempt_columns: Sequence[str],
                 counted: Mapping[str, str]) -> None:
        assignments = ", ".join(f"{column} = o.{column}" for column in OUTCOME_COLUMNS[1:])
        bumps = ", ".join(
            f"{column} = {column} + coalesce((SELECT n FROM tally WHERE status = '{status}'), 0)"
            for status, column in counted.items()
        )
        columns = ", ".join(attempt_columns)
        self.sql = f"""
WITH outcome AS (
    SELECT {", ".join(OUTCOME_COLUMNS)} FROM json_populate_recordset(NULL::{recipients.name}, $4)
), owned AS (
    SELECT o.* FROM outcome AS o, LATERAL (
        SELECT FROM {recipients.name} AS r
        WHERE r.id = o.id AND r.status = 'sending' AND r.lease_owner = $2
        FOR UPDATE
    ) AS still_ours
), mine AS (
    UPDATE {recipients.name} AS r SET {assignments},
        lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
    FROM owned AS o
    WHERE r.id = o.id AND r.id = ANY(ARRAY(SELECT id FROM outcome))
    RETURNING r.status
), logged AS (
    INSERT INTO {attempts.name} ({columns})
    SELECT {columns} FROM json_populate_recordset(NULL::{attempts.name}, $5)
), tally AS (
    SELECT status, count(*) AS n FROM mine GROUP BY status
), counted AS (
    UPDATE campaigns SET {bumps}, updated_at = $1 WHERE id = $3
)
SELECT status, n FROM tally
"""

    @staticmethod
    def parameters(
        *, now: float, owner: str, campaign_id: int, outcomes: Sequence[Sequence[Any]],
        attempt_rows: Sequence[Mapping[str, Any]],
    ) -> tuple[Any, ...]:
        """The statement's parameters: ``outcomes`` are values in the order of
        OUTCOME_COLUMNS, ``attempt_rows`` the attempt log's rows keyed by column."""
        keyed = [dict(zip(OUTCOME_COLUMNS, outcome, strict=True)) for outcome in outcomes]
        return (now, owner, campaign_id, orjson.dumps(keyed).decode(),
                orjson.dumps(attempt_rows).decode())

    async def run(
        self, conn: AsyncConnection, *, now: float, owner: str, campaign_id: int,
        outcomes: Sequence[Sequence[Any]], attempt_rows: Sequence[Mapping[str, Any]],
    ) -> dict[str, int]:
        """Write ``outcomes`` and ``attempt_rows`` (see parameters()); returns how many rows
        entered each status."""
        result = await conn.exec_driver_sql(self.sql, self.parameters(
            now=now, owner=owner, campaign_id=campaign_id, outcomes=outcomes,
            attempt_rows=attempt_rows,
        ))
        rows = cast("Iterable[tuple[str, int]]", result)  # (status, count), the statement's own
        return {status: int(count) for status, count in rows}
