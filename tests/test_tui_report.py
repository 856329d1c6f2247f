"""Pilot tests of the report screen and the delivery figures on the list and the monitor,
against the FakeBackend."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from textual.widgets import DataTable, Sparkline, Static

from tests.tui_fakes import FakeBackend, make_app
from tests.tui_pilot import settle
from watui.service.models import CampaignReport
from watui.tui.app import WatuiApp
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.screens.report import ReportScreen

pytestmark = pytest.mark.usefixtures("tui_deterministic")


class CountingBackend(FakeBackend):
    """Counts report reads: the screen must not poll them at the list's pace."""

    reads = 0

    async def report(self, name: str) -> CampaignReport:
        self.reads += 1
        return await super().report(name)


async def test_report_opens_from_the_list_and_draws_the_funnel_as_bars() -> None:
    backend = CountingBackend.sample()
    app = make_app(backend, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down", "down", "v")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReportScreen) and screen.campaign == "october-newsletter"
        lines = str(screen.query_one("#funnel", Static).content).splitlines()
        bars = [line.count("█") for line in lines]
        # accepted 11,915 (all of the bar), delivered 11,530 (96.8%), read 7,322 (61.5%).
        assert bars[0] > bars[1] > bars[2] > 0
        assert bars[2] == pytest.approx(bars[0] * 7_322 / 11_915, abs=1)
        assert "96.8%" in lines[1] and "61.5%" in lines[2]
        assert len(screen.query_one("#delivered-line", Sparkline).data or []) == 60
        failures = screen.query_one("#failures", DataTable)
        assert failures.row_count == 3
        assert [str(cell) for cell in failures.get_row_at(1)[:3]] == ["131049", "0", "2"]
        await pilot.pause(0.5)  # ten ticks of the list's pace
        assert backend.reads == 1, "the report is read on opening and every 5 s, not per tick"
        await pilot.press("q")
        await settle(pilot)
        assert not isinstance(app.screen, ReportScreen)


async def test_report_opens_from_the_monitor_and_exports_every_recipient(tmp_path: Path) -> None:
    backend = FakeBackend.sample()
    app = make_app(backend, start_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MonitorScreen)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ReportScreen)
        await pilot.press("e", "enter")
        await settle(pilot)
    target = tmp_path / "spring-sale-recipients.csv"
    assert backend.calls[-1] == ("export_recipients", "spring-sale", str(target), "csv")
    with target.open() as handle:
        assert len(list(csv.reader(handle))) == 2_140 + 1


async def test_monitor_shows_delivery_figures_and_late_failures_apart() -> None:
    app = make_app(FakeBackend.sample())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await settle(pilot)
        stats = str(app.screen.query_one("#stats", Static).content)
        assert "deliv/read [$success]93%[/]/43%" in stats  # 1,986 and 911 of 2,140 sent
        assert "dlv p50/95 2.4/7.9s" in stats
        errors = app.screen.query_one("#errors", DataTable)
        rows = {str(errors.get_row_at(i)[0]): list(errors.get_row_at(i)[1:3])
                for i in range(errors.row_count)}
        assert rows["131026"] == ["9", "1"] and rows["131049"] == ["", "2"]


async def test_list_shows_delivered_and_read_of_sent() -> None:
    app = make_app(FakeBackend.sample())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert str(table.get_cell("spring-sale", "delivery")) == "93/43"
        assert str(table.get_cell("vip-preview", "delivery")) == "—"  # nothing sent: no share
        assert "92.8% delivered, 42.6% read of sent" in str(
            app.screen.query_one("#detail", Static).content)


def test_help_lists_the_report_keys() -> None:
    titles = {section.title: section for section in WatuiApp.help_sections()}
    assert "Report" in titles
    assert {binding.description for binding in titles["Report"].bindings} >= {"Export", "Back"}
    monitor_keys = {binding.key for binding in titles["Live monitor"].bindings}
    assert "v" in monitor_keys
