"""Open the database (SQLite or PostgreSQL), tune it, and bring its schema up to date."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy import Table, insert, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watui import __version__
from watui.errors import StorageError
from watui.storage.dialects import Dialect, dialect_for
from watui.storage.schema import (
    CLAIM_BY_SENDER_INDEX,
    WEBHOOK_TABLES,
    ZONE_CLAIM_INDEX,
    messaged_phones,
    metadata,
    number_health,
    number_hearing,
    schema_info,
    sender_leases,
    suppressions,
)

#: The schema version this watui writes. Bump it and append a step to MIGRATIONS together.
SCHEMA_VERSION = 10

Migration = Callable[[AsyncConnection], Awaitable[None]]


async def _create_v1(conn: AsyncConnection) -> None:
    await conn.run_sync(metadata.create_all)


#: Literal DDL, frozen like the step itself; both types read the same on SQLite and PostgreSQL.
_V2_CAMPAIGN_COLUMNS = {
    "max_retries": "ALTER TABLE campaigns ADD COLUMN max_retries INTEGER",
    "retry_delays": "ALTER TABLE campaigns ADD COLUMN retry_delays TEXT",
}


async def _add_campaign_retry_policy(conn: AsyncConnection) -> None:
    """v2: campaigns.max_retries and campaigns.retry_delays (the campaign's own retry policy).

    _create_v1 builds the CURRENT tables, so a database created by this watui has them already:
    only the missing ones are added.
    """
    await _add_missing_columns(conn, "campaigns", _V2_CAMPAIGN_COLUMNS)


_V3_CAMPAIGN_COLUMNS = {
    name: f"ALTER TABLE campaigns ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0"
    for name in ("delivered", "read", "failed_after", "unconfirmed")
}


async def _add_webhook_tables(conn: AsyncConnection) -> None:
    """v3: what webhooks report: delivery_events, inbound_messages and preference_updates as they
    come, deliveries per recipient, the delivery counters on campaigns, and room in
    recipients.status for 'unconfirmed'.

    Like v2, what a database created by this watui (_create_v1) already has is left alone."""
    await conn.run_sync(
        lambda sync_conn: metadata.create_all(sync_conn, tables=WEBHOOK_TABLES, checkfirst=True)
    )
    await _add_missing_columns(conn, "campaigns", _V3_CAMPAIGN_COLUMNS)
    if conn.dialect.name == "postgresql":  # SQLite does not enforce a VARCHAR's length
        await conn.execute(text("ALTER TABLE recipients ALTER COLUMN status TYPE VARCHAR(16)"))


async def _add_number_choice_and_health(conn: AsyncConnection) -> None:
    """v4: the campaign's sender numbers (campaigns.senders), each recipient's number
    (recipients.sender), and what was heard of each number's health (number_health).

    Like v2, what a database created by this watui (_create_v1) already has is left alone."""
    await _add_missing_columns(
        conn, "campaigns", {"senders": "ALTER TABLE campaigns ADD COLUMN senders TEXT"}
    )
    await _add_missing_columns(
        conn, "recipients", {"sender": "ALTER TABLE recipients ADD COLUMN sender VARCHAR(64)"}
    )
    await conn.run_sync(
        lambda sync_conn: metadata.create_all(sync_conn, tables=[number_health], checkfirst=True)
    )


async def _add_suppressions(conn: AsyncConnection) -> None:
    """v6: the suppression list (numbers that must not be messaged). Idempotent like v3."""
    await conn.run_sync(
        lambda sync_conn: metadata.create_all(sync_conn, tables=[suppressions], checkfirst=True)
    )


async def _add_sender_numbers(conn: AsyncConnection) -> None:
    """v7: several numbers per campaign: the claim index of recipients.sender (the columns came
    in v4) and the sender_leases table. Idempotent like v3."""
    await conn.run_sync(lambda sync_conn: CLAIM_BY_SENDER_INDEX.create(sync_conn, checkfirst=True))
    await conn.run_sync(
        lambda sync_conn: metadata.create_all(sync_conn, tables=[sender_leases], checkfirst=True)
    )


async def _add_messaging_limit_table(conn: AsyncConnection) -> None:
    """v8: messaged_phones, who got a template when, for the 24-hour messaging limit."""
    await conn.run_sync(
        lambda sync_conn: metadata.create_all(sync_conn, tables=[messaged_phones], checkfirst=True)
    )


_V9_CAMPAIGN_COLUMNS = {"endpoint": "ALTER TABLE campaigns ADD COLUMN endpoint VARCHAR(32)"}


async def _add_campaign_endpoint(conn: AsyncConnection) -> None:
    """v9: campaigns.endpoint, the API endpoint a campaign forces (NULL: chosen per step).

    Like v2, a database created by this watui (_create_v1) has it already."""
    await _add_missing_columns(conn, "campaigns", _V9_CAMPAIGN_COLUMNS)


async def _add_number_hearing(conn: AsyncConnection) -> None:
    """v10: number_hearing, which numbers' statuses the receiver has been hearing (the proof
    behind 'unconfirmed'), so that a restart does not forget it. Idempotent like v3."""
    await conn.run_sync(
        lambda sync_conn: metadata.create_all(sync_conn, tables=[number_hearing], checkfirst=True)
    )


async def _add_missing_columns(conn: AsyncConnection, table: str, statements: dict[str, str]) -> None:
    existing = await conn.run_sync(
        lambda sync_conn: {column["name"] for column in inspect(sync_conn).get_columns(table)}
    )
    for name, statement in statements.items():
        if name not in existing:
            await conn.execute(text(statement))


_V5_CAMPAIGN_COLUMNS = {
    "start_at": "ALTER TABLE campaigns ADD COLUMN start_at FLOAT",
    "send_window": "ALTER TABLE campaigns ADD COLUMN send_window VARCHAR(11)",
    "deadline": "ALTER TABLE campaigns ADD COLUMN deadline FLOAT",
}
_V5_RECIPIENT_COLUMNS = {"tz": "ALTER TABLE recipients ADD COLUMN tz VARCHAR(200)"}


async def _add_send_times(conn: AsyncConnection) -> None:
    """v5: when to send: campaigns.start_at, send_window and deadline, and recipients.tz (each
    recipient's zone key) with its partial claim index. Like v2, what a database created by this
    watui has is left alone."""
    await _add_missing_columns(conn, "campaigns", _V5_CAMPAIGN_COLUMNS)
    await _add_missing_columns(conn, "recipients", _V5_RECIPIENT_COLUMNS)
    await conn.run_sync(lambda sync_conn: ZONE_CLAIM_INDEX.create(sync_conn, checkfirst=True))


#: MIGRATIONS[n] takes a database at version n to n + 1. Never edit a released step.
MIGRATIONS: list[Migration] = [
    _create_v1, _add_campaign_retry_policy, _add_webhook_tables, _add_number_choice_and_health,
    _add_send_times, _add_suppressions, _add_sender_numbers, _add_messaging_limit_table,
    _add_campaign_endpoint, _add_number_hearing,
]


#: What a database that is down, restarting, locked or full raises: worth waiting and retrying.
DATABASE_UNAVAILABLE = (OperationalError, DBAPIError, OSError, ConnectionError)



class Database:
    """One async engine per process, shared by the engine, the CLI and the UI."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        #: How this database claims, flushes, locks and bulk-inserts: chosen once, here.
        self.kind: Dialect = dialect_for(url)
        self.dialect = self.kind.name
        self.engine: AsyncEngine = self.kind.create_engine(url, echo=echo)
        self._write_turn = self.kind.write_turn()
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that writes; every write of watui goes through here.

        SQLite lets one connection write at a time. When two of this process's connections
        (say the batcher's flush and a heartbeat) collided, the loser sat in SQLite's busy
        handler, which sleeps up to 100 ms between tries and kept losing while flushes followed
        each other: heartbeats took over a second and the end of a run waited for them. On
        SQLite this process's writers take turns on an asyncio lock instead, in the order they
        came. Other processes still meet SQLite's own lock (and its busy timeout)."""
        if self._write_turn is None:
            return self.engine.begin()
        return self._begin_in_turn(self._write_turn)

    def single_statement(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for a write that is one statement, atomic by itself.

        On PostgreSQL it runs in autocommit: no BEGIN and COMMIT, two round trips fewer (the
        engine's flush of a batch is one statement). On SQLite it is ``begin()``, in turn."""
        if self._write_turn is None:
            return self._autocommit.connect()
        return self._begin_in_turn(self._write_turn)

    async def refresh_statistics(self, tables: Sequence[Table]) -> None:
        """Let the planner see ``tables`` as they now are (after a bulk import, or growth)."""
        await self.kind.refresh_statistics(self._autocommit, tables)

    @contextlib.asynccontextmanager
    async def _begin_in_turn(self, turn: asyncio.Lock) -> AsyncIterator[AsyncConnection]:
        async with turn, self.engine.begin() as conn:
            yield conn

    async def open(self) -> Database:
        """Connect and upgrade the schema; refuses a database written by a newer watui."""
        try:
            async with self.begin() as conn:
                await _migrate(conn)
        except (OperationalError, DBAPIError, OSError) as error:
            raise StorageError(f"cannot open database {self.safe_url}: {_first_line(error)}") from None
        return self

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, fit for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)


async def _migrate(conn: AsyncConnection) -> None:
    version = await _current_version(conn)
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the database has schema version {version}, written by a newer watui; this watui "
            f"{__version__} knows up to version {SCHEMA_VERSION}: upgrade watui"
        )
    for step in range(version, SCHEMA_VERSION):
        await MIGRATIONS[step](conn)
    if version == 0:
        await conn.execute(
            insert(schema_info).values(id=1, version=SCHEMA_VERSION, written_by=__version__)
        )
    elif version < SCHEMA_VERSION:
        await conn.execute(
            update(schema_info).values(version=SCHEMA_VERSION, written_by=__version__)
        )


async def _current_version(conn: AsyncConnection) -> int:
    has_table = await conn.run_sync(
        lambda sync_conn: sync_conn.dialect.has_table(sync_conn, schema_info.name)
    )
    if not has_table:
        return 0
    try:
        row = (await conn.execute(select(schema_info.c.version))).first()
    except ProgrammingError:
        return 0
    return int(row.version) if row else 0


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
