"""Which phone numbers' statuses the receiver has been hearing, and since when, in the database.

An in-doubt recipient becomes unconfirmed only when statuses for its number kept coming all
through the grace period (``rules.heard_throughout``). Kept in one process's memory, a restart
forgot it (and a second process never knew it): a receiver restarted 9 minutes into the 10
waited 10 more, and ``watui webhook`` beside a UI proved nothing to the UI's applier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, text

from watui.rules import heard_throughout
from watui.storage.database import Database
from watui.storage.schema import number_hearing

#: One statement on both databases (SQLite 3.24+ and PostgreSQL share ON CONFLICT ... DO UPDATE):
#: a gap longer than :gap since the last status starts a new unbroken run at this one; an older
#: status (arriving late, or from a slower process) never moves the last one back.
_HEARD = text("""
    INSERT INTO number_hearing (phone_number_id, since, last_heard)
    VALUES (:number, :at, :at)
    ON CONFLICT (phone_number_id) DO UPDATE SET
      since = CASE WHEN excluded.last_heard - number_hearing.last_heard > :gap
                   THEN excluded.last_heard ELSE number_hearing.since END,
      last_heard = CASE WHEN excluded.last_heard > number_hearing.last_heard
                        THEN excluded.last_heard ELSE number_hearing.last_heard END
""")


@dataclass(frozen=True, slots=True)
class Heard:
    phone_number_id: str
    since: float
    last_heard: float


async def record_heard(db: Database, latest: Mapping[str, float], *, gap: float) -> None:
    """Statuses for these numbers were received (the latest of each at its time), in one
    transaction; ``gap``: webhook.unconfirmed_after_s, longer silences break the run."""
    if latest:
        async with db.begin() as conn:
            await conn.execute(
                _HEARD, [{"number": number, "at": at, "gap": gap} for number, at in latest.items()]
            )


async def heard_numbers(db: Database) -> list[Heard]:
    """Every number the receiver has heard statuses for (a handful: the business's numbers)."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(number_hearing).order_by(number_hearing.c.phone_number_id))
        return [Heard(row.phone_number_id, row.since, row.last_heard) for row in rows]


async def unconfirmed_before(
    db: Database, number: str | None, *, now: float, grace: float, gap: float
) -> float | None:
    """In-doubt recipients from before the returned time may be given up on: statuses for
    ``number`` (any number when None) kept coming all through the grace period. None when the
    receiver, this process's or another's, has not heard enough."""
    for heard in await heard_numbers(db):
        if number is not None and heard.phone_number_id != number:
            continue
        if heard_throughout(heard.since, heard.last_heard, now, grace, gap):
            return now - grace
    return None
