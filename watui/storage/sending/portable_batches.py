"""Any database: a claim and a flush as plain statements, rows run with executemany.

For an SQLite without UPDATE FROM or JSON, and the reference the faster ways (sqlite_batches,
postgres_batches) are tested against. The two statements that differ by database (the claim's
row locking, the ownership check's FOR UPDATE) are given to ``PortableBatches`` once, by
storage.dialects, rather than looked up on each call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import product
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Select, TextClause, bindparam, insert, null, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.storage.counters import COUNTED, SENDING, bump_counters
from watui.storage.schema import attempts, recipients
from watui.storage.sending.outcomes import ATTEMPT_COLUMNS, FlushResult, Outcome

CLAIM_SQLITE = text("""
UPDATE recipients SET status = 'sending', lease_owner = :owner, lease_expires_at = :expires,
       updated_at = :now
WHERE id IN (SELECT id FROM recipients
             WHERE step_id = :step AND status = :status AND next_attempt_at <= :now
             ORDER BY next_attempt_at LIMIT :limit)
RETURNING id, phone, params, attempts
""")

CLAIM_POSTGRES = text("""
UPDATE recipients SET status = 'sending', lease_owner = :owner, lease_expires_at = :expires,
       updated_at = :now
WHERE id = ANY(ARRAY(SELECT id FROM recipients
                     WHERE step_id = :step AND status = :status AND next_attempt_at <= :now
                     ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED))
RETURNING id, phone, params, attempts
""")



def by_sender(claim: TextClause) -> TextClause:
    """``claim`` for one number of a campaign of several: its pinned rows only
    (ix_recipients_claim_sender)."""
    return text(claim.text.replace(
        "WHERE step_id = :step AND", "WHERE step_id = :step AND sender = :sender AND"))


_RECORD = (
    update(recipients)
    .where(recipients.c.id == bindparam("rid"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        next_attempt_at=bindparam("next_at"),
        wamid=bindparam("new_wamid"),
        last_error_code=bindparam("code"),
        last_error_title=bindparam("title"),
        possibly_sent=bindparam("maybe_sent"),
        sent_at=bindparam("new_sent_at"),
        lease_owner=null(),
        lease_expires_at=null(),
        updated_at=bindparam("now"),
    )
)


class _DriverMany:
    """One statement run with executemany straight on the driver.

    SQLAlchemy processes every row's parameters in Python before the driver sees them; for the
    two statements that run once per message (the outcome and the attempt log) that was ~20% of
    the engine's CPU. Their columns need no conversion (ints, floats, strings, None), so rows go
    to the driver as tuples, in the order of the statement compiled once per dialect."""

    def __init__(self, statement: Any, column_keys: Sequence[str] | None = None) -> None:
        self._statement = statement
        self._column_keys = column_keys
        self._compiled: dict[str, tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]] = {}

    async def run(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        sql, in_order = self._for(conn.dialect)
        await conn.exec_driver_sql(sql, [in_order(row) for row in rows])

    def _for(self, dialect: Any) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
        if dialect.name not in self._compiled:
            compiled = self._statement.compile(dialect=dialect, column_keys=self._column_keys)
            self._compiled[dialect.name] = (compiled.string, itemgetter(*compiled.positiontup))
        return self._compiled[dialect.name]


#: Statements of the hot path are built once: building one per flush (operators, bind
#: parameters, its cache key) cost more CPU than running it (a third of each flush).
OWNED = select(recipients.c.id).where(
    recipients.c.id.in_(bindparam("ids", expanding=True)),
    recipients.c.status == SENDING,
    recipients.c.lease_owner == bindparam("owner"),
)
OWNED_LOCKED = OWNED.with_for_update()
_RECORD_MANY = _DriverMany(_RECORD)
#: inline(): no RETURNING of the new ids, which nobody reads.
_LOG_ATTEMPTS_MANY = _DriverMany(insert(attempts).inline(), ATTEMPT_COLUMNS)


class PortableBatches:
    """The portable statements, run with the driver's executemany."""

    def __init__(self, claim_statement: TextClause, owned_query: Select[Any]) -> None:
        self._claim_statement = claim_statement
        #: By (one number's rows only, one zone's rows only): each built once.
        self._claim_statements = {
            (False, False): claim_statement,
            (True, False): by_sender(claim_statement),
            (False, True): _in_zone(claim_statement),
            (True, True): _in_zone(by_sender(claim_statement)),
        }
        self._owned_query = owned_query

    async def record_outcomes(
        self, conn: AsyncConnection, campaign_id: int, owner: str, outcomes: Sequence[Outcome],
        now: float,
    ) -> FlushResult:
        """Inside the caller's transaction: the rows still ours, every attempt, the counters."""
        owned = await self.still_owned(conn, owner, [o.recipient_id for o in outcomes])
        mine = [o for o in outcomes if o.recipient_id in owned]
        if mine:
            await self.record(conn, mine, now)
        attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
        if attempt_rows:
            await self.log_attempts(conn, attempt_rows)
        counts = _count_statuses(mine)
        await bump_counters(conn, campaign_id, counts, now)
        return FlushResult(written=len(mine), stale=len(outcomes) - len(mine), counts=counts)

    async def claim_rows(
        self, conn: AsyncConnection, *, step_id: int, statuses: Sequence[str], limit: int,
        owner: str, expires: float, now: float, sender: str | None = None,
        zones: Sequence[str] | None = None,
    ) -> list[tuple[int, str, dict[str, Any], int]]:
        claimed: list[tuple[int, str, dict[str, Any], int]] = []
        statement = self._claim_statements[sender is not None, zones is not None]
        for status, zone in product(statuses, [None] if zones is None else zones):
            wanted = limit - len(claimed)
            if wanted <= 0:
                break
            rows = await conn.execute(
                statement,
                {"owner": owner, "expires": expires, "now": now, "step": step_id, "status": status,
                 "limit": wanted, **({} if zone is None else {"zone": zone}),
                 **({} if sender is None else {"sender": sender})},
            )
            # Rows unpacked as tuples: named access costs more, per row.
            claimed.extend((rid, phone, orjson.loads(params), attempts)
                           for rid, phone, params, attempts in rows)
        return claimed

    async def still_owned(self, conn: AsyncConnection, owner: str, ids: list[int]) -> set[int]:
        owned: set[int] = set()
        for start in range(0, len(ids), 900):
            result = await conn.execute(
                self._owned_query, {"ids": ids[start : start + 900], "owner": owner}
            )
            owned.update(result.scalars())
        return owned

    @staticmethod
    async def record(conn: AsyncConnection, outcomes: Sequence[Outcome], now: float) -> None:
        await _RECORD_MANY.run(conn, [
            {
                "rid": o.recipient_id, "new_status": o.status, "new_attempts": o.attempts,
                "next_at": o.next_attempt_at, "new_wamid": o.wamid, "code": o.error_code,
                "title": o.error_title, "maybe_sent": 1 if o.possibly_sent else 0,
                "new_sent_at": o.sent_at, "now": now,
            }
            for o in outcomes
        ])

    @staticmethod
    async def log_attempts(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        await _LOG_ATTEMPTS_MANY.run(conn, rows)


def _in_zone(claim_statement: TextClause) -> TextClause:
    """The claim limited to rows of one zone key (``:zone``, its send window open), which
    ix_recipients_zone_claim finds in order."""
    due = "AND next_attempt_at <= :now"
    assert due in claim_statement.text
    return text(claim_statement.text.replace(due, f"AND tz = :zone {due}"))


def _count_statuses(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        column = COUNTED.get(outcome.status)
        if column:
            counts[column] = counts.get(column, 0) + 1
    return counts
