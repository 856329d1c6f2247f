"""An API outage as a person sees it, on the real stack (LiveBackend over SQLite, the real
engine and client, the mock on loopback) under Textual's Pilot: the campaigns list and the
monitor say "API unreachable since ..., trying again in N s", the events say when it went and
came back, and the campaign then completes with nobody failed or sent twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, RichLog, Static

from tests.test_tui_live import (
    assert_consistent,
    backend,
    contacts,
    live_app,
    make_campaign,
    mock_api,
    wait_for,
)
from watui.engine import breaker
from watui.mockapi.server import MockCloudApi
from watui.service.live import LiveBackend
from watui.tui.screens.campaigns import OUTAGE_LABEL, CampaignsScreen
from watui.tui.screens.monitor import MonitorScreen

pytestmark = pytest.mark.usefixtures("tui_deterministic")
__all__ = ["backend", "mock_api"]  # fixtures, used by name


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_the_list_and_the_monitor_say_the_api_is_unreachable_then_back(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(breaker, "FIRST_WAIT", 0.5)
    await make_campaign(backend, contacts(tmp_path, 60), "down", rate=100)
    mock_api.update_config({"refuse_status": 503})
    app = live_app(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await backend.start("down")
        table = app.screen.query_one(DataTable)
        assert isinstance(app.screen, CampaignsScreen)
        await wait_for(pilot, lambda: table.row_count == 1
                       and str(table.get_cell("down", "status")) == OUTAGE_LABEL)
        detail = app.screen.query_one("#detail", Static)
        await wait_for(pilot, lambda: "API unreachable since " in text_of(detail))
        await app.push_screen(MonitorScreen("down"))
        status_line = app.screen.query_one("#status-line", Static)
        await wait_for(pilot, lambda: "API unreachable since " in text_of(status_line)
                       and "trying again " in text_of(status_line))
        mock_api.update_config({"refuse_status": None})
        await wait_for(pilot, lambda: "completed" in text_of(status_line))
        log = "\n".join(strip.text for strip in app.screen.query_one("#events", RichLog).lines)
    assert "API unreachable since " in log and "API back after " in log
    summary = await assert_consistent(backend.db, "down", mock_api)
    assert (summary["sent"], summary["failed"]) == (54, 0), "6 invalid rows, nobody failed"
    assert len(mock_api.ledger) == 54
