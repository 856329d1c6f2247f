"""Applying stored status webhooks (storage/deliveries.py with the receiver's judge of late
failures), on a real SQLite file and a real PostgreSQL server: deliveries, recipients and
counters move together, in doubt is resolved, failures after acceptance act, and any order or
repetition of the same statuses comes to the same rows and counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from tests.factories import make_campaign
from watui.receiver.late_failures import judge_late_failure
from watui.rules import recipient_callback
from watui.settings import RetrySettings
from watui.storage.campaigns import campaign_row, counters_match_rows
from watui.storage.counters import bump_counters
from watui.storage.database import Database
from watui.storage.deliveries import ApplyResult, apply_delivery_events, mark_unconfirmed
from watui.storage.schema import (
    attempts,
    campaigns,
    deliveries,
    delivery_events,
    preference_updates,
    recipients,
)
from watui.storage.webhook_events import WebhookRows, store_webhook_rows

RETRY = RetrySettings(max_retries=2, delays=[30.0, 60.0])
PHONE_ID = "106540352242922"
T0 = 1_767_225_600.0


async def recipient_ids(db: Database, campaign_id: int) -> list[int]:
    async with db.engine.connect() as conn:
        query = select(recipients.c.id).where(recipients.c.campaign_id == campaign_id)
        return list((await conn.execute(query.order_by(recipients.c.id))).scalars())


async def set_status(
    db: Database, campaign_id: int, ids: Sequence[int], status: str, *, wamid: bool = True,
    updated_at: float | None = None,
) -> None:  # fmt: skip
    """Rows as a flush (or crash recovery) leaves them, with their counters."""
    async with db.begin() as conn:
        for rid in ids:
            await conn.execute(update(recipients).where(recipients.c.id == rid).values(
                status=status, attempts=1, wamid=wamid_of(rid) if wamid else None,
                updated_at=updated_at if updated_at is not None else time.time(),
            ))  # fmt: skip
        counter = {"sent": "sent", "in_doubt": "in_doubt", "failed": "failed"}.get(status)
        if counter:
            await bump_counters(conn, campaign_id, {counter: len(ids)}, time.time())


async def one_sent_recipient(db: Database) -> tuple[int, int]:
    """A campaign of one recipient, accepted by the API: (campaign id, recipient id)."""
    cid = await make_campaign(db, recipients_per_step=1)
    [rid] = await recipient_ids(db, cid)
    await set_status(db, cid, [rid], "sent")
    return cid, rid


async def failed_after_acceptance(db: Database, code: int, *, campaign: str) -> tuple[int, int]:
    """One recipient accepted, then reported failed with ``code`` while its campaign is in
    status ``campaign``, and the status applied: (campaign id, recipient id)."""
    cid, rid = await one_sent_recipient(db)
    await set_campaign(db, campaign)
    await store(db, [status_row(rid, "failed", code=code)])
    await apply(db)
    return cid, rid


async def set_campaign(db: Database, status: str) -> None:
    async with db.begin() as conn:
        await conn.execute(update(campaigns).values(status=status))


def wamid_of(recipient_id: int) -> str:
    return f"wamid.TEST{recipient_id:08d}"


def status_row(
    rid: int, status: str, *, at: float = T0, code: int | None = None, callback: bool = True,
    wamid: str | None = None,
) -> tuple[object, ...]:  # fmt: skip
    """A status as the receiver stores it (webhook_events.STATUS_COLUMNS order)."""
    title = {131026: "Message undeliverable", 131049: "Healthy ecosystem", 131050: "Stopped",
             131000: "Something went wrong", 131048: "Spam rate limit hit"}.get(code or 0)  # fmt: skip
    return (
        wamid or wamid_of(rid), status, at + {"sent": 0, "delivered": 1, "read": 2, "failed": 1}[status],
        "15550000000", None, PHONE_ID, recipient_callback(rid) if callback else None, code, title,
        title, "details" if code else None, "marketing", "regular",
    )


async def store(db: Database, rows: Sequence[tuple[object, ...]], received_at: float | None = None) -> None:
    await store_webhook_rows(db, WebhookRows(statuses=rows), received_at=received_at or time.time())


async def apply(db: Database, now: float | None = None, limit: int = 1_000) -> ApplyResult:
    return await apply_delivery_events(
        db, judge_late_failure, retry_defaults=RETRY, now=now or time.time(), limit=limit
    )


async def delivery_states(db: Database) -> dict[int, str]:
    async with db.engine.connect() as conn:
        return dict((await conn.execute(select(deliveries.c.recipient_id, deliveries.c.state))).all())


async def recipient_row(db: Database, rid: int) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(select(recipients).where(recipients.c.id == rid))).one()


async def event_flags(db: Database) -> list[bool | None]:
    async with db.engine.connect() as conn:
        query = select(delivery_events.c.applied).order_by(delivery_events.c.id)
        return list((await conn.execute(query)).scalars())


async def test_statuses_move_deliveries_forward_and_the_counters_with_them(database: Database) -> None:
    cid = await make_campaign(database, recipients_per_step=4)
    ids = await recipient_ids(database, cid)
    await set_status(database, cid, ids, "sent")
    await store(database, [status_row(ids[0], "sent"), status_row(ids[1], "delivered"),
                           status_row(ids[2], "read"), status_row(ids[2], "delivered"),
                           status_row(ids[2], "sent")])  # fmt: skip
    result = await apply(database)
    assert (result.applied, result.not_ours, result.waiting) == (5, 0, 0)
    assert await delivery_states(database) == {ids[0]: "sent", ids[1]: "delivered", ids[2]: "read"}
    campaign = await campaign_row(database, cid)
    assert (campaign.sent, campaign.delivered, campaign.read, campaign.failed_after) == (4, 2, 1, 0)
    assert await counters_match_rows(database, cid) == {}
    async with database.engine.connect() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.recipient_id == ids[2]))).one()
    assert (row.sent_at, row.delivered_at, row.read_at) == (T0, T0 + 1, T0 + 2)
    assert (row.wamid, row.pricing_category) == (wamid_of(ids[2]), "marketing")
    assert (await apply(database)).read == 0, "applied statuses are not read again"


async def test_a_status_for_an_in_doubt_recipient_makes_it_sent(database: Database) -> None:
    cid = await make_campaign(database, recipients_per_step=3)
    ids = await recipient_ids(database, cid)
    await set_status(database, cid, ids, "in_doubt", wamid=False)
    await store(database, [status_row(ids[0], "delivered"), status_row(ids[1], "sent")])
    await apply(database)
    first, second, third = [await recipient_row(database, rid) for rid in ids]
    assert (first.status, first.wamid, first.sent_at) == ("sent", wamid_of(ids[0]), T0 + 1)
    assert (second.status, second.wamid) == ("sent", wamid_of(ids[1]))
    assert (third.status, third.wamid) == ("in_doubt", None)
    campaign = await campaign_row(database, cid)
    assert (campaign.in_doubt, campaign.sent, campaign.delivered) == (1, 2, 1)
    assert await counters_match_rows(database, cid) == {}


async def test_a_status_before_the_outcome_is_written_waits_for_it(database: Database) -> None:
    cid = await make_campaign(database, recipients_per_step=1)
    [rid] = await recipient_ids(database, cid)
    async with database.begin() as conn:
        await conn.execute(update(recipients).values(status="sending", attempts=1))
    await store(database, [status_row(rid, "sent"), status_row(rid, "delivered")])
    assert (await apply(database)).waiting == 2
    assert (await apply(database, now=time.time() + 86_400)).waiting == 2, "however long"
    assert await event_flags(database) == [None, None]
    await set_status(database, cid, [rid], "sent")  # the flush, later
    assert (await apply(database)).applied == 2
    assert await delivery_states(database) == {rid: "delivered"}
    assert await counters_match_rows(database, cid) == {}


async def test_other_systems_statuses_are_set_aside_and_never_counted(database: Database) -> None:
    cid = await make_campaign(database, recipients_per_step=2)
    ids = await recipient_ids(database, cid)
    await set_status(database, cid, ids, "sent")
    received = time.time()
    await store(database, [
        status_row(ids[0], "delivered", callback=False),  # no callback: another system's
        status_row(999_999, "delivered"),  # our prefix, no such recipient (yet)
        status_row(ids[1], "delivered", wamid="wamid.OLDER-SEND"),  # an earlier send's
    ], received_at=received)  # fmt: skip
    await apply(database, now=received)
    assert await event_flags(database) == [False, None, False]
    await apply(database, now=received + 601)  # after the grace period
    assert await event_flags(database) == [False, False, False]
    assert await delivery_states(database) == {}
    assert (await campaign_row(database, cid)).delivered == 0


async def test_131050_after_acceptance_fails_and_records_the_opt_out(database: Database) -> None:
    cid = await make_campaign(database, recipients_per_step=2)
    ids = await recipient_ids(database, cid)
    await set_status(database, cid, ids, "sent")
    await store(database, [status_row(ids[0], "sent"), status_row(ids[0], "failed", code=131050)])
    await apply(database)
    row = await recipient_row(database, ids[0])
    assert (row.status, row.last_error_code) == ("failed", 131050)
    campaign = await campaign_row(database, cid)
    assert (campaign.sent, campaign.failed, campaign.failed_after) == (1, 1, 1)
    assert await counters_match_rows(database, cid) == {}
    async with database.engine.connect() as conn:
        opt_out = (await conn.execute(select(preference_updates))).one()
        logged = (await conn.execute(select(attempts.c.outcome, attempts.c.error_code))).all()
    assert (opt_out.wa_id, opt_out.category, opt_out.value) == (row.phone.lstrip("+"),
                                                              "marketing_messages", "stop")
    assert opt_out.applied is None, "left for the audience's list, like Meta's own opt-outs"
    assert logged == [("permanent", 131050)]


async def test_131049_after_acceptance_is_retried_no_sooner_than_a_day(database: Database) -> None:
    cid, rid = await one_sent_recipient(database)
    now = time.time()
    await store(database, [status_row(rid, "failed", code=131049)])
    await apply(database, now=now)
    row = await recipient_row(database, rid)
    assert (row.status, row.last_error_code, row.wamid) == ("retry", 131049, None)
    assert row.next_attempt_at >= now + 86_400
    campaign = await campaign_row(database, cid)
    assert (campaign.sent, campaign.failed, campaign.failed_after) == (0, 0, 0)
    assert await delivery_states(database) == {}, "the next send's statuses start afresh"
    assert await counters_match_rows(database, cid) == {}


async def test_131049_after_the_campaign_ended_stays_failed(database: Database) -> None:
    cid, rid = await failed_after_acceptance(database, 131049, campaign="completed")
    row = await recipient_row(database, rid)
    assert (row.status, row.last_error_code) == ("failed", 131049)
    assert "24 h" in row.last_error_title or "Healthy" in row.last_error_title
    assert (await campaign_row(database, cid)).failed_after == 1


async def test_a_transient_failure_after_acceptance_is_retried_within_the_policy(
    database: Database,
) -> None:
    cid = await make_campaign(database, recipients_per_step=2)
    ids = await recipient_ids(database, cid)
    await set_status(database, cid, ids, "sent")
    async with database.begin() as conn:  # the second has used its retries up
        await conn.execute(update(recipients).where(recipients.c.id == ids[1]).values(attempts=3))
    now = time.time()
    await store(database, [status_row(rid, "failed", code=131000) for rid in ids])
    await apply(database, now=now)
    first, second = [await recipient_row(database, rid) for rid in ids]
    assert (first.status, first.next_attempt_at) == ("retry", pytest.approx(now + 30.0))
    assert second.status == "failed"
    campaign = await campaign_row(database, cid)
    assert (campaign.sent, campaign.failed, campaign.failed_after) == (0, 1, 1)
    assert await counters_match_rows(database, cid) == {}


async def test_account_trouble_after_acceptance_pauses_the_campaign(database: Database) -> None:
    cid, rid = await failed_after_acceptance(database, 131048, campaign="running")
    campaign = await campaign_row(database, cid)
    assert campaign.status == "paused"
    assert campaign.pause_reason is not None and campaign.pause_reason.startswith("131048")
    assert (await recipient_row(database, rid)).status == "retry"
    assert await counters_match_rows(database, cid) == {}


async def test_delivered_after_a_failure_wins(database: Database) -> None:
    cid, rid = await one_sent_recipient(database)
    await store(database, [status_row(rid, "failed", code=131026)])
    await apply(database)
    assert (await recipient_row(database, rid)).status == "failed"
    await store(database, [status_row(rid, "delivered")])
    await apply(database)
    assert (await recipient_row(database, rid)).status == "sent"
    campaign = await campaign_row(database, cid)
    assert (campaign.sent, campaign.failed, campaign.failed_after, campaign.delivered) == (1, 0, 0, 1)
    assert await counters_match_rows(database, cid) == {}


async def test_in_doubt_recipients_from_before_the_cutoff_become_unconfirmed(database: Database) -> None:
    cid = await make_campaign(database, recipients_per_step=3)
    ids = await recipient_ids(database, cid)
    now = time.time()
    await set_status(database, cid, ids[:2], "in_doubt", wamid=False, updated_at=now - 100)
    await set_status(database, cid, ids[2:], "in_doubt", wamid=False, updated_at=now)
    assert await mark_unconfirmed(database, in_doubt_before=now - 50, now=now) == {cid: 2}
    campaign = await campaign_row(database, cid)
    assert (campaign.in_doubt, campaign.unconfirmed, campaign.pending) == (1, 2, 0)
    assert await counters_match_rows(database, cid) == {}


# ----- any order, any repetition: the same rows and counters -----

#: Per recipient, the statuses Meta may report (permanent failures only: a retried failure
#: sends again, which is an action, not a state).
STORIES = [
    ["sent", "delivered", "read"],
    ["sent", "delivered"],
    ["sent", "failed"],
    ["sent", "failed", "delivered"],  # a second device got it: delivered wins
    ["failed", "read"],
    ["delivered"],
]


@st.composite
def shuffled_statuses(draw: st.DrawFn) -> tuple[list[tuple[int, str]], int]:
    events = [(index, status) for index, story in enumerate(STORIES) for status in story]
    repeated = events + draw(st.lists(st.sampled_from(events), max_size=8))
    return draw(st.permutations(repeated)), draw(st.integers(1, 6))


async def final_state(db: Database, name: str, events: list[tuple[int, str]], batch: int) -> Any:
    cid = await make_campaign(db, name, recipients_per_step=len(STORIES) + 1)
    ids = await recipient_ids(db, cid)
    await set_status(db, cid, ids[:4], "sent")
    await set_status(db, cid, ids[4:], "in_doubt", wamid=False)
    for index, status in events:
        code = 131026 if status == "failed" else None
        await store(db, [status_row(ids[index], status, code=code)])  # one POST each
        if index % 2:
            await apply(db, limit=batch)
    while (await apply(db, limit=batch)).read:
        pass
    assert await counters_match_rows(db, cid) == {}
    campaign = await campaign_row(db, cid)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(
            select(recipients.c.status, recipients.c.wamid, deliveries.c.state,
                   deliveries.c.delivered_at, deliveries.c.read_at, deliveries.c.failed_at,
                   deliveries.c.error_code)
            .select_from(recipients.outerjoin(deliveries))
            .where(recipients.c.campaign_id == cid).order_by(recipients.c.id)
        )).all()  # fmt: skip
    figures = (campaign.sent, campaign.failed, campaign.in_doubt, campaign.delivered,
               campaign.read, campaign.failed_after)  # fmt: skip
    return figures, [(r[0], r[1] is not None, *r[2:]) for r in rows]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shuffled_statuses())
def test_any_order_and_repetition_gives_the_same_rows_and_counters(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[list[tuple[int, str]], int]
) -> None:
    events, batch = case
    folder: Path = tmp_path_factory.mktemp("order")

    async def both() -> tuple[Any, Any]:
        async with Database(f"sqlite+aiosqlite:///{folder / 'db.sqlite'}") as db:
            in_order = [(i, s) for i, story in enumerate(STORIES) for s in story]
            expected = await final_state(db, "in-order", in_order, 1_000)
            # Distinct wamids: the second campaign's recipients have other ids.
            shuffled = await final_state(db, "shuffled", events, batch)
        return expected, shuffled

    expected, shuffled = asyncio.run(both())
    assert shuffled == expected
    figures, _ = expected
    # sent, failed (131026, no delivered after it), in doubt (no status), delivered, read,
    # failed after acceptance
    assert figures == (5, 1, 1, 5, 2, 1)
