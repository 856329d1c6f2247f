"""Outcomes and delivery webhooks written straight into the database, counters kept equal to
the rows: the figures, report and export tests read what the applier would have written."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, insert, select, update

from watui.storage.database import Database
from watui.storage.schema import campaigns, deliveries, recipients, steps

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


# ----- a million recipients, fast: the export test and bench.export_bench -----

#: Big campaigns: of every 100 recipients, 40 read, 40 delivered, 10 accepted with no status,
#: 5 failed at the send, 2 failed after acceptance, 3 still queued.
_BIG_MIX = (("read", 40), ("delivered", 40), ("sent_only", 10), ("failed_before", 5),
            ("failed_after", 2), ("queued", 3))
_BIG_KIND = [kind for kind, share in _BIG_MIX for _ in range(share)]
#: In the tables' own column order: the compiled INSERT lists them so.
_RECIPIENT_COLUMNS = ("id", "campaign_id", "step_id", "line_no", "phone", "params", "status",
                      "attempts", "next_attempt_at", "wamid", "last_error_code",
                      "last_error_title", "possibly_sent", "sent_at")
_DELIVERY_COLUMNS = ("recipient_id", "campaign_id", "wamid", "state", "sent_at",
                     "delivered_at", "read_at", "failed_at", "error_code", "error_title",
                     "error_details", "pricing_category", "updated_at")


def _big_rows(campaign_id: int, step_id: int, indexes: range, first_id: int) -> Iterator[
        tuple[tuple[object, ...], tuple[object, ...] | None]]:
    """(recipient row, delivery row or None) for each recipient, in id order."""
    for index in indexes:
        rid = first_id + index
        kind = _BIG_KIND[index % 100]
        status = _STATUS.get(kind, "queued")
        accepted = ACCEPTED_AT + index / 1000 if kind in _ACCEPTED else None
        wamid = f"wamid.{rid}" if accepted else None
        code, title = (131026, "Message undeliverable") if kind == "failed_before" else (None, None)
        recipient = (rid, campaign_id, step_id, index + 2, f"+3461{index:07d}",
                     '{"body": ["Ana"]}', status, 0 if kind == "queued" else 1, 0.0, wamid,
                     code, title, 0, accepted)
        delivery = None
        if kind in _REPORTED and accepted is not None:
            delivered = accepted + 1 + index % 30 if kind != "failed_after" else None
            delivery = (rid, campaign_id, wamid, "failed" if kind == "failed_after" else kind,
                        accepted + 0.5, delivered, accepted + 90 if kind == "read" else None,
                        accepted + 3 if kind == "failed_after" else None,
                        131049 if kind == "failed_after" else None,
                        "Not delivered" if kind == "failed_after" else None,
                        "marketing limit" if kind == "failed_after" else None,
                        None if kind == "failed_after" else "marketing", accepted)
        yield recipient, delivery


_ACCEPTED = ("read", "delivered", "sent_only", "failed_after")


def big_counters(count: int) -> dict[str, int]:
    """The campaign counters that match ``_big_rows`` of ``count`` recipients."""
    kinds = Counter(_BIG_KIND[index % 100] for index in range(count))
    return {
        "total": count, "sent": kinds["read"] + kinds["delivered"] + kinds["sent_only"],
        "failed": kinds["failed_before"] + kinds["failed_after"],
        "failed_after": kinds["failed_after"], "delivered": kinds["read"] + kinds["delivered"],
        "read": kinds["read"],
    }


async def seed_big_campaign(db: Database, name: str, count: int) -> int:
    """A campaign of ``count`` recipients with deliveries rows, written in bulk by the
    database's fastest path (executemany on SQLite, COPY on PostgreSQL). Returns its id."""
    from tests.factories import make_campaign

    campaign_id = await make_campaign(db, name, recipients_per_step=0)
    async with db.engine.begin() as conn:
        step_id = (await conn.execute(
            select(steps.c.id).where(steps.c.campaign_id == campaign_id))).scalar_one()
        first_id = int((await conn.execute(select(func.coalesce(func.max(recipients.c.id), 0))))
                       .scalar_one()) + 1
        raw = (await conn.get_raw_connection()).driver_connection
        for start in range(0, count, 100_000):
            pairs = list(_big_rows(campaign_id, step_id,
                                   range(start, min(start + 100_000, count)), first_id))
            await _bulk(db, raw, recipients, _RECIPIENT_COLUMNS, [p[0] for p in pairs])
            await _bulk(db, raw, deliveries, _DELIVERY_COLUMNS,
                        [p[1] for p in pairs if p[1] is not None])
        await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
            **big_counters(count)))
        await conn.execute(update(steps).where(steps.c.id == step_id).values(total=count))
    return campaign_id


async def _bulk(db: Database, raw: Any, table: Table, columns: tuple[str, ...],
                rows: list[Any]) -> None:
    if db.engine.dialect.name == "postgresql":
        await raw.copy_records_to_table(table.name, records=rows, columns=list(columns))
        return
    assert list(columns) == [column.name for column in table.columns if column.name in columns]
    statement = str(insert(table).compile(dialect=db.engine.dialect, column_keys=list(columns)))
    cursor = await raw.cursor()
    await cursor.executemany(statement, rows)
