"""Which process paces each number of a campaign of several, and which numbers are paused.

A number's rate is the API's limit for that number, so exactly one process may pace it at a
time: it holds the number's row in ``sender_leases`` and renews it every second; a holder that
dies or stops lets it go within LEASE_SECONDS, and another process takes it. Apart from the
recipients' leases (storage.leases) because these are per number, not per row, and live as
long as a run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from watui.storage.database import Database
from watui.storage.schema import sender_leases

#: How long a number stays held without a renewal: its holder renews it every second, so a
#: dead holder's numbers are taken over within this many seconds.
LEASE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class NumberLease:
    phone_number_id: str
    holder: str | None
    expires_at: float | None
    paused_reason: str | None


_ours = sender_leases.c


def _of(campaign_id: int, number: str | None = None) -> list[ColumnElement[bool]]:
    where = [_ours.campaign_id == campaign_id]
    if number is not None:
        where.append(_ours.phone_number_id == number)
    return where


async def number_leases(db: Database, campaign_id: int) -> dict[str, NumberLease]:
    """Every number of the campaign that has a lease row, by phone_number_id."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(sender_leases).where(*_of(campaign_id)))
        return {
            row.phone_number_id: NumberLease(
                row.phone_number_id, row.holder, row.expires_at, row.paused_reason)
            for row in rows
        }


async def _ensure_rows(db: Database, campaign_id: int, numbers: Sequence[str]) -> None:
    known = await number_leases(db, campaign_id)
    missing = [number for number in numbers if number not in known]
    if not missing:
        return
    try:
        async with db.begin() as conn:
            await conn.execute(insert(sender_leases), [
                {"campaign_id": campaign_id, "phone_number_id": number} for number in missing
            ])
    except IntegrityError:  # another process made them at the same moment: they exist now
        pass


async def hold_numbers(
    db: Database, campaign_id: int, owner: str, numbers: Sequence[str], *, want: int,
    now: float | None = None,
) -> list[str]:
    """Renew the numbers ``owner`` holds and take free ones (never held, expired, not paused)
    until it holds ``want``; returns the numbers it holds, in the order of ``numbers``."""
    now = time.time() if now is None else now
    expires = now + LEASE_SECONDS
    await _ensure_rows(db, campaign_id, numbers)
    async with db.begin() as conn:
        await conn.execute(
            update(sender_leases).where(*_of(campaign_id), _ours.holder == owner)
            .values(expires_at=expires)
        )
        held = set((await conn.execute(
            select(_ours.phone_number_id).where(*_of(campaign_id), _ours.holder == owner)
        )).scalars())
        for number in numbers:
            if len(held) >= want:
                break
            if number in held:
                continue
            taken = await conn.execute(
                update(sender_leases).where(
                    *_of(campaign_id, number), _ours.paused_reason.is_(None),
                    or_(_ours.holder.is_(None), _ours.expires_at < now),
                ).values(holder=owner, expires_at=expires)
            )
            if taken.rowcount:
                held.add(number)
    return [number for number in numbers if number in held]


async def let_go(db: Database, campaign_id: int, owner: str, numbers: Sequence[str] | None = None) -> None:
    """Give up ``numbers`` (all that ``owner`` holds when None) for another process to take."""
    where = [*_of(campaign_id), _ours.holder == owner]
    if numbers is not None:
        where.append(_ours.phone_number_id.in_(list(numbers)))
    async with db.begin() as conn:
        await conn.execute(update(sender_leases).where(*where).values(holder=None, expires_at=None))


async def pause_number(db: Database, campaign_id: int, number: str, reason: str) -> None:
    """An account-level error stopped ``number``: no process takes it until the campaign is
    resumed (``resume_numbers``)."""
    async with db.begin() as conn:
        await conn.execute(
            update(sender_leases).where(*_of(campaign_id, number)).values(paused_reason=reason)
        )


async def resume_numbers(db: Database, campaign_id: int) -> None:
    """A person resumed the campaign: every number may send again."""
    async with db.begin() as conn:
        await conn.execute(
            update(sender_leases)
            .where(*_of(campaign_id), _ours.paused_reason.isnot(None))
            .values(paused_reason=None)
        )


def held_by(lease: NumberLease | None, now: float) -> str | None:
    """The live process that holds this number, if any."""
    if lease is None or lease.holder is None or lease.expires_at is None or lease.expires_at < now:
        return None
    return lease.holder


def held_elsewhere(lease: NumberLease | None, owner: str, now: float) -> bool:
    """Whether another live process holds this number."""
    return held_by(lease, now) not in (None, owner)
