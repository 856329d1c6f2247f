"""Stored inbound messages and ``user_preferences`` updates applied to the suppression list.

The receiver stores them as they come (webhook_events.py); the applier calls this after its
statuses, so a person who writes STOP or stops marketing messages is on the list (and their
queued rows skipped) within about a second. Each batch is one transaction: the entries, the
skipped rows and the ``applied`` marks together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import SuppressionReason, SuppressionScope, matched_stop_word
from watui.storage.database import Database
from watui.storage.schema import inbound_messages, preference_updates
from watui.storage.suppressions import NewSuppression, lift_resumed_in, suppress_in

#: Updates per transaction.
AUDIENCE_BATCH = 500
#: The category of a ``user_preferences`` update that concerns templates.
MARKETING_MESSAGES = "marketing_messages"
#: A wa_id is the number's digits with its country code.
_WA_ID = re.compile(r"^[1-9]\d{5,14}$")


@dataclass
class AudienceResult:
    read: int = 0
    suppressed: int = 0  # entries added (or widened)
    lifted: int = 0  # entries a resume took off


def phone_of(wa_id: str | None) -> str | None:
    """The E.164 number of a webhook's wa_id, or None when it is not one."""
    return f"+{wa_id}" if wa_id and _WA_ID.match(wa_id) else None


async def apply_audience_events(
    db: Database, stop_words: Sequence[str], *, now: float, limit: int = AUDIENCE_BATCH
) -> AudienceResult:
    """Apply up to ``limit`` stored inbound messages and as many preference updates."""
    result = AudienceResult()
    async with db.begin() as conn:
        messages = await _unapplied(db, conn, inbound_messages, limit)
        preferences = await _unapplied(db, conn, preference_updates, limit)
        result.read = len(messages) + len(preferences)
        if not result.read:
            return result
        await _apply_messages(conn, messages, stop_words, now, result)
        await _apply_preferences(conn, preferences, now, result)
    return result


async def _unapplied(db: Database, conn: AsyncConnection, table: Table, limit: int) -> list[Any]:
    query = db.kind.locked(
        select(table).where(table.c.applied.is_(None)).order_by(table.c.id).limit(limit)
    )
    return list((await conn.execute(query)).all())


async def _apply_messages(
    conn: AsyncConnection, messages: Sequence[Any], stop_words: Sequence[str], now: float,
    result: AudienceResult,
) -> None:  # fmt: skip
    """A message whose whole text is a stop word suppresses its sender for every template."""
    stops: list[NewSuppression] = []
    used: list[int] = []
    for message in messages:
        word = matched_stop_word(message.text, stop_words)
        phone = phone_of(message.sender)
        if word is not None and phone is not None:
            stops.append(NewSuppression(phone, SuppressionReason.STOP_WORD, SuppressionScope.ALL,
                                        detail=word, user_id=message.user_id or None))  # fmt: skip
            used.append(message.id)
    if stops:
        result.suppressed += (await suppress_in(conn, stops, now=now)).added
    await _mark(conn, inbound_messages, messages, used)


async def _apply_preferences(
    conn: AsyncConnection, preferences: Sequence[Any], now: float, result: AudienceResult
) -> None:
    """In arrival order (a stop then a resume leaves the number free): a marketing stop
    suppresses marketing templates; a resume lifts what a stop made."""
    used: list[int] = []
    for update_row in preferences:
        if update_row.category != MARKETING_MESSAGES:
            continue
        phone = phone_of(update_row.wa_id)
        user_id = update_row.user_id or None
        if update_row.value == "stop" and phone is not None:
            entry = NewSuppression(phone, SuppressionReason.USER_PREFERENCES,
                                   SuppressionScope.MARKETING, update_row.detail, user_id)  # fmt: skip
            result.suppressed += (await suppress_in(conn, [entry], now=now)).added
        elif update_row.value == "resume":
            result.lifted += await lift_resumed_in(
                conn, [phone] if phone else [], [user_id] if user_id else []
            )
        else:
            continue
        used.append(update_row.id)
    await _mark(conn, preference_updates, preferences, used)


async def _mark(conn: AsyncConnection, table: Table, rows: Sequence[Any], used: Sequence[int]) -> None:
    """``applied``: true for the rows that changed the list, false for the rest (nothing to do)."""
    used_ids = set(used)
    unused = [row.id for row in rows if row.id not in used_ids]
    for applied, ids in ((True, list(used_ids)), (False, unused)):
        if ids:
            await conn.execute(update(table).where(table.c.id.in_(ids)).values(applied=applied))
