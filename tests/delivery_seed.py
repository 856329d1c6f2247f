"""Outcomes and delivery webhooks written straight into the database, counters kept equal to
the rows: the figures, report and export tests read what the applier would have written."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update

from watui.storage.database import Database
from watui.storage.schema import campaigns, deliveries, recipients

ACCEPTED_AT = 1_780_000_000.0  # when the API accepted every seeded send


@dataclass(frozen=True)
class Outcomes:
    """How many recipients (in id order) end in each way; the rest stay queued."""

    read: int = 0  # accepted, delivered and read
    delivered: int = 0  # accepted and delivered, not read
    sent_only: int = 0  # accepted, no status yet
    failed_before: int = 0  # the API refused the send (code 131026)
    failed_after: int = 0  # accepted, then a `failed` webhook (code 131049)
    in_doubt: int = 0
    unconfirmed: int = 0
    skipped: int = 0
    deliver_seconds: float = 2.0  # accepted → delivered, growing by 1 s per recipient
    read_seconds: float = 30.0


async def seed_outcomes(db: Database, campaign_id: int, outcomes: Outcomes) -> None:
    async with db.engine.begin() as conn:
        ids = list((await conn.execute(
            select(recipients.c.id).where(recipients.c.campaign_id == campaign_id)
            .order_by(recipients.c.id))).scalars())
        plan = (
            ("read", outcomes.read), ("delivered", outcomes.delivered),
            ("sent_only", outcomes.sent_only), ("failed_before", outcomes.failed_before),
            ("failed_after", outcomes.failed_after), ("in_doubt", outcomes.in_doubt),
            ("unconfirmed", outcomes.unconfirmed), ("skipped", outcomes.skipped),
        )
        start = 0
        delivery_rows: list[dict[str, object]] = []
        for kind, count in plan:
            chosen = ids[start:start + count]
            start += count
            if not chosen:
                continue
            await conn.execute(update(recipients).where(recipients.c.id.in_(chosen)).values(
                **_recipient_values(kind)))
            delivery_rows += [_delivery_row(kind, rid, campaign_id, i, outcomes)
                              for i, rid in enumerate(chosen) if kind in _REPORTED]
        for first in range(0, len(delivery_rows), 5_000):
            await conn.execute(insert(deliveries), delivery_rows[first:first + 5_000])
        await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
            sent=outcomes.read + outcomes.delivered + outcomes.sent_only,
            failed=outcomes.failed_before + outcomes.failed_after,
            failed_after=outcomes.failed_after, in_doubt=outcomes.in_doubt,
            unconfirmed=outcomes.unconfirmed, skipped=outcomes.skipped,
            delivered=outcomes.read + outcomes.delivered, read=outcomes.read,
        ))


_REPORTED = ("read", "delivered", "failed_after")
_STATUS = {"read": "sent", "delivered": "sent", "sent_only": "sent", "failed_before": "failed",
           "failed_after": "failed", "in_doubt": "in_doubt", "unconfirmed": "unconfirmed",
           "skipped": "skipped"}


def _recipient_values(kind: str) -> dict[str, object]:
    values: dict[str, object] = {"status": _STATUS[kind], "attempts": 1}
    if kind in ("read", "delivered", "sent_only", "failed_after"):
        values.update(sent_at=ACCEPTED_AT, wamid="wamid.seeded")
    if kind == "failed_before":
        values.update(last_error_code=131026, last_error_title="Message undeliverable")
    return values


def _delivery_row(
    kind: str, rid: int, campaign_id: int, index: int, outcomes: Outcomes
) -> dict[str, object]:
    delivered_at = ACCEPTED_AT + outcomes.deliver_seconds + index
    row: dict[str, object] = {
        "recipient_id": rid, "campaign_id": campaign_id, "wamid": f"wamid.{rid}",
        "state": kind if kind != "failed_after" else "failed", "sent_at": ACCEPTED_AT + 1,
        "delivered_at": None, "read_at": None, "failed_at": None, "error_code": None,
        "error_title": None, "error_details": None,
        "pricing_category": "marketing" if kind != "failed_after" else None,
        "updated_at": ACCEPTED_AT,
    }
    if kind in ("read", "delivered"):
        row["delivered_at"] = delivered_at
    if kind == "read":
        row["read_at"] = delivered_at + outcomes.read_seconds
    if kind == "failed_after":
        row.update(failed_at=ACCEPTED_AT + 5, error_code=131049,
                   error_title="This message was not delivered to maintain healthy ecosystem "
                   "engagement.", error_details="marketing limit")
    return row
