"""The schedule in the UI, on the real stack (LiveBackend over SQLite, the real engine, the mock
on loopback): setup marks a bad start time or window on its field, the campaigns list shows a
scheduled campaign, and the app starts it by itself when its start comes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from tests.test_tui_live import (  # noqa: F401  (backend and mock_api are fixtures)
    backend,
    contacts,
    mock_api,
    wait_for,
)
from watui.mockapi.server import MockCloudApi
from watui.service.live import LiveBackend
from watui.service.models import CampaignSpec, StepSpec
from watui.tui.app import WatuiApp
from watui.tui.screens.setup import SetupScreen
from watui.tui.widgets.form import FormField

pytestmark = pytest.mark.usefixtures("tui_deterministic")


async def test_setup_marks_a_start_time_without_zone_and_a_bad_window(
    backend: LiveBackend, tmp_path: Path  # noqa: F811
) -> None:
    app = WatuiApp(backend, refresh_interval=None, start_dir=tmp_path, due_check_interval=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(SetupScreen())
        screen = app.screen
        screen.query_one("#start-at", Input).value = "2026-12-07T09:00"
        screen.query_one("#send-window", Input).value = "9 to 8"
        screen.query_one("#deadline", Input).value = "2099-12-08T20:00 Europe/Madrid"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.query_one("#f-start", FormField).error != "")
        assert "has no offset or time zone: add one" in screen.query_one("#f-start", FormField).error
        assert "09:00-20:00" in screen.query_one("#f-window", FormField).error
        assert screen.query_one("#f-deadline", FormField).error == ""
    assert await backend.list_campaigns() == []


async def test_the_app_starts_a_scheduled_campaign_when_its_start_comes(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path  # noqa: F811
) -> None:
    start = time.time() + 1.0
    await backend.create_campaign(CampaignSpec(
        "at-noon",
        (StepSpec("order_update", "en_US", str(contacts(tmp_path, 30)), ("first_name", "order"),
                  "photo"),),
        rate=200, start_at=datetime.fromtimestamp(start, UTC).isoformat(),
    ))
    wall_minus_monotonic = time.time() - time.monotonic()
    app = WatuiApp(backend, refresh_interval=0.1, start_dir=tmp_path, due_check_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        assert str(table.get_cell("at-noon", "status")).startswith("◷ scheduled ")
        await wait_for(pilot, lambda: len(mock_api.ledger) == 27)  # every 10th row is invalid
    assert min(entry.at for entry in mock_api.ledger) + wall_minus_monotonic >= start - 0.01
