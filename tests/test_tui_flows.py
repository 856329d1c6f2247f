"""Pilot tests of the main flows against the FakeBackend, plus the UI's small pure parts."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from textual import events
from textual.command import CommandList
from textual.screen import Screen
from textual.widgets import DataTable, Input, Select, Static
from textual.worker import WorkerFailed

from tests.tui_fakes import CONTACTS, TEMPLATES, FakeBackend, FakeCampaign, make_app
from tests.tui_pilot import settle
from watui.errors import InvalidCampaign
from watui.rules import MAX_RATE, Field, Problem
from watui.service.models import ButtonColumn, CampaignRow, CampaignState, RecipientState
from watui.service.settings_view import SECRET_MASK, settings_rows
from watui.tui import format as fmt
from watui.tui.screens.campaigns import CampaignsScreen
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.screens.retry_queue import PAGE_SIZE, RetryQueueScreen
from watui.tui.screens.setup import SetupScreen, template_key
from watui.tui.widgets.chart import ThroughputChart
from watui.tui.widgets.form import FormField

pytestmark = pytest.mark.usefixtures("tui_deterministic")
ScreenT = TypeVar("ScreenT", bound=Screen[object])


async def open_with_key(pilot, key: str, expected: type[ScreenT]) -> ScreenT:  # type: ignore[no-untyped-def]
    await pilot.press(key)
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, expected)
    return screen


async def open_retry_queue(pilot) -> RetryQueueScreen:  # type: ignore[no-untyped-def]
    """Open the highlighted campaign's retry queue from the campaigns list."""
    return await open_with_key(pilot, "t", RetryQueueScreen)


async def open_monitor(pilot) -> MonitorScreen:  # type: ignore[no-untyped-def]
    """Open the highlighted campaign (the first, spring-sale) from the campaigns list."""
    return await open_with_key(pilot, "enter", MonitorScreen)


async def fill_setup(pilot, name: str, body: str = "first_name, order, date") -> SetupScreen:  # type: ignore[no-untyped-def]
    await pilot.press("n")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, SetupScreen)
    screen.query_one("#name", Input).value = name
    screen.query_one(Select).value = template_key(TEMPLATES[0])
    screen.query_one("#contacts", Input).value = str(CONTACTS)
    screen.query_one("#body-params", Input).value = body
    await settle(pilot)
    return screen


async def test_create_campaign_through_setup_and_start_it() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_setup(pilot, "may-promo")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, MonitorScreen)
        assert app.screen.campaign == "may-promo"
    spec = backend.created[-1]
    assert spec.start_now and spec.rate == 80 and spec.retry_delays == (5.0, 10.0)
    (step,) = spec.steps
    assert step.template == "order_shipped" and step.body_params == ("first_name", "order", "date")
    # 4 valid rows of 6: one invalid, one duplicate, reported before queuing.
    assert backend.campaigns["may-promo"].row.total == 4


async def test_setup_marks_bad_fields_and_creates_nothing() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "bad name!", body="first_name")
        screen.query_one("#rate", Input).value = "0"
        screen.query_one("#retry-delays", Input).value = "5, soon"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        errors = {field.id: field.error for field in screen.query(FormField) if field.error}
        assert set(errors) == {"f-name", "f-body", "f-rate", "f-delays"}
        assert "needs 3 column(s)" in errors["f-body"]
        assert "Fix the fields" in str(screen.query_one("#form-error", Static).content)
        assert app.screen is screen
    assert backend.created == [] and ("create", "bad name!") not in backend.calls


async def test_setup_marks_the_field_of_each_problem_the_backend_finds() -> None:
    """The backend checks the mapping against the synced template and keys each problem by
    field: the setup screen marks that field, and shows in the form error what no field shows."""
    backend = FakeBackend.sample()
    backend.refusal = InvalidCampaign([
        Problem(Field.BODY_PARAMS, "template 'order_shipped' (en_US) takes 2 body parameter(s)", step=1),
        Problem(Field.RATE, "rate 5000.0 is out of range"),
        Problem(Field.LANGUAGE, "template 'welcome' has no de translation", step=2),
    ])  # fmt: skip
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "checked")
        await pilot.press("ctrl+s")
        await settle(pilot)
        errors = {field.id: field.error for field in screen.query(FormField) if field.error}
        assert errors == {"f-body": "✖ template 'order_shipped' (en_US) takes 2 body parameter(s)",
                          "f-rate": "✖ rate 5000.0 is out of range"}  # fmt: skip
        form_error = str(screen.query_one("#form-error", Static).content)
        assert form_error == "✖ template 'welcome' has no de translation"  # step 2 is not in the form
        assert app.screen is screen
    assert backend.created == []


async def test_setup_shows_validation_report_and_duplicate_name_error() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "spring-sale")
        screen.validate_contacts()
        await settle(pilot)
        report = str(screen.query_one("#report", Static).content)
        assert "4 valid" in report and "1 invalid" in report and "1 duplicate" in report
        assert "line 5" in report  # not-a-phone
        assert screen.query_one("#contacts-preview", DataTable).row_count == 5
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "already exists" in screen.field("f-name").error


async def test_setup_can_save_two_steps_as_a_draft() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "two-steps")
        screen.add_step()
        await settle(pilot)
        screen.query_one(Select).value = template_key(TEMPLATES[3])  # welcome: no parameters
        screen.query_one("#contacts", Input).value = str(CONTACTS)
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, CampaignsScreen)
    spec = backend.created[-1]
    assert [step.template for step in spec.steps] == ["order_shipped", "welcome"]
    assert not spec.start_now
    assert backend.campaigns["two-steps"].row.status is CampaignState.DRAFT


async def test_setup_maps_button_parameters_the_template_takes() -> None:
    """A template with a dynamic URL shows the button field; its column is required, a button
    that takes no parameter is refused, and each button's kind comes from the template."""
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "parcels", body="first_name")
        buttons = screen.field("f-buttons")
        assert not buttons.display  # order_shipped has no buttons
        screen.query_one(Select).value = template_key(TEMPLATES[4])
        await settle(pilot)
        assert buttons.display
        hint = str(buttons.query_one(".field-hint", Static).content)
        assert "0: URL https://acme.test/t/{{1}} (needs a column)" in hint
        assert "1: quick reply 'Not at home' (payload, optional)" in hint and "2:" not in hint
        for typed, problem in (
            ("", "button 0 (URL https://acme.test/t/{{1}}) needs a column"),
            ("0:order, 2:date", "button 2 takes no parameter"),
            ("0:order, 0:date", "button 0 is given twice"),
            ("0:parcel", "no column 'parcel' in the file"),
            ("order", "'order' is not INDEX:COLUMN"),
        ):
            screen.query_one("#button-params", Input).value = typed
            await settle(pilot)
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert problem in buttons.error, (typed, buttons.error)
            assert app.screen is screen
        screen.query_one("#button-params", Input).value = "1:date, 0:order"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, CampaignsScreen)
    (step,) = backend.created[-1].steps
    assert step.buttons == (ButtonColumn(0, "url", "order"), ButtonColumn(1, "quick_reply", "date"))


async def test_test_send_reports_result_and_rejects_bad_number() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "may-promo")
        screen.query_one("#test-phone", Input).value = "12"
        await settle(pilot)  # a person types before pressing the button
        screen.send_test()
        await settle(pilot)
        assert "not a phone number" in screen.field("f-test").error
        screen.query_one("#test-phone", Input).value = "+15550123456"
        await settle(pilot)
        screen.send_test()
        await settle(pilot)
        assert "wamid." in str(screen.query_one("#test-result", Static).content)
    assert ("send_test", "+15550123456") in backend.calls


async def test_pause_resume_and_rate_change_from_monitor() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_monitor(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert backend.campaigns["spring-sale"].row.status is CampaignState.PAUSED
        assert "PAUSED" in str(app.screen.query_one("#status-line", Static).content)
        await pilot.press("p")
        await settle(pilot)
        assert backend.campaigns["spring-sale"].row.status is CampaignState.RUNNING
        await pilot.press("r", *"999999", "enter")  # above what any front end accepts: refused
        await pilot.pause()
        assert f"at most {MAX_RATE:.0f}" in str(app.screen.query_one("#prompt-error", Static).content)
        await pilot.press("escape", "r", "6", "0", "enter")  # the old value is selected: replaced
        await settle(pilot)
        assert backend.campaigns["spring-sale"].target_rate == 60
        log = "\n".join(strip.text for strip in app.screen.query_one("#events").lines)
        assert "Rate changed 80 → 60 msg/s" in log and "Paused by you" in log
    assert [call[0] for call in backend.calls] == ["pause", "resume", "set_rate"]


async def test_a_fast_burst_of_keys_edits_in_the_order_typed() -> None:
    """Keys that arrive in one read from the terminal (a fast typist over SSH, a macro) are
    posted to the app together; backspace must still act before the digits that follow it."""
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_monitor(pilot)
        await pilot.press("r")
        await pilot.pause()
        field = app.screen.query_one(Input)
        await pilot.press("end")  # "80" with the cursor after it, nothing selected
        for key, character in [("backspace", None), ("backspace", None), ("5", "5"), ("1", "1"),
                               ("left", None), ("4", "4"), ("enter", "\r")]:
            app.post_message(events.Key(key, character))
        await settle(pilot)
        assert field.value == "541"
        assert backend.campaigns["spring-sale"].target_rate == 541


async def test_kept_rate_prompt_reopens_fresh_and_goes_with_its_monitor() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_monitor(pilot)
        await pilot.press("r", "0", "enter")  # refused: the error shows
        await pilot.pause()
        prompt = app.screen
        assert "above 0" in str(prompt.query_one("#prompt-error", Static).content)
        await pilot.press("escape", "r")
        await pilot.pause()
        assert app.screen is prompt  # the same dialog, not built again
        assert str(prompt.query_one("#prompt-error", Static).content) == ""
        assert prompt.query_one(Input).value == "80"
        await pilot.press("6", "0", "enter")
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause()
        assert prompt.query_one(Input).value == "60"  # the rate now in force
        await pilot.press("escape", "q")
        await settle(pilot)
        assert isinstance(app.screen, CampaignsScreen)
        assert not prompt.is_attached and not app.is_screen_installed(prompt)


async def test_retry_selected_and_all_matching_from_retry_queue() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_retry_queue(pilot)
        await pilot.press("space", "space", "r")
        await settle(pilot)
        assert ("requeue", "spring-sale", "1,2") in backend.calls
        app.screen.query_one(Select).value = RecipientState.FAILED.value
        await settle(pilot)
        assert app.screen.current_page.total == 60
        await pilot.press("R")
        await pilot.press("y")
        await settle(pilot)
        assert app.screen.current_page.total == 0
        assert ("requeue", "spring-sale", "filter=failed/None") in backend.calls
    rows = backend.campaigns["spring-sale"].retry_rows
    assert len(rows) == 240 - 2 - 60
    assert all(row.status is not RecipientState.FAILED for row in rows)


async def test_retry_queue_shows_the_highlighted_rows_meaning_in_full() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_retry_queue(pilot)
        detail = screen.query_one("#row-detail", Static)
        first = screen.current_page.rows[0]
        assert str(detail.content).endswith(first.meaning)
        await pilot.press("down")
        await settle(pilot)
        second = screen.current_page.rows[1]
        assert str(detail.content).startswith(f"{second.phone}: ")
        assert str(detail.content).endswith(second.meaning)


async def test_retry_queue_pages_and_exports(tmp_path: Path) -> None:
    backend = FakeBackend.sample(retry_rows=100_000)
    app = make_app(backend, start_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(RetryQueueScreen("spring-sale"))
        await settle(pilot)
        screen = app.screen
        assert screen.query_one(DataTable).row_count == PAGE_SIZE
        await pilot.press("right_square_bracket", "right_square_bracket")
        await settle(pilot)
        assert screen.current_page.offset == 2 * PAGE_SIZE
        assert "Rows 201–300 of 100,000" in str(screen.query_one("#page-info", Static).content)
        screen.query_one("#code-filter", Input).value = "131026"
        await settle(pilot)
        assert screen.current_page.total == 25_000 and screen.current_page.offset == 0
        await pilot.press("e", "enter")
        await settle(pilot)
    with (tmp_path / "spring-sale-retry-queue.csv").open() as handle:
        exported = list(csv.reader(handle))
    assert len(exported) == 25_001 and exported[1][3] == "131026"


async def test_delete_asks_and_cancel_declined_changes_nothing() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("down", "down", "d", "n")
        await settle(pilot)
        assert "october-newsletter" in backend.campaigns
        await pilot.press("d", "y")
        await settle(pilot)
        assert "october-newsletter" not in backend.campaigns
        assert app.screen.query_one(DataTable).row_count == 3


async def test_campaign_list_refreshes_live_on_a_timer() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend, refresh_interval=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await backend.pause("spring-sale")
        for _ in range(40):
            await pilot.pause(0.05)
            status = app.screen.query_one(DataTable).get_cell("spring-sale", "status")
            if "paused" in status:
                break
        assert "paused" in status


async def test_backend_errors_become_notifications_not_crashes() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, CampaignsScreen)
        screen.command(lambda: backend.pause("no-such-campaign"))
        with pytest.raises(WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("no campaign named" in note.message for note in app._notifications)
        assert app.is_running


async def test_quit_shuts_the_backend_down_cleanly() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        app.simulate_key("ctrl+q")  # pilot.press would wait for an app that has gone
        for _ in range(40):
            if not app.is_running:
                break
            await pilot.pause(0.05)
    assert backend.shut_down and app.return_value == 0


def test_settings_rows_mask_every_secret() -> None:
    rows = {row.name: row.value for row in FakeBackend().settings_view()}
    assert rows["whatsapp.access_token"] == SECRET_MASK
    assert rows["whatsapp.app_secret"] == "(not set)"
    assert "db-password-1" not in rows["database_url"] and SECRET_MASK in rows["database_url"]
    assert "EAAG-secret-token" not in repr(settings_rows.__doc__) + repr(rows)


def test_formatters() -> None:
    assert fmt.duration(35.7) == "36s" and fmt.duration(185) == "3m 05s"
    assert fmt.duration(7_620) == "2h 07m" and fmt.duration(None) == "—"
    assert fmt.bar(0.5, 10) == "█████·····" and len(fmt.bar(0.33, 7)) == 7
    assert fmt.bar(1.0, 4) == "████" and fmt.count(12_345) == "12,345"


async def test_chart_draws_target_line_and_small_series() -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=(60, 12)) as pilot:
        chart = ThroughputChart()
        await app.screen.mount(chart)
        chart.styles.height = 10
        chart.show([80.0] * 200, 80.0, failed=[0, 3] * 100, retried=[0.0] * 200)
        await pilot.pause()
        lines = chart.render().plain.splitlines()
    assert len(lines) == 10
    assert lines[0].strip().startswith("88")  # top of the scale: target × 1.1
    # A steady 80/s is one braille line in the top row (80 of 88), nothing below it.
    assert set(lines[0][8:]) <= {chr(0x2800 + bits) for bits in range(1, 256)}
    assert all(line[8:].strip() == "" for line in lines[1:7])
    assert set(lines[-3][8:]) == {"█"}  # failed/s on its own scale: every column at its peak
    assert lines[-2][8:].strip() == ""  # no retries: an empty row, not a flat bar


async def test_command_palette_opens_a_campaigns_retry_queue() -> None:
    app = make_app(FakeBackend.sample())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"retry queue of welcome")
        for _ in range(60):  # the palette searches in the background
            await pilot.pause(0.05)
            if app.screen.query_one(CommandList).option_count:
                break
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RetryQueueScreen)
        assert app.screen.campaign == "welcome-series"


async def test_monitor_of_a_vanished_campaign_says_so_and_stays_up() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(MonitorScreen("gone-campaign"))
        await settle(pilot)
        assert isinstance(app.screen, MonitorScreen) and app.is_running
        assert any("no campaign named 'gone-campaign'" in n.message for n in app._notifications)


async def test_names_and_reasons_with_brackets_are_shown_literally() -> None:
    odd = FakeCampaign(
        CampaignRow(
            "promo[2026]",
            CampaignState.PAUSED,
            total=10,
            sent=1,
            failed=0,
            pending=9,
            paused_reason="(#368) [blocked] temporarily",
        )
    )
    app = make_app(FakeBackend([odd]))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        detail = str(app.screen.query_one("#detail", Static).render())
        assert "promo[2026]" in detail and "[blocked]" in detail
        await pilot.press("enter")
        await settle(pilot)
        assert "[blocked]" in str(app.screen.query_one("#status-line", Static).render())


async def test_small_terminal_widens_columns_as_figures_grow() -> None:
    backend = FakeBackend.sample()
    app = make_app(backend, refresh_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        campaign = backend.campaigns["spring-sale"]
        campaign.row = replace(campaign.row, sent=1_234_567, total=2_000_000, failed=12_345)
        for _ in range(40):
            await pilot.pause(0.05)
            if "1,234,567" in str(table.get_cell("spring-sale", "sent")):
                break
        for key, shown in (("sent", "1,234,567"), ("failed", "12,345"), ("total", "2,000,000")):
            assert table.columns[key].content_width >= len(shown), key  # type: ignore[index]
        widths = sum(column.get_render_width(table) for column in table.columns.values())
        assert widths <= 80 - 2, "the table no longer fits 80 columns beside its scrollbar"
