"""The suppression list: numbers no campaign may message, why, and since when; filter, add,
remove. Numbers added here skip their queued recipients in every campaign at once."""

from __future__ import annotations

import re
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, DataTable, Header, Input, Label, Static

from watui.rules import SuppressionScope
from watui.service.models import SuppressionPage, SuppressionRow
from watui.tui import format as fmt
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar
from watui.tui.widgets.modals import MODAL_CSS, ConfirmModal, FormModal
from watui.tui.widgets.text_input import TextInput

#: Rows shown at once: the newest; the filter finds the others.
SHOWN_ROWS = 500
COLUMNS = (("mark", " ", 1), ("phone", "Phone", 16), ("scope", "Scope", 9), ("reason", "Reason", 16),
           ("since", "Since (UTC)", 16), ("detail", "Detail", None))  # fmt: skip


def typed_numbers(text: str) -> list[str]:
    """The numbers in what a person typed, separated by commas or semicolons (spaces inside a
    number, "+34 612 345 678", are the number's)."""
    return [part.strip() for part in re.split(r"[,;\n]+", text) if part.strip()]


class SuppressModal(FormModal[tuple[list[str], bool, str]]):
    """Numbers to suppress, marketing only or not, and a note."""

    DEFAULT_CSS = MODAL_CSS + """
SuppressModal { align: center middle; }
SuppressModal > Vertical {
    width: 60; max-width: 95%; height: auto; padding: 1 2; border: thick $primary; background: $surface;
}
SuppressModal .field-error { color: $error; height: auto; }
"""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Suppress numbers", classes="modal-title")
            yield Label("Numbers, separated by commas (E.164: +34612345678)")
            yield TextInput(id="suppress-phones")
            yield Checkbox("Marketing templates only", id="suppress-marketing")
            yield Label("Note (why)")
            yield TextInput(id="suppress-note", max_length=200)
            yield Static("", id="suppress-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Suppress", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#suppress-phones", Input).focus()

    def _submit(self) -> None:
        phones = typed_numbers(self.query_one("#suppress-phones", Input).value)
        if not phones:
            self.query_one("#suppress-error", Static).update("enter at least one number")
            return
        marketing_only = self.query_one(Checkbox).value
        self.dismiss((phones, marketing_only, self.query_one("#suppress-note", Input).value.strip()))


class SuppressionScreen(WatuiScreen):
    """Who must not be messaged, and why."""

    CSS_PATH = "suppression.tcss"
    HELP_TITLE = "Suppression list"
    #: Read when shown, changed or asked (r), not on every tick: the list may hold millions.
    LIVE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("r", "reload", "Reload"),
        Binding("space", "toggle_mark", "Mark", key_display="space"),
        Binding("d,delete", "remove", "Remove", key_display="d"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.containing = ""
        self.marked: set[str] = set()
        self.page = SuppressionPage((), 0)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Label("Filter")
            yield TextInput(placeholder="number, reason or word", id="filter", compact=True)
        table: DataTable[str] = DataTable(id="rows", cursor_type="row", zebra_stripes=True)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static(id="list-info")
        yield KeyBar()

    async def on_mount(self) -> None:
        self.sub_title = "Suppression list"
        self.query_one(DataTable).focus()

    async def refresh_data(self) -> None:
        page = await self.backend.list_suppressions(self.containing, SHOWN_ROWS)
        if page != self.page:
            self._show(page)

    def _show(self, page: SuppressionPage) -> None:
        self.page = page
        self.marked &= {row.phone for row in page.rows}
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in page.rows:
            table.add_row(*self._cells(row), key=row.phone)
        if page.rows:
            table.move_cursor(row=min(cursor, len(page.rows) - 1))
        self._show_info()

    def _cells(self, row: SuppressionRow) -> tuple[str | Text, ...]:
        scope = "marketing" if row.scope == SuppressionScope.MARKETING else "all"
        detail = Text(row.detail or "", no_wrap=True, overflow="ellipsis")
        mark = "✓" if row.phone in self.marked else " "
        return (mark, row.phone, scope, row.reason, fmt.utc_minute(row.since), detail)

    def _show_info(self) -> None:
        shown, total = len(self.page.rows), self.page.total
        if not total:
            info = "No suppressed numbers. Press a to add some."
        elif self.containing:
            info = f"{fmt.count(shown)} matching of {fmt.count(total)} suppressed"
        else:
            newest = f", newest {fmt.count(shown)} shown" if shown < total else ""
            info = f"{fmt.count(total)} suppressed{newest}"
        if self.marked:
            info += f" · {fmt.count(len(self.marked))} marked"
        self.query_one("#list-info", Static).update(info)

    async def on_input_changed(self, event: Input.Changed) -> None:
        self.containing = event.value.strip()
        await self.refresh_data()

    def on_input_submitted(self) -> None:
        self.query_one(DataTable).focus()

    async def action_reload(self) -> None:
        await self.refresh_data()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_toggle_mark(self) -> None:
        table = self.query_one(DataTable)
        if not self.page.rows:
            return
        phone = self.page.rows[table.cursor_row].phone
        self.marked.symmetric_difference_update({phone})
        table.update_cell(phone, "mark", "✓" if phone in self.marked else " ")
        self._show_info()
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def _picked(self) -> list[str]:
        """The marked numbers, or the one under the cursor when none is marked."""
        if self.marked:
            return sorted(self.marked)
        if not self.page.rows:
            return []
        return [self.page.rows[self.query_one(DataTable).cursor_row].phone]

    def action_add(self) -> None:
        def chosen(request: tuple[list[str], bool, str] | None) -> None:
            if request is not None:
                phones, marketing_only, note = request

                async def add() -> None:
                    added = await self.backend.suppress_numbers(
                        phones, marketing_only=marketing_only, note=note
                    )
                    self.notify(f"{fmt.count(added)} numbers suppressed")
                    await self.refresh_data()

                self.watui.run_command(add)

        self.app.push_screen(SuppressModal(), chosen)

    def action_remove(self) -> None:
        phones = self._picked()
        if not phones:
            return
        what = phones[0] if len(phones) == 1 else f"{fmt.count(len(phones))} numbers"

        async def remove() -> None:
            removed = await self.backend.unsuppress_numbers(phones)
            self.marked.clear()
            self.notify(f"{fmt.count(removed)} numbers taken off the list")
            await self.refresh_data()

        modal = ConfirmModal(
            f"Remove {what} from the list?",
            "Campaigns may message them again; rows already skipped stay skipped.",
            "Remove",
        )
        self.confirm(modal, lambda: self.watui.run_command(remove))

    def action_back(self) -> None:
        self.app.pop_screen()
