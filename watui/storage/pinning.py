"""Which number each recipient of a campaign of several is pinned to (``recipients.sender``).

Apart from the claim because these run once per run or per paused number, never per message:
pinning the recipients an older watui left unpinned (or pinned to a number the campaign no
longer has), and moving a paused number's pending recipients to the numbers still sending
(``send.reassign_on_pause``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from watui.rules import sender_for
from watui.storage.database import Database
from watui.storage.number_leases import held_by, number_leases
from watui.storage.rows import CampaignRecord
from watui.storage.schema import CLAIMABLE, recipients

_WAITING = [status.value for status in CLAIMABLE]  # queued, retry: not leased by anyone
_CHUNK = 900  # ids per statement: under SQLite's bound-parameter limit


async def pin_waiting(db: Database, campaign_id: int, numbers: Sequence[str]) -> int:
    """Waiting recipients with no number (NULL: the first of ``numbers``) are pinned to it, and
    those pinned to a number the campaign no longer has move to its numbers (``sender_for``),
    so that every waiting row has a number that claims it, each claim one index range
    (ix_recipients_claim_sender). Returns how many rows moved; reads only, when none must."""
    async with db.engine.connect() as conn:
        found = set((await conn.execute(
            select(recipients.c.sender).distinct().where(
                recipients.c.campaign_id == campaign_id, recipients.c.status.in_(_WAITING))
        )).scalars())
    moved = 0
    if None in found:
        async with db.begin() as conn:
            result = await conn.execute(
                update(recipients)
                .where(recipients.c.campaign_id == campaign_id, recipients.c.status.in_(_WAITING),
                       recipients.c.sender.is_(None))
                .values(sender=numbers[0])
            )
        moved += int(result.rowcount or 0)
    strays = [number for number in found if number is not None and number not in numbers]
    if strays:
        moved += sum((await reassign(db, campaign_id, strays, numbers)).values())
    return moved


async def reassign(
    db: Database, campaign_id: int, paused: Sequence[str], to: Sequence[str]
) -> dict[str, int]:
    """Move the waiting recipients of the ``paused`` numbers to the numbers in ``to``, each by
    ``rules.sender_for`` over ``to``; returns how many each of ``to`` received. Rows leased
    meanwhile (sending) keep their number."""
    async with db.begin() as conn:
        rows = await conn.execute(
            select(recipients.c.id, recipients.c.phone).where(
                recipients.c.campaign_id == campaign_id, recipients.c.status.in_(_WAITING),
                recipients.c.sender.in_(list(paused)),
            )
        )
        by_number: dict[str, list[int]] = defaultdict(list)
        for recipient_id, phone in rows:
            by_number[sender_for(phone, to)].append(recipient_id)
        moved: dict[str, int] = {}
        for number, ids in by_number.items():
            moved[number] = 0
            for start in range(0, len(ids), _CHUNK):
                result = await conn.execute(
                    update(recipients)
                    .where(recipients.c.id.in_(ids[start : start + _CHUNK]),
                           recipients.c.status.in_(_WAITING),
                           recipients.c.sender.in_(list(paused)))
                    .values(sender=number)
                )
                moved[number] += int(result.rowcount or 0)
    return moved



async def senders_status(db: Database, campaign: CampaignRecord, configured: str) -> list[dict[str, Any]]:
    """Each number of the campaign (``watui status --json``'s ``senders``): its recipients by
    status (unpinned ones under the first number), whether it is paused and why, and which
    process paces it now."""
    numbers = campaign.sender_numbers(configured)
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.sender, recipients.c.status, func.count())
            .where(recipients.c.campaign_id == campaign.id)
            .group_by(recipients.c.sender, recipients.c.status)
        )
        by_number: dict[str, dict[str, int]] = defaultdict(dict)
        for sender, status, count in rows:
            counts = by_number[sender or numbers[0]]
            counts[status] = counts.get(status, 0) + int(count)
    leases = await number_leases(db, campaign.id)
    now = time.time()
    shown = []
    for number in numbers:
        lease = leases.get(number)
        shown.append({
            "phone_number_id": number,
            "by_status": by_number.get(number, {}),
            "paused_reason": lease.paused_reason if lease else None,
            "held_by": held_by(lease, now),
        })
    return shown
