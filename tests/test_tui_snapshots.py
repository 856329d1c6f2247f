"""Snapshot tests of every screen and the states that matter, against the FakeBackend.

Plain ``def`` functions (snap_compare cannot run inside ``async def``); fixed terminal sizes,
the fake's fixed clock, no animations, a steady cursor, UTC times. Review changed SVGs by eye,
then accept them with ``--snapshot-update``.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.tui_fakes import CONTACTS, TEMPLATES, FakeBackend, make_app
from tests.tui_pilot import settle
from watui.tui.screens.retry_queue import RetryQueueScreen
from watui.tui.screens.setup import SetupScreen, template_key

pytestmark = pytest.mark.usefixtures("tui_deterministic")

WIDE = (100, 30)
SMALL = (80, 24)


async def _fill_setup(pilot: Pilot, name: str, body_params: str) -> SetupScreen:
    """Open setup and fill one step with the order_shipped template and the sample contacts."""
    await pilot.app.push_screen(SetupScreen())
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, SetupScreen)
    screen.query_one("#name", Input).value = name
    screen.query_one(Select).value = template_key(TEMPLATES[0])
    screen.query_one("#contacts", Input).value = str(CONTACTS)
    screen.query_one("#body-params", Input).value = body_params
    await settle(pilot)
    return screen


def test_campaigns_empty(snap_compare) -> None:
    assert snap_compare(make_app(FakeBackend()), terminal_size=SMALL)


def test_campaigns_list(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE)


def test_campaigns_list_small_terminal(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, press=["down"])


def test_campaigns_delete_asks_first(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, press=["down", "down", "d"])


def test_monitor_running_with_graph(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["enter"])


def test_monitor_running_small_terminal(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, press=["enter"])


def test_monitor_paused_with_reason(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["down", "enter"])


def test_monitor_light_theme(snap_compare) -> None:
    async def light(pilot: Pilot) -> None:
        pilot.app.theme = "textual-light"

    assert snap_compare(make_app(), terminal_size=WIDE, press=["enter"], run_before=light)


def test_monitor_change_rate_modal(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["enter", "r", "x"])


def test_report_of_a_finished_campaign(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["down", "down", "v"])


def test_report_small_terminal(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, press=["enter", "v"])


def test_report_before_anything_was_delivered(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, press=["down", "down", "down", "v"])


def test_retry_queue_with_rows(snap_compare) -> None:
    async def open_queue(pilot: Pilot) -> None:
        await pilot.app.push_screen(RetryQueueScreen("spring-sale"))
        await settle(pilot)

    assert snap_compare(
        make_app(), terminal_size=WIDE, press=["space", "space"], run_before=open_queue
    )


def test_retry_queue_filtered_by_status(snap_compare) -> None:
    async def failed_only(pilot: Pilot) -> None:
        await pilot.app.push_screen(RetryQueueScreen("spring-sale"))
        await settle(pilot)
        pilot.app.screen.query_one(Select).value = "failed"
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=failed_only)


def test_setup_blank(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["n"])


def test_setup_validation_errors(snap_compare) -> None:
    async def bad_input(pilot: Pilot) -> None:
        screen = await _fill_setup(pilot, "no spaces allowed", "first_name, missing_column")
        screen.query_one("#rate", Input).value = "5000"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=WIDE, run_before=bad_input)


def test_setup_preview_and_validation_report(snap_compare) -> None:
    async def filled(pilot: Pilot) -> None:
        screen = await _fill_setup(pilot, "may-promo", "first_name, order, date")
        screen.validate_contacts()
        await settle(pilot)
        screen.query_one("#report").scroll_visible(animate=False, top=False)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=WIDE, run_before=filled)


def test_setup_button_parameters(snap_compare) -> None:
    """A template with a dynamic URL button: the field, its hint and the missing column."""

    async def parcel(pilot: Pilot) -> None:
        screen = await _fill_setup(pilot, "parcels", "first_name")
        screen.query_one(Select).value = template_key(TEMPLATES[4])
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        screen.query_one("#f-buttons").scroll_visible(animate=False, top=False)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=WIDE, run_before=parcel)


def test_file_picker(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, press=["n", "ctrl+o"])


def test_settings_masks_secrets(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["comma"])


def test_help_lists_keys(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["question_mark"])
