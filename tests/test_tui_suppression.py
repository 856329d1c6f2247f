"""The suppression list screen on the real stack: the app under Pilot, LiveBackend over a real
SQLite file; the database says what really happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable, Input

from tests.test_suppression import contacts_file, new_campaign, statuses, sync_template
from tests.test_tui_live import wait_for
from watui.errors import ContactsError
from watui.service.live import LiveBackend
from watui.service.models import CampaignSpec, StepSpec
from watui.service.open import open_live_backend
from watui.settings import Settings
from watui.storage.campaigns import list_rejects
from watui.storage.suppressions import list_suppressions
from watui.tui.app import WatuiApp
from watui.tui.screens.suppression import SuppressionScreen

pytestmark = pytest.mark.usefixtures("tui_deterministic")

PHONES = ["+34612340001", "+34612340002", "+34612340003"]


@pytest.fixture
async def backend(sqlite_url: str) -> AsyncIterator[LiveBackend]:
    live = await open_live_backend(Settings(database_url=sqlite_url))
    try:
        yield live
    finally:
        await live.shutdown()


async def test_add_filter_and_remove_numbers_from_the_campaigns_screen(
    backend: LiveBackend, tmp_path: Path
) -> None:
    await sync_template(backend.db, "promo", "MARKETING")
    campaign_id = await new_campaign(backend.db, "spring", "promo", contacts_file(tmp_path, PHONES))
    app = WatuiApp(backend, refresh_interval=0.1, start_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, SuppressionScreen))
        screen = app.screen
        table = screen.query_one(DataTable)
        await pilot.press("a")
        app.screen.query_one("#suppress-phones", Input).value = "+34612340001, +34 612 340 002"
        app.screen.query_one(Checkbox).value = True
        await pilot.click("#ok")
        await wait_for(pilot, lambda: table.row_count == 2)
        rows = await statuses(backend.db, campaign_id)
        assert [rows[phone][0] for phone in PHONES] == ["skipped", "skipped", "queued"]

        await pilot.press("slash")
        screen.query_one("#filter", Input).value = "0002"
        await wait_for(pilot, lambda: table.row_count == 1)
        assert "1 matching of 2 suppressed" in str(screen.query_one("#list-info").render())
        await pilot.press("enter", "d")
        await pilot.click("#yes")
        await wait_for(pilot, lambda: table.row_count == 0)

        await pilot.press("a")
        app.screen.query_one("#suppress-phones", Input).value = "+34612340003, 12"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("nothing was changed" in str(n.message)
                                          for n in app._notifications))  # fmt: skip
        await pilot.press("q")
        await wait_for(pilot, lambda: not isinstance(app.screen, SuppressionScreen))
    entries = await list_suppressions(backend.db)
    assert [(e.phone, e.scope, e.reason) for e in entries] == [(PHONES[0], "marketing", "manual")]


async def test_the_setups_exclusion_file_reaches_the_import(backend: LiveBackend, tmp_path: Path) -> None:
    """What the setup screen's Exclude field hands the backend: those numbers are rejected."""
    exclude = contacts_file(tmp_path, PHONES[1:2], "exclude.csv")
    step = StepSpec("notice", "en_US", str(contacts_file(tmp_path, PHONES)), body_params=("name",))
    await backend.create_campaign(CampaignSpec("autumn", (step,), exclude=exclude))
    rejects = await list_rejects(backend.db, "autumn")
    assert [(r.phone, r.reason) for r in rejects] == [(PHONES[1], "excluded")]
    missing = CampaignSpec("winter", (step,), exclude=tmp_path / "nope.csv")
    with pytest.raises(ContactsError, match=r"exclusion file .*nope\.csv does not exist"):
        await backend.create_campaign(missing)
