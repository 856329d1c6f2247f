"""Leases: who is sending, giving unsent rows back, and recovering what a dead process left.

Apart from the claim and flush because these run around a send (at its start and end, on a
timer, after a crash), never per message, and because their one question, "is the process
holding this lease still alive?", is asked nowhere else.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import RecipientStatus
from watui.storage.counters import SENDING, bump_counters
from watui.storage.database import Database
from watui.storage.schema import recipients, workers


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


#: An unsent claimed row goes back to where it was: queued, or waiting for its next retry.
_BACK_TO_QUEUE: dict[str, Any] = {
    "status": text("CASE WHEN attempts = 0 THEN 'queued' ELSE 'retry' END"),
    "lease_owner": None,
    "lease_expires_at": None,
}


async def release(db: Database, owner: str, ids: Sequence[int]) -> int:
    """Give unsent claimed rows back to the queue (no request went out for them)."""
    return await _update_claimed(db, owner, ids, _BACK_TO_QUEUE)


async def renew(db: Database, owner: str, ids: Sequence[int], lease_expires_at: float) -> int:
    """Keep claimed rows that wait in memory (sending holds for an API outage) leased to us: a
    peer takes the rows of an expired lease for in doubt."""
    return await _update_claimed(db, owner, ids, {"lease_expires_at": lease_expires_at})


async def _update_claimed(db: Database, owner: str, ids: Sequence[int], values: dict[str, Any]) -> int:
    if not ids:
        return 0
    updated = 0
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
                .values(**values)
            )
            updated += result.rowcount
    return updated


async def defer_claimed(
    conn: AsyncConnection, owner: str, ids: Sequence[int], due_at: float
) -> int:
    """Give unsent claimed rows back, not to be claimed before ``due_at``, inside the caller's
    transaction (the 24-hour limit refuses them in the one that admits the others)."""
    deferred = 0
    for start in range(0, len(ids), 900):
        result = await conn.execute(
            update(recipients)
            .where(
                recipients.c.id.in_(list(ids[start : start + 900])),
                recipients.c.status == SENDING,
                recipients.c.lease_owner == owner,
            )
            .values(**_BACK_TO_QUEUE, next_attempt_at=due_at)
        )
        deferred += result.rowcount
    return deferred


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
            await bump_counters(conn, campaign_id, {"in_doubt": moved}, now)
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
