"""The outcome batcher against a real SQLite file: one batch per tick or per full batch, never
"everything pending" (which made a fast database flush without pause, a small batch per write),
and nothing left unwritten when it closes."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tests.factories import make_campaign
from watui.engine.batcher import OutcomeBatcher
from watui.storage import claims
from watui.storage.database import Database
from watui.storage.schema import campaigns, recipients
from watui.storage.sending.outcomes import Outcome


async def _until(condition: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def _sent_outcomes(db: Database, count: int) -> tuple[int, list[Outcome]]:
    """A campaign of ``count`` rows, claimed by "me", and an outcome "sent" for each."""
    campaign_id = await make_campaign(db, recipients_per_step=count)
    step = await claims.current_step(db, campaign_id)
    assert step is not None
    claimed = await claims.claim(db, step.id, "me", count, lease_seconds=60, now=1.0)
    return campaign_id, [Outcome(row.id, "sent", 1, sent_at=2.0) for row in claimed]


def _running_batcher(
    db: Database, campaign_id: int, *, interval: float, max_rows: int
) -> tuple[OutcomeBatcher, asyncio.Task[None], list[int]]:
    """A batcher running in its own task, and the sizes of the batches it has written."""
    written: list[int] = []
    batcher = OutcomeBatcher(db, campaign_id, "me", interval=interval, max_rows=max_rows,
                             on_written=written.append)
    return batcher, asyncio.create_task(batcher.run()), written


async def test_outcomes_arriving_during_a_write_wait_for_the_next_tick(sqlite_url: str) -> None:
    async with Database(sqlite_url) as db:
        campaign_id, sent = await _sent_outcomes(db, 8)
        batcher, running, written = _running_batcher(db, campaign_id, interval=30.0, max_rows=5)
        async with db.begin():  # the write turn: the batcher's first write waits behind it
            for outcome in sent[:5]:
                batcher.add(outcome)  # a full batch: the batcher wakes and starts writing
            await asyncio.sleep(0.05)
            for outcome in sent[5:]:
                batcher.add(outcome)  # arrive while the first batch waits to be written
        await _until(lambda: written)
        await asyncio.sleep(0.3)
        assert (written, batcher.pending) == ([5], 3)  # not a second write of 3 right after
        batcher.close()
        await running
        assert written == [5, 3] and batcher.pending == 0
        async with db.engine.connect() as conn:
            statuses = (await conn.execute(select(recipients.c.status))).scalars().all()
            counted = (await conn.execute(select(campaigns.c.sent))).scalar_one()
        assert statuses == ["sent"] * 8 and counted == 8


async def test_a_timer_tick_writes_a_partial_batch(sqlite_url: str) -> None:
    async with Database(sqlite_url) as db:
        campaign_id, sent = await _sent_outcomes(db, 3)
        batcher, running, written = _running_batcher(db, campaign_id, interval=0.05, max_rows=500)
        for outcome in sent:
            batcher.add(outcome)
        await _until(lambda: sum(written) == 3)
        batcher.close()
        await running
        assert written == [3]
