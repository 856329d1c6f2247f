"""What watui heard of its phone numbers' health: one row per number, from polls and webhooks.

One place that the engine (each control tick), the command line and the UI read, whoever heard
it: a poll of the Graph API (``source = poll``) or Meta's ``phone_number_quality_update``
webhook (``source = webhook``). Rows are keyed by the display number's digits, because the
webhook names no phone_number_id; a poll fills the id in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.storage.database import Database
from watui.storage.schema import number_health

POLL, WEBHOOK = "poll", "webhook"


@dataclass(frozen=True, slots=True)
class NumberHealth:
    """One number as last heard of; None where nothing was said yet."""

    display_digits: str
    phone_number_id: str | None
    display_number: str
    verified_name: str | None
    quality: str | None
    throughput_level: str | None
    messaging_limit: str | None
    event: str | None
    heard_at: float
    source: str

    @classmethod
    def from_row(cls, row: Any) -> NumberHealth:
        return cls(**row._mapping)


@dataclass(frozen=True, slots=True)
class HeardNumber:
    """What one poll or webhook said of a number; None: it said nothing of that field (the
    stored value stays)."""

    display_number: str
    phone_number_id: str | None = None
    verified_name: str | None = None
    quality: str | None = None
    throughput_level: str | None = None
    messaging_limit: str | None = None
    event: str | None = None


def display_digits(display_number: str) -> str:
    """``+1 555-010-0001`` -> ``15550100001``: how webhooks write the number."""
    return "".join(char for char in display_number if char.isdigit())


async def record_heard(
    db: Database, heard: Sequence[HeardNumber], *, source: str, now: float
) -> None:
    """Store what was heard, each field said overwriting the stored one, in one transaction.

    Two processes may add the same new number at once (a poll and the receiver): the loser's
    insert fails on the key, and it writes again as an update."""
    if not heard:
        return
    for attempt in range(2):
        try:
            async with db.begin() as conn:
                for number in heard:
                    await _record_one(conn, number, source, now)
            return
        except IntegrityError:
            if attempt:
                raise


async def _record_one(conn: AsyncConnection, heard: HeardNumber, source: str, now: float) -> None:
    key = display_digits(heard.display_number)
    said = {
        name: value
        for name, value in (
            ("phone_number_id", heard.phone_number_id), ("verified_name", heard.verified_name),
            ("quality", heard.quality), ("throughput_level", heard.throughput_level),
            ("messaging_limit", heard.messaging_limit), ("event", heard.event),
        )
        if value is not None
    }  # fmt: skip
    if heard.phone_number_id is not None:
        # The id moved to another display number (a number re-registered): the old row goes.
        await conn.execute(
            update(number_health)
            .where(number_health.c.phone_number_id == heard.phone_number_id,
                   number_health.c.display_digits != key)
            .values(phone_number_id=None)
        )  # fmt: skip
    values = {**said, "heard_at": now, "source": source}
    if source == POLL:  # webhooks write it as bare digits: keep the API's way of showing it
        values["display_number"] = heard.display_number
    result = await conn.execute(
        update(number_health).where(number_health.c.display_digits == key).values(**values)
    )
    if result.rowcount == 0:
        values["display_number"] = heard.display_number
        await conn.execute(insert(number_health).values(display_digits=key, **values))


async def list_number_health(
    db: Database, phone_number_ids: Sequence[str] | None = None
) -> list[NumberHealth]:
    """Every number heard of (or those with these ids), by display number."""
    query = select(number_health).order_by(number_health.c.display_digits)
    if phone_number_ids is not None:
        query = query.where(number_health.c.phone_number_id.in_(list(phone_number_ids)))
    async with db.engine.connect() as conn:
        return [NumberHealth.from_row(row) for row in await conn.execute(query)]
