"""Which numbers' statuses the receiver has heard, kept in the database (schema v10): a
restarted applier, or another process's, still knows the number has been heard all through
the grace period, and gives in-doubt recipients up as unconfirmed without waiting it again.
Real SQLite file and real PostgreSQL server, the applier's clock moved by hand."""

from __future__ import annotations

from collections.abc import Sequence

from tests.factories import make_campaign
from tests.test_delivery_apply import PHONE_ID, T0, recipient_ids, set_status, status_row, store
from watui.receiver import DeliveryApplier
from watui.settings import Settings
from watui.storage.campaigns import campaign_row, counters_match_rows
from watui.storage.database import Database
from watui.storage.hearing import heard_numbers

GRACE = 60.0


def applier_at(db: Database, now: float) -> DeliveryApplier:
    """A fresh applier (as after a restart, or in another process) whose clock says ``now``."""
    settings = Settings(database_url=db.url, webhook={"unconfirmed_after_s": GRACE})
    return DeliveryApplier(db, settings.webhook, settings.retry, phone_number_id=PHONE_ID,
                           clock=lambda: now)  # fmt: skip


async def hear(
    db: Database, at: float, wamids: Sequence[str], applier: DeliveryApplier | None = None
) -> None:
    """Statuses of other messages on the number (no callback of ours), received at ``at``,
    applied by ``applier`` (default: a fresh one, as another process's would)."""
    await store(db, [status_row(0, "sent", at=at, callback=False, wamid=w) for w in wamids], at)
    await (applier or applier_at(db, at)).apply_pending()


async def test_a_restart_remembers_what_was_heard_and_gives_up_in_time(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=3)
    await set_status(database, campaign_id, await recipient_ids(database, campaign_id), "in_doubt",
                     wamid=False, updated_at=T0)  # fmt: skip
    first = applier_at(database, T0)
    await hear(database, T0, ["wamid.A1", "wamid.A2"], first)
    await hear(database, T0 + 0.4, ["wamid.A3"], first)  # within the second: not written again
    assert [(h.since, h.last_heard) for h in await heard_numbers(database)] == [(T0, T0)]
    await hear(database, T0 + 40, ["wamid.B1"])  # another process, 40 s later
    assert [(h.since, h.last_heard) for h in await heard_numbers(database)] == [(T0, T0 + 40)]

    too_soon = applier_at(database, T0 + GRACE - 1)
    assert await too_soon.give_up_unconfirmed() == 0, "not heard for the whole grace period yet"
    restarted = applier_at(database, T0 + GRACE + 1)  # has heard nothing itself
    assert await restarted.give_up_unconfirmed() == 3
    campaign = await campaign_row(database, campaign_id)
    assert (campaign.in_doubt, campaign.unconfirmed) == (0, 3)
    assert await counters_match_rows(database, campaign_id) == {}


async def test_a_silence_longer_than_the_grace_period_starts_again(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=2)
    await set_status(database, campaign_id, await recipient_ids(database, campaign_id), "in_doubt",
                     wamid=False, updated_at=T0)  # fmt: skip
    await hear(database, T0, ["wamid.C1"])
    await hear(database, T0 + GRACE + 30, ["wamid.C2"])  # the receiver was away meanwhile
    assert [(h.since, h.last_heard) for h in await heard_numbers(database)] == [
        (T0 + GRACE + 30, T0 + GRACE + 30)
    ]
    assert await applier_at(database, T0 + GRACE + 40).give_up_unconfirmed() == 0
    assert await applier_at(database, T0 + 2 * GRACE + 30).give_up_unconfirmed() == 2
