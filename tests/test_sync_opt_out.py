"""A 131050 in the send's own answer does what the same code in a webhook does: the number is
suppressed for marketing templates in the transaction that records the failure, its queued
marketing recipients are skipped in every campaign, and utility templates still go. No
receiver runs: the answer alone is enough. Real SQLite file and PostgreSQL, mock on loopback."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.factories import running_mock
from tests.test_engine_http import TOKEN, settings_for
from tests.test_suppression import NUMBERS, contacts_file, new_campaign, statuses, sync_template
from tests.test_webhook_apply_live import send_all
from watui.engine.sender import RunStatus
from watui.storage.campaigns import campaign_row, counters_match_rows
from watui.storage.database import Database
from watui.storage.schema import preference_updates
from watui.storage.suppressions import list_suppressions


async def test_a_131050_answer_suppresses_the_number_for_marketing(
    database: Database, tmp_path: Path
) -> None:
    await sync_template(database, "promo", "MARKETING")
    await sync_template(database, "notice", "UTILITY")
    phones, stopped = NUMBERS[:3], NUMBERS[1]
    first = await new_campaign(database, "first", "promo", contacts_file(tmp_path, phones, "a.csv"))
    later = await new_campaign(database, "later", "promo", contacts_file(tmp_path, phones, "b.csv"))
    notice = await new_campaign(database, "notice", "notice", contacts_file(tmp_path, phones, "c.csv"))
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002),
                            fail_suffixes={stopped[-4:]: 131050}) as mock:  # fmt: skip
        settings = settings_for(database.url, mock)
        assert await send_all(database, settings, first) is RunStatus.COMPLETED
        assert (await statuses(database, first))[stopped][0] == "failed"
        [entry] = await list_suppressions(database)
        assert (entry.phone, entry.scope, entry.reason) == (stopped, "marketing", "131050")
        assert entry.detail is not None and entry.detail.startswith("131050: ")
        assert (await statuses(database, later))[stopped] == ("skipped", "suppressed: 131050")
        assert (await statuses(database, notice))[stopped][0] == "queued", "utility still goes"
        async with database.engine.connect() as conn:
            [(wa_id, value, detail)] = (await conn.execute(select(
                preference_updates.c.wa_id, preference_updates.c.value, preference_updates.c.detail,
            ))).all()  # fmt: skip
        assert (wa_id, value) == (stopped.lstrip("+"), "stop") and "at the send" in detail

        mock.update_config({"fail_suffixes": {}})
        for campaign_id in (later, notice):
            assert await send_all(database, settings, campaign_id) is RunStatus.COMPLETED
        sent = {(entry.to, entry.template) for entry in mock.ledger}  # accepted messages
    assert (stopped, "promo") not in sent, "refused at first, then never sent marketing again"
    assert {to for to, template in sent if template == "promo"} == set(phones) - {stopped}
    assert (stopped, "notice") in sent
    assert (await campaign_row(database, later)).skipped == 1
    for campaign_id in (first, later, notice):
        assert await counters_match_rows(database, campaign_id) == {}
