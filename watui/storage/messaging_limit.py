"""The 24-hour messaging limit: who got a template when, and reserving room for new numbers.

Meta counts the unique recipients of a portfolio's templates over a moving 24 h and documents
no error for going over, so watui counts them itself and stops short. ``messaged_phones`` holds
one row per number with the time of its latest template; the rows inside the window are the
count. A claimed row reserves its number at claim time (``admit``), in a transaction that takes
turns with every other process's, so two campaigns or processes together never pass the limit.

What counts: a number counts from its reservation, whether or not its request then leaves. A
row given back unsent (a clean stop) keeps its number's slot, so resuming sends it without
counting it twice; a row never sent at all (cancelled) wastes its slot until it ages out. The
count may be a little high, never low.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import (
    FROM_ACCOUNT,
    MESSAGING_LIMIT_WINDOW_S,
    UNLIMITED,
    RecipientStatus,
    account_messaging_limit,
    messaging_limit_wait,
)
from watui.settings.model import WhatsAppSettings
from watui.storage import leases
from watui.storage.database import Database
from watui.storage.number_health import list_number_health
from watui.storage.schema import messaged_phones, recipients
from watui.storage.sending.outcomes import ClaimedRecipient

_CHUNK = 900  # bound parameters per IN list: far under SQLite's limit


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """The window as it stands: how many numbers it holds and when the oldest leaves it."""

    limit: int
    used: int
    next_free_at: float | None  # None while the window has room

    @property
    def available(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def wait_reason(self) -> str:
        return messaging_limit_wait(self.limit, self.next_free_at)


@dataclass(frozen=True, slots=True)
class Admission:
    """A claim passed through the limit: the rows that may be sent, and how many were refused
    (given back to the queue until ``usage.next_free_at``)."""

    admitted: list[ClaimedRecipient]
    refused: int
    usage: LimitUsage


async def current_limit(db: Database, settings: WhatsAppSettings) -> int | None:
    """The limit in force, None when unlimited: the one place it is read. The setting, or
    with ``account`` the tier the Graph API last reported for the sending number (polled
    before each run and every send.health_poll_s, or told by a webhook: number_health)."""
    value = settings.messaging_limit
    if value == FROM_ACCOUNT:
        heard = await list_number_health(db, [settings.phone_number_id])
        return account_messaging_limit(heard[0].messaging_limit if heard else None)
    return None if value == UNLIMITED else int(value)


async def usage(db: Database, limit: int, now: float) -> LimitUsage:
    """Read-only: the window's count now, for status lines and the dry run."""
    async with db.engine.connect() as conn:
        return await _usage(conn, limit, now - MESSAGING_LIMIT_WINDOW_S)


async def shared_wait_reason(db: Database, settings: WhatsAppSettings, now: float) -> str | None:
    """Why a campaign with work left would wait for the limit now, or None (also when
    unlimited, without a query): for campaigns that another process sends."""
    limit = await current_limit(db, settings)
    if limit is None:
        return None
    now_usage = await usage(db, limit, now)
    return now_usage.wait_reason if now_usage.available == 0 else None


async def admit(
    db: Database, claimed: Sequence[ClaimedRecipient], limit: int, owner: str, now: float,
    *, seed: bool = False,
) -> Admission:
    """Reserve the numbers of ``claimed`` (numbers already in the window cost nothing) and give
    back, until a slot frees, the rows that would pass the limit; one transaction, in turn
    with every other process's. ``seed`` first adds what recipients say was sent in the
    window (sent while the limit was off, or by an older watui)."""
    cutoff = now - MESSAGING_LIMIT_WINDOW_S
    async with db.begin() as conn:
        await db.kind.lock_messaging_limit(conn)
        # The first statement writes: on SQLite it takes the write lock for the transaction.
        await conn.execute(delete(messaged_phones).where(messaged_phones.c.last_at <= cutoff))
        if seed:
            await _seed_from_recipients(conn, cutoff)
        before = await _usage(conn, limit, cutoff)
        known = await _in_window(conn, [row.phone for row in claimed])
        admitted, refused, new = _split(claimed, known, before.available)
        await _stamp(conn, known, new, now)
        after = LimitUsage(limit, before.used + len(new), None)
        if refused or after.available == 0:
            after = await _usage(conn, limit, cutoff)  # full: when the oldest number leaves
        if refused:
            due = after.next_free_at if after.next_free_at is not None else now
            await leases.defer_claimed(conn, owner, [row.id for row in refused], due)
    return Admission(admitted, len(refused), after)


def _split(
    claimed: Sequence[ClaimedRecipient], known: set[str], room: int
) -> tuple[list[ClaimedRecipient], list[ClaimedRecipient], list[str]]:
    """Admitted rows (known numbers, then new ones while there is room), refused rows, and the
    new numbers admitted."""
    admitted: list[ClaimedRecipient] = []
    refused: list[ClaimedRecipient] = []
    new: list[str] = []
    taken = set(known)
    for row in claimed:
        if row.phone in taken:
            admitted.append(row)
        elif len(new) < room:
            new.append(row.phone)
            taken.add(row.phone)
            admitted.append(row)
        else:
            refused.append(row)
    return admitted, refused, new


async def _usage(conn: AsyncConnection, limit: int, cutoff: float) -> LimitUsage:
    """Counted as every row less the aged-out ones (few: each reservation deletes them): a
    count over the window's range of the index took 16 ms at 100,000 numbers, these 2 ms."""
    total = (await conn.execute(select(func.count()).select_from(messaged_phones))).scalar_one()
    aged = (await conn.execute(
        select(func.count()).where(messaged_phones.c.last_at <= cutoff)
    )).scalar_one()
    used = int(total) - int(aged)
    if used < limit:
        return LimitUsage(limit, used, None)
    oldest = (await conn.execute(
        select(func.min(messaged_phones.c.last_at)).where(messaged_phones.c.last_at > cutoff)
    )).scalar_one()
    return LimitUsage(limit, used, float(oldest) + MESSAGING_LIMIT_WINDOW_S)


async def _in_window(conn: AsyncConnection, phones: Sequence[str]) -> set[str]:
    """Which of ``phones`` are in the window (older rows were deleted just before)."""
    unique = list(dict.fromkeys(phones))
    found: set[str] = set()
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        query = select(messaged_phones.c.phone).where(messaged_phones.c.phone.in_(chunk))
        found.update((await conn.execute(query)).scalars())
    return found


async def _stamp(conn: AsyncConnection, known: set[str], new: list[str], now: float) -> None:
    """Move the known numbers' time to now (their window moves with the new template) and add
    the new ones."""
    ordered = sorted(known)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        await conn.execute(
            update(messaged_phones).where(messaged_phones.c.phone.in_(chunk)).values(last_at=now)
        )
    if new:
        await conn.execute(insert(messaged_phones), [{"phone": p, "last_at": now} for p in new])


_MAYBE_SENT = (RecipientStatus.IN_DOUBT.value, RecipientStatus.UNCONFIRMED.value)


async def _seed_from_recipients(conn: AsyncConnection, cutoff: float) -> None:
    """Numbers the recipients table says got a template in the window and the ledger lacks."""
    when = func.coalesce(recipients.c.sent_at, recipients.c.updated_at)
    listed = exists().where(messaged_phones.c.phone == recipients.c.phone)
    history = (
        select(recipients.c.phone, func.max(when))
        .where(
            or_(
                recipients.c.sent_at > cutoff,
                and_(recipients.c.status.in_(_MAYBE_SENT), recipients.c.updated_at > cutoff),
            ),
            ~listed,
        )
        .group_by(recipients.c.phone)
    )
    await conn.execute(
        insert(messaged_phones).from_select([messaged_phones.c.phone, messaged_phones.c.last_at], history)
    )


async def nth_free_slot(db: Database, nth: int, now: float) -> float | None:
    """When the ``nth`` (from 1) number now in the window leaves it, None past the last."""
    cutoff = now - MESSAGING_LIMIT_WINDOW_S
    query = (
        select(messaged_phones.c.last_at)
        .where(messaged_phones.c.last_at > cutoff)
        .order_by(messaged_phones.c.last_at)
        .offset(nth - 1)
        .limit(1)
    )
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).scalar()
    return None if found is None else float(found) + MESSAGING_LIMIT_WINDOW_S
