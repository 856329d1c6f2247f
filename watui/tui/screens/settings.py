"""The effective settings (command line > env > TOML > defaults), secrets masked."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Static

from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar


class SettingsScreen(WatuiScreen):
    """Read-only: change settings in watui.toml or WATUI_* variables."""

    LIVE = False
    DEFAULT_CSS = """
    SettingsScreen #settings { height: 1fr; }
    SettingsScreen .hint { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(id="settings", cursor_type="row", zebra_stripes=True)
        table.add_column("Setting", key="name")
        table.add_column("Value", key="value")
        yield table
        yield Static(
            "Read only. Change them in watui.toml or WATUI_* variables "
            "(see settings.example.toml).",
            classes="hint",
        )
        yield KeyBar()

    async def refresh_data(self) -> None:
        self.sub_title = "Settings"
        table = self.query_one(DataTable)
        table.clear()
        for row in self.backend.settings_view():
            table.add_row(row.name, row.value)

    def action_back(self) -> None:
        self.app.pop_screen()
