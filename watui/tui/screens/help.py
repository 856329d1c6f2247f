"""Every key of every screen, read from the screens' own bindings so it cannot go stale.

The app hands the sections in: this screen imports no other screen, so none of them imports it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar

KEY_NAMES = {
    "question_mark": "?",
    "comma": ",",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
}


def _key_text(binding: Binding) -> str:
    keys = (part.strip() for part in binding.key.split(","))
    return " / ".join(KEY_NAMES.get(key, key) for key in keys)


def bindings_table(title: str, bindings: Sequence[BindingType]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        show_header=False,
        box=None,
        padding=(0, 2, 0, 1),
        expand=False,
    )
    table.add_column("Key", style="bold", min_width=14)
    table.add_column("Action")
    for binding in bindings:
        if isinstance(binding, Binding):
            table.add_row(_key_text(binding), binding.description or binding.action)
    return table


class KeySection(NamedTuple):
    """One heading of the help screen and the keys under it."""

    title: str
    bindings: Sequence[BindingType]


class HelpScreen(WatuiScreen):
    LIVE = False
    DEFAULT_CSS = """
    HelpScreen #help { padding: 0 1; }
    HelpScreen #help Static { margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def __init__(self, sections: Sequence[KeySection]) -> None:
        super().__init__()
        self.sections = tuple(sections)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="help"):
            for section in self.sections:
                yield Static(bindings_table(section.title, section.bindings))
        yield KeyBar()

    async def on_mount(self) -> None:
        self.sub_title = "Keys"
        self.query_one("#help").focus()

    def action_back(self) -> None:
        self.app.pop_screen()
