"""The account's phone numbers and their health: quality, throughput level, messaging limit.

What the table shows is what watui last heard (a poll of the Graph API, or a quality webhook),
the same the engine acts on: a number rated RED pauses, a rate above the level is lowered.
Opening the screen asks the API once; ``r`` asks again.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.widgets import DataTable, Header, Static

from watui.service.models import NumberRow, NumbersReport
from watui.tui import format as fmt
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar

#: What the engine acts on first, so that an 80-column terminal shows it; the rest after.
COLUMNS = (
    ("number", "Number"),
    ("quality", "Quality"),
    ("throughput", "Throughput"),
    ("limit", "Limit"),
    ("id", "ID"),
    ("name", "Name"),
    ("heard", "Heard at"),
)
QUALITY_STYLES = {"GREEN": "green", "YELLOW": "yellow", "RED": "bold red"}


def number_cells(number: NumberRow) -> tuple[Text | str, ...]:
    quality = number.quality or "—"
    throughput = number.throughput_level or "—"
    if number.rate is not None:
        throughput += f" {fmt.rate(number.rate)}"
    return (
        number.display_number,
        Text(quality, style=QUALITY_STYLES.get(quality, "")),
        throughput,
        number.messaging_limit or "—",
        number.phone_number_id or "—",
        number.verified_name or "—",
        f"{fmt.clock_time(number.heard_at)} {number.source}",
    )


class NumbersScreen(WatuiScreen):
    """Every number heard of; the configured sender noted under the table."""

    CSS_PATH = "numbers.tcss"
    HELP_TITLE = "Numbers"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "ask_api", "Ask the API again"),
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._asked = False
        self._problem: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(id="numbers", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="numbers-note")
        yield KeyBar()

    async def refresh_data(self) -> None:
        self.sub_title = "Phone numbers"
        if not self._asked:
            self._asked = True
            self.action_ask_api()
        self._show(await self.backend.list_numbers(refresh=False))

    def _show(self, report: NumbersReport) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for number in report.numbers:
            table.add_row(*number_cells(number), key=number.display_number)
        default = report.default_sender or "not set (whatsapp.phone_number_id)"
        lines = [f"Campaigns without their own senders send from [b]{escape(default)}[/b]."]
        if not report.numbers:
            lines.insert(0, "No number heard of yet.")
        if self._problem:
            lines.append(f"[red]Cannot ask the API:[/red] {escape(self._problem)}")
        self.query_one("#numbers-note", Static).update("\n".join(lines))

    def action_ask_api(self) -> None:
        self.command(self._ask_api)

    async def _ask_api(self) -> None:
        report = await self.backend.list_numbers(refresh=True)
        self._problem = report.problem

    def action_back(self) -> None:
        self.app.pop_screen()
