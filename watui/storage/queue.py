"""The send queue's queries: claim due rows, record outcomes in batches, recover after a crash.

Every change to recipient rows here updates the campaign's counters in the same transaction, so
the counters always equal the rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, insert, null, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.storage import postgres_batches, sqlite_batches
from watui.storage.database import Database
from watui.storage.schema import (
    PENDING,
    CampaignStatus,
    RecipientStatus,
    attempts,
    campaigns,
    recipients,
    steps,
    workers,
)

SENDING = RecipientStatus.SENDING.value
#: Counter columns moved by a recipient entering each status.
COUNTED = {
    RecipientStatus.SENT.value: "sent",
    RecipientStatus.FAILED.value: "failed",
    RecipientStatus.IN_DOUBT.value: "in_doubt",
    RecipientStatus.SKIPPED.value: "skipped",
}


@dataclass(frozen=True, slots=True)
class StepInfo:
    id: int
    position: int
    template_name: str
    language: str
    mapping: dict[str, Any]


@dataclass(slots=True)
class ClaimedRecipient:
    id: int
    phone: str
    params: dict[str, Any]
    attempts: int  # requests made before this claim


@dataclass(slots=True)
class Outcome:
    """The result of one claimed row: its new state, and the attempt log row if a request went."""

    recipient_id: int
    status: str
    attempts: int
    next_attempt_at: float = 0.0
    wamid: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    possibly_sent: bool = False
    sent_at: float | None = None
    attempt: dict[str, Any] | None = None  # columns of `attempts`, None when nothing was sent


@dataclass(slots=True)
class FlushResult:
    written: int
    stale: int  # rows no longer ours (taken over after our lease expired): left untouched
    counts: dict[str, int] = field(default_factory=dict)


def make_owner() -> str:
    """A lease owner id: ``host:pid:random``; the pid lets a restart on this host spot the dead."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def _owner_is_dead_here(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def campaign_row(db: Database, campaign_id: int) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).one()


async def campaign_by_name(db: Database, name: str) -> Any | None:
    async with db.engine.connect() as conn:
        result = await conn.execute(select(campaigns).where(campaigns.c.name == name))
        return result.first()


async def set_campaign_status(
    db: Database,
    campaign_id: int,
    status: CampaignStatus,
    *,
    reason: str | None = None,
    only_from: Sequence[CampaignStatus] | None = None,
) -> bool:
    """Move a campaign to ``status``; with ``only_from``, only from those statuses. True if moved."""
    now = time.time()
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status is CampaignStatus.RUNNING:
        values["pause_reason"] = None
        values["started_at"] = func.coalesce(campaigns.c.started_at, now)
        values["finished_at"] = None
    elif status is CampaignStatus.PAUSED:
        values["pause_reason"] = reason
    elif status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        values["finished_at"] = now
    statement = update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
    if only_from is not None:
        statement = statement.where(campaigns.c.status.in_([s.value for s in only_from]))
    async with db.begin() as conn:
        result = await conn.execute(statement)
    return result.rowcount > 0


async def current_step(db: Database, campaign_id: int) -> StepInfo | None:
    """The first step, in order, that still has queued, retrying or sending rows."""
    pending = (
        select(recipients.c.id)
        .where(recipients.c.step_id == steps.c.id, recipients.c.status.in_([s.value for s in PENDING]))
        .limit(1)
        .exists()
    )
    query = (
        select(steps)
        .where(steps.c.campaign_id == campaign_id, pending)
        .order_by(steps.c.position)
        .limit(1)
    )
    async with db.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StepInfo(row.id, row.position, row.template_name, row.language, json.loads(row.mapping))


async def has_pending(db: Database, campaign_id: int) -> bool:
    query = select(recipients.c.id).where(
        recipients.c.campaign_id == campaign_id,
        recipients.c.status.in_([s.value for s in PENDING]),
    ).limit(1)
    async with db.engine.connect() as conn:
        return (await conn.execute(query)).first() is not None


async def next_due_at(db: Database, step_id: int) -> float | None:
    """When the earliest waiting retry of this step becomes due."""
    query = select(func.min(recipients.c.next_attempt_at)).where(
        recipients.c.step_id == step_id, recipients.c.status == RecipientStatus.RETRY.value
    )
    async with db.engine.connect() as conn:
        return (await conn.execute(query)).scalar()


_CLAIM_SQLITE = text("""
UPDATE recipients SET status = 'sending', lease_owner = :owner, lease_expires_at = :expires,
       updated_at = :now
WHERE id IN (SELECT id FROM recipients
             WHERE step_id = :step AND status = :status AND next_attempt_at <= :now
             ORDER BY next_attempt_at LIMIT :limit)
RETURNING id, phone, params, attempts
""")

_CLAIM_POSTGRES = text("""
UPDATE recipients SET status = 'sending', lease_owner = :owner, lease_expires_at = :expires,
       updated_at = :now
WHERE id = ANY(ARRAY(SELECT id FROM recipients
                     WHERE step_id = :step AND status = :status AND next_attempt_at <= :now
                     ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED))
RETURNING id, phone, params, attempts
""")


async def claim(
    db: Database, step_id: int, owner: str, limit: int, *, lease_seconds: float, now: float
) -> list[ClaimedRecipient]:
    """Lease up to ``limit`` due rows of one step (due retries first) and mark them sending.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several processes claim side by side.
    """
    batches = _batches_for(db)
    async with batches.claim_transaction(db) as conn:
        found = await batches.claim_rows(
            conn, step_id=step_id, statuses=(RecipientStatus.RETRY.value, RecipientStatus.QUEUED.value),
            limit=limit, owner=owner, expires=now + lease_seconds, now=now,
        )
    return [ClaimedRecipient(*row) for row in found]


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


async def record_outcomes(
    db: Database, campaign_id: int, owner: str, outcomes: Sequence[Outcome]
) -> FlushResult:
    """Write a batch in ONE transaction: recipient rows, attempt log, campaign counters.

    Only rows still leased by ``owner`` are changed (another process may have taken over an
    expired lease); every attempt is logged regardless, since the request really went out.
    """
    return await _batches_for(db).record_outcomes(db, campaign_id, owner, outcomes, time.time())


#: Statements of the hot path are built once: building one per flush (operators, bind
#: parameters, its cache key) cost more CPU than running it (a third of each flush).
_OWNED = select(recipients.c.id).where(
    recipients.c.id.in_(bindparam("ids", expanding=True)),
    recipients.c.status == SENDING,
    recipients.c.lease_owner == bindparam("owner"),
)
_OWNED_LOCKED = _OWNED.with_for_update()
#: The keys of Outcome.attempt: every column of `attempts` but its id.
ATTEMPT_COLUMNS = tuple(column.name for column in attempts.c if column.name != "id")
_RECORD_MANY = _DriverMany(_RECORD)
#: inline(): no RETURNING of the new ids, which nobody reads.
_LOG_ATTEMPTS_MANY = _DriverMany(insert(attempts).inline(), ATTEMPT_COLUMNS)
_attempt_values = itemgetter(*ATTEMPT_COLUMNS)
_COUNTER_COLUMNS = frozenset(COUNTED.values())
_BUMP_COUNTERS = (
    update(campaigns)
    .where(campaigns.c.id == bindparam("cid"))
    .values(
        {
            **{column: campaigns.c[column] + bindparam(f"d_{column}") for column in COUNTED.values()},
            "updated_at": bindparam("now"),
        }
    )
)


class _DriverBatches:
    """The portable statements, run with the driver's executemany: an SQLite without UPDATE
    FROM or JSON (and the reference the faster ways are tested against)."""

    @classmethod
    async def record_outcomes(
        cls, db: Database, campaign_id: int, owner: str, outcomes: Sequence[Outcome], now: float
    ) -> FlushResult:
        async with db.begin() as conn:
            owned = await cls.still_owned(conn, owner, [o.recipient_id for o in outcomes])
            mine = [o for o in outcomes if o.recipient_id in owned]
            if mine:
                await cls.record(conn, mine, now)
            attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
            if attempt_rows:
                await cls.log_attempts(conn, attempt_rows)
            counts = _count_statuses(mine)
            await _bump_counters(conn, campaign_id, counts, now)
        return FlushResult(written=len(mine), stale=len(outcomes) - len(mine), counts=counts)

    @staticmethod
    def claim_transaction(db: Database) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A claim is several statements: one transaction."""
        return db.begin()

    @staticmethod
    async def claim_rows(
        conn: AsyncConnection, *, step_id: int, statuses: Sequence[str], limit: int, owner: str,
        expires: float, now: float,
    ) -> list[tuple[int, str, dict[str, Any], int]]:
        statement = _CLAIM_POSTGRES if conn.dialect.name == "postgresql" else _CLAIM_SQLITE
        claimed: list[tuple[int, str, dict[str, Any], int]] = []
        for status in statuses:
            wanted = limit - len(claimed)
            if wanted <= 0:
                break
            rows = await conn.execute(
                statement,
                {"owner": owner, "expires": expires, "now": now, "step": step_id, "status": status,
                 "limit": wanted},
            )
            # Rows unpacked as tuples: named access costs more, per row.
            claimed.extend((rid, phone, orjson.loads(params), attempts)
                           for rid, phone, params, attempts in rows)
        return claimed

    @staticmethod
    async def still_owned(conn: AsyncConnection, owner: str, ids: list[int]) -> set[int]:
        query = _OWNED_LOCKED if conn.dialect.name == "postgresql" else _OWNED
        owned: set[int] = set()
        for start in range(0, len(ids), 900):
            result = await conn.execute(query, {"ids": ids[start : start + 900], "owner": owner})
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


class _JsonBatches(_DriverBatches):
    """SQLite: a claim or a flush is one call into the driver's thread, each batch one
    statement with its rows as one JSON value (sqlite_batches)."""

    claim_rows = staticmethod(sqlite_batches.claim_rows)  # type: ignore[assignment]

    @classmethod
    async def record_outcomes(
        cls, db: Database, campaign_id: int, owner: str, outcomes: Sequence[Outcome], now: float
    ) -> FlushResult:
        async with db.begin() as conn:
            written, counts = await _FLUSH_SQLITE.run(
                conn, campaign_id=campaign_id, owner=owner, now=now,
                outcomes=[_outcome_values(o) for o in outcomes],
                attempt_rows=[_attempt_values(o.attempt) for o in outcomes if o.attempt is not None],
            )
        return FlushResult(written=written, stale=len(outcomes) - written, counts=counts)


_FLUSH_SQLITE = sqlite_batches.FlushStatements(attempts.name, ATTEMPT_COLUMNS, COUNTED)


class _PostgresBatches(_DriverBatches):
    """PostgreSQL: a claim's rows come back as one JSON value, a flush is one statement with
    its rows as JSON (postgres_batches)."""

    claim_rows = staticmethod(postgres_batches.claim_rows)  # type: ignore[assignment]

    @staticmethod
    def claim_transaction(db: Database) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A claim is one statement, atomic by itself: no BEGIN and COMMIT round trips."""
        return db.single_statement()

    @classmethod
    async def record_outcomes(
        cls, db: Database, campaign_id: int, owner: str, outcomes: Sequence[Outcome], now: float
    ) -> FlushResult:
        async with db.single_statement() as conn:
            entered = await _FLUSH_POSTGRES.run(
                conn, now=now, owner=owner, campaign_id=campaign_id,
                outcomes=[_outcome_values(o) for o in outcomes],
                attempt_rows=[o.attempt for o in outcomes if o.attempt is not None],
            )
        written = sum(entered.values())
        counts = {COUNTED[status]: count for status, count in entered.items() if status in COUNTED}
        return FlushResult(written=written, stale=len(outcomes) - written, counts=counts)


def _outcome_values(o: Outcome) -> tuple[Any, ...]:
    """An outcome's values in the order of sqlite_batches.RECORD_FIELDS and of
    postgres_batches.OUTCOME_COLUMNS."""
    return (o.recipient_id, o.status, o.attempts, o.next_attempt_at, o.wamid, o.error_code,
            o.error_title, 1 if o.possibly_sent else 0, o.sent_at)


_FLUSH_POSTGRES = postgres_batches.FlushStatement(recipients, attempts, ATTEMPT_COLUMNS, COUNTED)


def _batches_for(db: Database) -> type[_DriverBatches]:
    """How this database claims and writes a batch: the one place the dialect decides it."""
    if db.is_postgres:
        return _PostgresBatches
    if sqlite_batches.AVAILABLE:
        return _JsonBatches
    return _DriverBatches


def _count_statuses(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        column = COUNTED.get(outcome.status)
        if column:
            counts[column] = counts.get(column, 0) + 1
    return counts


async def _bump_counters(
    conn: AsyncConnection, campaign_id: int, deltas: dict[str, int], now: float
) -> None:
    unknown = deltas.keys() - _COUNTER_COLUMNS
    if unknown:
        raise ValueError(f"not a counter column: {sorted(unknown)}")
    params = {f"d_{column}": deltas.get(column, 0) for column in COUNTED.values()}
    await conn.execute(_BUMP_COUNTERS, {"cid": campaign_id, "now": now, **params})


#: An unsent claimed row goes back to where it was: queued, or waiting for its next retry.
_BACK_TO_QUEUE: dict[str, Any] = {
    "status": text("CASE WHEN attempts = 0 THEN 'queued' ELSE 'retry' END"),
    "lease_owner": None,
    "lease_expires_at": None,
}


async def release(db: Database, owner: str, ids: Sequence[int]) -> int:
    """Give unsent claimed rows back to the queue (no request went out for them)."""
    if not ids:
        return 0
    released = 0
    async with db.begin() as conn:
        for start in range(0, len(ids), 900):
            chunk = list(ids[start : start + 900])
            result = await conn.execute(
                update(recipients)
                .where(
                    recipients.c.id.in_(chunk),
                    recipients.c.status == SENDING,
                    recipients.c.lease_owner == owner,
                )
                .values(**_BACK_TO_QUEUE)
            )
            released += result.rowcount
    return released


async def release_claim(db: Database, owner: str, lease_expires_at: float) -> int:
    """Give back the rows of one claim whose answer never reached us (the connection broke
    around its commit): no request went out for them. A claim is known by its lease expiry,
    which is the same float for all its rows and (with the owner) unique to it."""
    async with db.begin() as conn:
        result = await conn.execute(
            update(recipients)
            .where(
                recipients.c.status == SENDING,
                recipients.c.lease_owner == owner,
                recipients.c.lease_expires_at == lease_expires_at,
            )
            .values(**_BACK_TO_QUEUE)
        )
    return int(result.rowcount or 0)


async def recover_in_doubt(
    db: Database, campaign_id: int, *, now: float | None = None, exclude_owner: str | None = None
) -> int:
    """Rows a dead process left in `sending` become in_doubt: never resent automatically.

    A dead process on this host is spotted by its pid at once; another host's rows wait for
    their lease to expire. Returns how many rows were moved.
    """
    now = time.time() if now is None else now
    moved = 0
    async with db.begin() as conn:
        owners = (
            await conn.execute(
                select(recipients.c.lease_owner)
                .where(recipients.c.campaign_id == campaign_id, recipients.c.status == SENDING)
                .distinct()
            )
        ).scalars().all()
        for owner in owners:
            if owner is not None and owner == exclude_owner:
                continue
            same_owner = (
                recipients.c.lease_owner == owner if owner is not None else recipients.c.lease_owner.is_(None)
            )
            condition = [recipients.c.campaign_id == campaign_id, recipients.c.status == SENDING, same_owner]
            if owner is None or not _owner_is_dead_here(owner):
                condition.append(recipients.c.lease_expires_at < now)
            result = await conn.execute(
                update(recipients)
                .where(*condition)
                .values(
                    status=RecipientStatus.IN_DOUBT.value,
                    last_error_title="interrupted while sending: may have been delivered",
                    possibly_sent=1,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            moved += result.rowcount
        if moved:
            await _bump_counters(conn, campaign_id, {"in_doubt": moved}, now)
    return moved


async def heartbeat(db: Database, owner: str, campaign_id: int, *, stale_after: float) -> int:
    """Record that ``owner`` is alive and sending ``campaign_id``; returns how many are."""
    now = time.time()
    hostname, pid = socket.gethostname(), os.getpid()
    async with db.begin() as conn:
        updated = await conn.execute(
            update(workers)
            .where(workers.c.owner == owner)
            .values(last_seen=now, campaign_id=campaign_id)
        )
        if updated.rowcount == 0:
            await conn.execute(
                insert(workers).values(
                    owner=owner, hostname=hostname, pid=pid, campaign_id=campaign_id,
                    started_at=now, last_seen=now,
                )
            )
        live = await conn.execute(
            select(func.count()).select_from(workers).where(
                workers.c.campaign_id == campaign_id, workers.c.last_seen >= now - stale_after
            )
        )
        return max(1, int(live.scalar_one()))


async def leave(db: Database, owner: str) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(workers).where(workers.c.owner == owner))


async def requeue(
    db: Database,
    campaign_id: int,
    *,
    statuses: Sequence[RecipientStatus],
    code: int | None = None,
    ids: Sequence[int] | None = None,
) -> int:
    """Put failed / in_doubt / skipped rows back in the queue for a fresh set of attempts.

    A person decides this (for in_doubt rows it risks a duplicate), so it is never automatic.
    A completed campaign reopens as paused, ready to run again.
    """
    now = time.time()
    wanted = [s.value for s in statuses if s.value in COUNTED and s is not RecipientStatus.SENT]
    moved_by_status: dict[str, int] = {}
    due_now = 0
    async with db.begin() as conn:
        if RecipientStatus.RETRY in statuses:  # waiting for a retry: make it due now
            condition = [recipients.c.campaign_id == campaign_id,
                         recipients.c.status == RecipientStatus.RETRY.value]
            if code is not None:
                condition.append(recipients.c.last_error_code == code)
            if ids is not None:
                condition.append(recipients.c.id.in_(list(ids)))
            result = await conn.execute(update(recipients).where(*condition).values(next_attempt_at=0.0))
            due_now = result.rowcount
        for status in wanted:
            condition = [recipients.c.campaign_id == campaign_id, recipients.c.status == status]
            if code is not None:
                condition.append(recipients.c.last_error_code == code)
            if ids is not None:
                condition.append(recipients.c.id.in_(list(ids)))
            result = await conn.execute(
                update(recipients)
                .where(*condition)
                .values(status=RecipientStatus.QUEUED.value, attempts=0, next_attempt_at=0.0,
                        possibly_sent=0, updated_at=now)
            )
            moved_by_status[COUNTED[status]] = -result.rowcount
        moved = -sum(moved_by_status.values())
        if moved:
            await _bump_counters(conn, campaign_id, moved_by_status, now)
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id,
                       campaigns.c.status == CampaignStatus.COMPLETED.value)
                .values(status=CampaignStatus.PAUSED.value, finished_at=None,
                        pause_reason=f"{moved} recipients requeued; run it to send them")
            )
    return moved + due_now


#: What the retry queue lists: rows waiting for a retry, failed for good, or in doubt.
REVIEWABLE = (RecipientStatus.RETRY, RecipientStatus.FAILED, RecipientStatus.IN_DOUBT)


@dataclass(frozen=True, slots=True)
class ReviewRow:
    id: int
    phone: str
    status: str
    attempts: int
    error_code: int | None
    error_title: str | None
    next_attempt_at: float | None
    step_position: int


def _review_conditions(
    campaign_id: int, status: RecipientStatus | None, code: int | None
) -> list[Any]:
    statuses = [status.value] if status else [s.value for s in REVIEWABLE]
    conditions: list[Any] = [recipients.c.campaign_id == campaign_id, recipients.c.status.in_(statuses)]
    if code is not None:
        conditions.append(recipients.c.last_error_code == code)
    return conditions


async def review_page(
    db: Database,
    campaign_id: int,
    *,
    status: RecipientStatus | None = None,
    code: int | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[ReviewRow], int]:
    """One page of the retry queue (by id, so pages are stable) and the total that match."""
    conditions = _review_conditions(campaign_id, status, code)
    query = (
        select(recipients.c.id, recipients.c.phone, recipients.c.status, recipients.c.attempts,
               recipients.c.last_error_code, recipients.c.last_error_title,
               recipients.c.next_attempt_at, steps.c.position)
        .join(steps, steps.c.id == recipients.c.step_id)
        .where(*conditions)
        .order_by(recipients.c.id)
        .offset(offset)
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        rows = [ReviewRow(*row) for row in await conn.execute(query)]
        total = (
            await conn.execute(select(func.count()).select_from(recipients).where(*conditions))
        ).scalar_one()
    return rows, int(total)


async def iter_review_rows(
    db: Database, campaign_id: int, *, status: RecipientStatus | None = None, code: int | None = None,
    batch: int = 5_000,
) -> Any:
    """Every matching row, a batch at a time (for exports of any size)."""
    last_id = 0
    while True:
        conditions = [*_review_conditions(campaign_id, status, code), recipients.c.id > last_id]
        query = (
            select(recipients.c.id, recipients.c.phone, recipients.c.status, recipients.c.attempts,
                   recipients.c.last_error_code, recipients.c.last_error_title,
                   recipients.c.next_attempt_at, steps.c.position)
            .join(steps, steps.c.id == recipients.c.step_id)
            .where(*conditions).order_by(recipients.c.id).limit(batch)
        )
        async with db.engine.connect() as conn:
            rows = [ReviewRow(*row) for row in await conn.execute(query)]
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id


async def skip(
    db: Database,
    campaign_id: int,
    *,
    statuses: Sequence[RecipientStatus] = REVIEWABLE,
    code: int | None = None,
    ids: Sequence[int] | None = None,
) -> int:
    """A person decided these rows are never to be sent: they become skipped (counted)."""
    now = time.time()
    deltas: dict[str, int] = {"skipped": 0}
    async with db.begin() as conn:
        for status in statuses:
            condition = [recipients.c.campaign_id == campaign_id, recipients.c.status == status.value]
            if code is not None:
                condition.append(recipients.c.last_error_code == code)
            if ids is not None:
                condition.append(recipients.c.id.in_(list(ids)))
            result = await conn.execute(
                update(recipients).where(*condition)
                .values(status=RecipientStatus.SKIPPED.value, updated_at=now)
            )
            column = COUNTED.get(status.value)
            if column and result.rowcount:
                deltas[column] = deltas.get(column, 0) - result.rowcount
            deltas["skipped"] += result.rowcount
        if deltas["skipped"]:
            await _bump_counters(conn, campaign_id, deltas, now)
    return deltas["skipped"]


async def count_status(db: Database, campaign_id: int, status: RecipientStatus) -> int:
    """Rows of one status (an index range count: cheap even at millions of rows)."""
    query = select(func.count()).select_from(recipients).where(
        recipients.c.campaign_id == campaign_id, recipients.c.status == status.value
    )
    async with db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def set_campaign_rate(db: Database, campaign_id: int, rate: float) -> None:
    """Remember the campaign's rate, so a restart sends at the rate last chosen."""
    async with db.begin() as conn:
        await conn.execute(
            update(campaigns).where(campaigns.c.id == campaign_id).values(rate=rate, updated_at=time.time())
        )
