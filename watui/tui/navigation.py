"""Opening screens by name, shared by key bindings and the command palette."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import App

if TYPE_CHECKING:
    from watui.tui.app import WatuiApp


def open_screen(app: App[object], what: str, name: str | None = None) -> None:
    """Push the named screen; 'home' pops back to the campaigns list."""
    from watui.tui.screens.campaigns import CampaignsScreen
    from watui.tui.screens.monitor import MonitorScreen
    from watui.tui.screens.retry_queue import RetryQueueScreen
    from watui.tui.screens.settings import SettingsScreen
    from watui.tui.screens.setup import SetupScreen

    if what == "home":
        while len(app.screen_stack) > 2 and not isinstance(app.screen, CampaignsScreen):
            app.pop_screen()
        return
    if what == "monitor" and name:
        app.push_screen(MonitorScreen(name))
    elif what == "retry" and name:
        app.push_screen(RetryQueueScreen(name))
    elif what == "setup":
        app.push_screen(SetupScreen())
    elif what == "settings":
        app.push_screen(SettingsScreen())
    elif what == "help":
        cast("WatuiApp", app).action_help()
