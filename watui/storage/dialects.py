"""Which database this is, decided once: how it connects, claims, flushes, locks and bulk-inserts.

Every difference between SQLite and PostgreSQL that storage acts on lives here, as one object
per database that ``Database`` picks when it is made (``dialect_for``). The other modules ask
that object instead of testing the dialect's name, so a third database, or a change in how
one of these claims, is one class to write and one place to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    any_,
    bindparam,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from watui.storage.counters import COUNTED
from watui.storage.schema import attempts, deliveries, delivery_events, recipients
from watui.storage.sending import postgres_batches, sqlite_batches
from watui.storage.sending.outcomes import ATTEMPT_COLUMNS, FlushResult, Outcome, outcome_values
from watui.storage.sending.portable_batches import (
    CLAIM_POSTGRES,
    CLAIM_SQLITE,
    OWNED,
    OWNED_LOCKED,
    PortableBatches,
)

Query = TypeVar("Query", bound=Select[Any])
#: Writes a batch of rows (tuples in the order of the columns it was made for).
BatchInsert = Callable[[list[tuple[Any, ...]]], Awaitable[None]]
ClaimedRow = Sequence[Any]  # [id, phone, params, attempts]


class Transactions(Protocol):
    """The two kinds of write connection a Database hands out (see Database)."""

    def begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]: ...

    def single_statement(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]: ...


class Dialect:
    """What storage does differently per database. This base is SQLite with the portable
    statements (an SQLite without UPDATE FROM or JSON); the others override what they do
    better."""

    name = "sqlite"
    batches = PortableBatches(CLAIM_SQLITE, OWNED)

    def create_engine(self, url: str, *, echo: bool) -> AsyncEngine:
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine

    def write_turn(self) -> asyncio.Lock | None:
        """SQLite lets one connection write at a time: this process's writers take turns on
        this lock (see Database.begin)."""
        return asyncio.Lock()

    def claim_transaction(
        self, db: Transactions
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A claim is several statements: one transaction."""
        return db.begin()

    async def claim_rows(
        self, conn: AsyncConnection, *, step_id: int, statuses: Sequence[str], limit: int,
        owner: str, expires: float, now: float, zones: Sequence[str] | None = None,
        sender: str | None = None,
    ) -> Sequence[ClaimedRow]:
        """Lease up to ``limit`` due rows, taking ``statuses`` in order; [id, phone, params,
        attempts] each. ``zones``: only rows whose tz is one of them; ``sender``: only those
        pinned to that number."""
        return await self.batches.claim_rows(
            conn, step_id=step_id, statuses=statuses, limit=limit, owner=owner,
            expires=expires, now=now, zones=zones, sender=sender,
        )

    def flush_transaction(
        self, db: Transactions
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A flush is several statements: one transaction."""
        return db.begin()

    async def record_outcomes(
        self, db: Transactions, campaign_id: int, owner: str, outcomes: Sequence[Outcome],
        now: float,
    ) -> FlushResult:
        """Write a batch in one transaction: the rows still leased by ``owner``, every attempt,
        the counters."""
        async with self.flush_transaction(db) as conn:
            return await self.write_outcomes(conn, campaign_id, owner, outcomes, now)

    async def write_outcomes(
        self, conn: AsyncConnection, campaign_id: int, owner: str, outcomes: Sequence[Outcome],
        now: float,
    ) -> FlushResult:
        """record_outcomes' work, inside its transaction."""
        return await self.batches.record_outcomes(conn, campaign_id, owner, outcomes, now)

    def locked(self, query: Query) -> Query:
        """``query`` locking the rows it reads until the transaction ends, where the database
        can (SQLite's writers are serialised already)."""
        return query

    def among(self, column: ColumnElement[int], ids: Collection[int]) -> ColumnElement[bool]:
        """``column IN ids`` for hundreds of ids. SQLAlchemy turns an IN list into one bound
        parameter per id, in Python, at every execution (7 % of the busy samples of a process
        applying 3,000 statuses a second on PostgreSQL): the databases that can take the ids
        as one parameter do."""
        return column.in_(list(ids))

    async def bulk_inserter(self, conn: AsyncConnection, columns: Sequence[str]) -> BatchInsert:
        """A bulk insert of recipients as plain tuples, in the transaction of ``conn``:
        SQLAlchemy's per-row dict handling is most of the cost. SQLite gets an executemany of a
        statement compiled once."""
        compiled = insert(recipients).compile(dialect=conn.dialect, column_keys=list(columns))
        # sqlite3 binds positionally (qmark), in table column order, the order of ``columns``.
        assert compiled.positional and list(compiled.positiontup or ()) == list(columns)
        sql = str(compiled)

        async def insert_tuples(rows: list[tuple[Any, ...]]) -> None:
            await conn.exec_driver_sql(sql, rows)

        return insert_tuples

    async def write_deliveries(
        self, conn: AsyncConnection, fresh: Sequence[Mapping[str, Any]],
        kept: Sequence[Mapping[str, Any]],
    ) -> None:
        """Deliveries rows keyed by column: ``fresh`` ones inserted, ``kept`` ones (already in
        the table) rewritten. Here an insert and an update of a statement compiled once, each an
        executemany in the driver's thread."""
        if fresh:
            await conn.execute(insert(deliveries), list(fresh))
        if kept:
            await conn.execute(_UPDATE_DELIVERY, [{f"b_{k}": v for k, v in row.items()} for row in kept])

    async def refresh_statistics(self, autocommit: AsyncEngine, tables: Sequence[Table]) -> None:
        """After a bulk import or much growth: SQLite plans by its indexes without statistics;
        nothing to do."""

    async def lock_messaging_limit(self, conn: AsyncConnection) -> None:
        """Make the 24-hour limit's reservations take turns across processes, until the
        transaction ends. SQLite: nothing here, the reservation's first statement is a write,
        which takes the database's one write lock."""


_attempt_values = itemgetter(*ATTEMPT_COLUMNS)


class SqliteJsonDialect(Dialect):
    """SQLite with JSON and UPDATE FROM: a claim or a flush is one call into the driver's
    thread, each batch one statement with its rows as one JSON value (sqlite_batches)."""

    flush = sqlite_batches.FlushStatements(attempts.name, ATTEMPT_COLUMNS, COUNTED)

    claim_rows = staticmethod(sqlite_batches.claim_rows)

    def among(self, column: ColumnElement[int], ids: Collection[int]) -> ColumnElement[bool]:
        """The ids as one JSON array, read back by ``json_each``."""
        values = func.json_each(bindparam(None, json.dumps(list(ids)), type_=String)).table_valued("value")
        return column.in_(select(values.c.value))

    async def write_outcomes(
        self, conn: AsyncConnection, campaign_id: int, owner: str, outcomes: Sequence[Outcome],
        now: float,
    ) -> FlushResult:
        written, counts = await self.flush.run(
            conn, campaign_id=campaign_id, owner=owner, now=now,
            outcomes=[outcome_values(o) for o in outcomes],
            attempt_rows=[_attempt_values(o.attempt) for o in outcomes if o.attempt is not None],
        )
        return FlushResult(written=written, stale=len(outcomes) - written, counts=counts)


class PostgresDialect(Dialect):
    """PostgreSQL: a claim's rows come back as one JSON value, a flush is one statement with
    its rows as JSON (postgres_batches); both in autocommit. Bulk inserts are COPY."""

    name = "postgresql"
    batches = PortableBatches(CLAIM_POSTGRES, OWNED_LOCKED)
    flush = postgres_batches.FlushStatement(recipients, attempts, ATTEMPT_COLUMNS, COUNTED)

    def create_engine(self, url: str, *, echo: bool) -> AsyncEngine:
        return create_async_engine(url, echo=echo, pool_size=5, max_overflow=5)

    def write_turn(self) -> asyncio.Lock | None:
        return None  # row locks and MVCC: writers need not take turns

    def claim_transaction(
        self, db: Transactions
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A claim, like a flush, is one statement, atomic by itself: no BEGIN and COMMIT round
        trips."""
        return db.single_statement()

    flush_transaction = claim_transaction
    claim_rows = staticmethod(postgres_batches.claim_rows)

    async def write_outcomes(
        self, conn: AsyncConnection, campaign_id: int, owner: str, outcomes: Sequence[Outcome],
        now: float,
    ) -> FlushResult:
        entered = await self.flush.run(
            conn, now=now, owner=owner, campaign_id=campaign_id,
            outcomes=[outcome_values(o) for o in outcomes],
            attempt_rows=[o.attempt for o in outcomes if o.attempt is not None],
        )
        written = sum(entered.values())
        counts = {COUNTED[status]: count for status, count in entered.items() if status in COUNTED}
        return FlushResult(written=written, stale=len(outcomes) - written, counts=counts)

    def among(self, column: ColumnElement[int], ids: Collection[int]) -> ColumnElement[bool]:
        """``= ANY`` of the ids as one array parameter."""
        return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))

    def locked(self, query: Query) -> Query:
        """Row-locked, so that two writers cannot interleave."""
        return query.with_for_update()

    async def bulk_inserter(self, conn: AsyncConnection, columns: Sequence[str]) -> BatchInsert:
        """COPY (several times faster than INSERT), on the transaction's own connection."""
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection  # the asyncpg connection, inside our transaction
        assert driver is not None

        async def copy_tuples(rows: list[tuple[Any, ...]]) -> None:
            await driver.copy_records_to_table(recipients.name, records=rows, columns=list(columns))

        return copy_tuples

    async def write_deliveries(
        self, conn: AsyncConnection, fresh: Sequence[Mapping[str, Any]],
        kept: Sequence[Mapping[str, Any]],
    ) -> None:
        """One statement for both, the rows as one JSON value (json_populate_recordset gives
        them the table's types). The executemany of the base took 60-80 ms a pass of 250 rows
        on asyncpg, and 4-5 times this process's CPU."""
        rows = [*fresh, *kept]
        if rows:
            await conn.exec_driver_sql(_UPSERT_DELIVERIES, (orjson.dumps(rows).decode(),))

    async def refresh_statistics(self, autocommit: AsyncEngine, tables: Sequence[Table]) -> None:
        """Let the planner see ``tables`` as they now are.

        Until autovacuum gets to it (a minute or more) the planner believed a freshly filled
        table small and scanned it whole for each flush of 500 outcomes instead of looking them
        up by key: 15 ms at 70,000 rows, growing with the table. The same went for the
        applier's look-up of 250 deliveries rows by key: 8 ms at 20,000 rows."""
        async with autocommit.connect() as conn:
            for table in tables:
                await conn.exec_driver_sql(_ANALYZE[table.name])

    async def lock_messaging_limit(self, conn: AsyncConnection) -> None:
        """A transaction-scoped advisory lock: reservations of every process take turns."""
        await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('watui.messaging_limit'))")


#: The tables whose statistics watui refreshes, each statement literal (tests/test_security.py).
_ANALYZE = {
    recipients.name: "ANALYZE recipients",
    deliveries.name: "ANALYZE deliveries",
    delivery_events.name: "ANALYZE delivery_events",
}

#: A deliveries row's columns that a status rewrites (not its keys).
_DELIVERY_REWRITTEN = [c.name for c in deliveries.c if c.name not in ("recipient_id", "campaign_id")]

_UPDATE_DELIVERY = (
    update(deliveries)
    .where(deliveries.c.recipient_id == bindparam("b_recipient_id"))
    .values({name: bindparam(f"b_{name}") for name in _DELIVERY_REWRITTEN})
)

_DELIVERY_COLUMNS = ", ".join(column.name for column in deliveries.c)
_DELIVERY_UPDATES = ", ".join(f"{name} = EXCLUDED.{name}" for name in _DELIVERY_REWRITTEN)
_UPSERT_DELIVERIES = f"""
INSERT INTO {deliveries.name} ({_DELIVERY_COLUMNS})
SELECT {_DELIVERY_COLUMNS} FROM json_populate_recordset(NULL::{deliveries.name}, $1)
ON CONFLICT (recipient_id) DO UPDATE SET {_DELIVERY_UPDATES}
"""


def dialect_for(url: str) -> Dialect:
    """The database behind ``url``: the one place the choice is made."""
    if make_url(url).get_backend_name() == "postgresql":
        return PostgresDialect()
    if sqlite_batches.AVAILABLE:
        return SqliteJsonDialect()
    return Dialect()


def _prepare_sqlite_file(url: str) -> None:
    """Create the SQLite file readable by its owner only (it holds phone numbers)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _tune_sqlite(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB of pages: the queue's hot index stays cached
    cursor.close()
