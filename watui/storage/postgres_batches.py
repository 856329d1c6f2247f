"""PostgreSQL: a whole flush of the send queue in one statement, its rows as one array per column.

With executemany a flush of 500 outcomes was BEGIN, an ownership SELECT, 500 UPDATEs, 500
INSERTs, a counters UPDATE and COMMIT: a thousand executions in the server, a thousand
messages encoded in the event loop's thread (asyncpg runs there), on the same two cores that
send. Here the outcomes go as arrays that ``unnest`` turns back into rows, and the recipients
UPDATE, the attempts INSERT and the counters UPDATE are parts of one statement (data-modifying
CTEs). One statement is atomic by itself, so it runs without BEGIN and COMMIT: one round trip
per flush, and the counters still move in the same transaction as the rows.

Ownership needs no lock of its own: under READ COMMITTED an UPDATE re-checks its WHERE on a
row another transaction changed meanwhile, so a row taken over by another process (its lease
expired) is left untouched, as with the SELECT ... FOR UPDATE it replaces. The ownership test is
written so that no index can serve it, only the primary key can find the rows: the table's
statistics are taken while hardly any row is 'sending', so the status index looked cheapest,
and once the prepared statement went to a generic plan every flush scanned the whole window of
'sending' rows once per outcome (700 ms a flush with 50,000 older rows in the table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

#: The outcome of each row, in this order, with the column it goes to and its array type.
OUTCOME_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "bigint"),
    ("status", "status", "text"),
    ("attempts", "attempts", "integer"),
    ("next_at", "next_attempt_at", "double precision"),
    ("wamid", "wamid", "text"),
    ("code", "last_error_code", "integer"),
    ("title", "last_error_title", "text"),
    ("maybe_sent", "possibly_sent", "integer"),
    ("sent_at", "sent_at", "double precision"),
)


def _unnest(types: Sequence[str], first: int) -> str:
    """``unnest($first::t1[], $first+1::t2[], ...)``: one array parameter per column."""
    return "unnest(" + ", ".join(f"${first + index}::{kind}[]" for index, kind in enumerate(types)) + ")"


def _array_type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=postgresql.dialect()))


class FlushStatement:
    """The flush of a batch as one statement; built once from the tables' own columns.

    Parameters: $1 now, $2 owner, $3 campaign id, then one array per OUTCOME_FIELDS, then one
    array per attempt column. Returns one row per new status: (status, how many)."""

    def __init__(self, recipients: Table, attempts: Table, attempt_columns: Sequence[str],
                 counted: Mapping[str, str]) -> None:
        outcome_names = [name for name, _, _ in OUTCOME_FIELDS]
        outcomes = _unnest([kind for _, _, kind in OUTCOME_FIELDS], 4)
        first_attempt = 4 + len(OUTCOME_FIELDS)
        logged = _unnest([_array_type(attempts, column) for column in attempt_columns], first_attempt)
        assignments = ", ".join(
            f"{column} = o.{name}" for name, column, _ in OUTCOME_FIELDS if name != "id"
        )
        bumps = ", ".join(
            f"{column} = {column} + coalesce((SELECT n FROM tally WHERE status = '{status}'), 0)"
            for status, column in counted.items()
        )
        self.sql = f"""
WITH outcome AS (
    SELECT * FROM {outcomes} AS o({", ".join(outcome_names)})
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
    WHERE r.id = o.id AND r.id = ANY($4::bigint[])
    RETURNING r.status
), logged AS (
    INSERT INTO {attempts.name} ({", ".join(attempt_columns)}) SELECT * FROM {logged}
), tally AS (
    SELECT status, count(*) AS n FROM mine GROUP BY status
), counted AS (
    UPDATE campaigns SET {bumps}, updated_at = $1 WHERE id = $3
)
SELECT status, n FROM tally
"""
        self._attempt_width = len(attempt_columns)

    async def run(
        self, conn: AsyncConnection, *, now: float, owner: str, campaign_id: int,
        outcomes: Sequence[Sequence[Any]], attempt_rows: Sequence[Sequence[Any]],
    ) -> dict[str, int]:
        """Write ``outcomes`` (values in the order of OUTCOME_FIELDS) and ``attempt_rows`` (in
        the order of the attempt columns); returns how many rows entered each status."""
        outcome_columns = _columns(outcomes, len(OUTCOME_FIELDS))
        attempt_columns = _columns(attempt_rows, self._attempt_width)
        result = await conn.exec_driver_sql(
            self.sql, (now, owner, campaign_id, *outcome_columns, *attempt_columns)
        )
        return {status: int(count) for status, count in result}


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows to columns; no rows gives ``width`` empty columns."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]
