"""Retry queue of one campaign: waiting (with countdown), failed and in-doubt recipients.

Shown a page at a time (the backend pages with offset/limit), so 100,000 rows stay fast.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Header, Input, Label, Select, Static

from watui.service.models import RecipientState, RetryFilter, RetryPage, RetryRow, RetryTarget
from watui.tui import format as fmt
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar
from watui.tui.widgets.modals import ConfirmModal
from watui.tui.widgets.text_input import TextInput

PAGE_SIZE = 100
COLUMNS = (
    ("mark", " "),
    ("phone", "Phone"),
    ("status", "Status"),
    ("attempts", "Tries"),
    ("code", "Code"),
    ("meaning", "Meaning"),
    ("due", "Retry in"),
)
#: Fixed widths keep every column, the countdown included, on screen at 80 columns.
COLUMN_WIDTHS = {
    "mark": 1,
    "phone": 16,
    "status": 8,
    "attempts": 5,
    "code": 6,
    "meaning": 20,
    "due": 8,
}
STATUS_CHOICES = [
    ("waiting to retry", RecipientState.RETRY),
    ("failed", RecipientState.FAILED),
    ("in doubt", RecipientState.IN_DOUBT),
    ("unconfirmed", RecipientState.UNCONFIRMED),
]


def parse_code(text: str) -> int | None:
    """An error code filter: empty for any, else digits."""
    if not text:
        return None
    if not text.isdigit():
        raise ValueError("a code is digits only, e.g. 131026")
    return int(text)


class RetryQueueScreen(WatuiScreen):
    """Filter, pick and act on recipients that did not simply go out."""

    CSS_PATH = "retry_queue.tcss"
    HELP_TITLE = "Retry queue"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark", key_display="space"),
        Binding("r", "requeue", "Retry"),
        Binding("R", "requeue_all", "Retry all"),
        Binding("s", "skip", "Skip"),
        Binding("S", "skip_all", "Skip all", show=False),
        Binding("e", "export", "Export"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]"),
        Binding("left_square_bracket", "page(-1)", "Prev page", key_display="[", show=False),
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.campaign = name
        self.row_filter = RetryFilter()
        self.page_offset = 0
        self.marked: set[int] = set()
        self.current_page = RetryPage((), 0)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Label("Status")
            yield Select(STATUS_CHOICES, prompt="any status", id="status-filter", compact=True)
            yield Label("Code")
            yield TextInput(placeholder="any", id="code-filter", max_length=7, compact=True)
            yield Static("", id="code-error", classes="field-error")
        table: DataTable[str] = DataTable(id="rows", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key, width=COLUMN_WIDTHS.get(key))
        yield table
        yield Static(id="row-detail")  # the highlighted row's meaning in full: the column cuts it
        yield Static(id="page-info")
        yield KeyBar()

    async def on_mount(self) -> None:
        # WatuiScreen.on_mount (called after this one by Textual) loads the first page.
        self.sub_title = f"Retry queue · {self.campaign}"
        self.query_one(DataTable).focus()

    async def refresh_data(self) -> None:
        page = await self.backend.retry_queue(
            self.campaign, self.row_filter, self.page_offset, PAGE_SIZE
        )
        if page.total and not page.rows and self.page_offset:
            self.page_offset = max(0, (page.total - 1) // PAGE_SIZE * PAGE_SIZE)
            page = await self.backend.retry_queue(
                self.campaign, self.row_filter, self.page_offset, PAGE_SIZE
            )
        self._show(page)

    def _show(self, page: RetryPage) -> None:
        table = self.query_one(DataTable)
        same_rows = [row.id for row in page.rows] == [row.id for row in self.current_page.rows]
        self.current_page = page
        now = self.now()
        if same_rows and table.row_count == len(page.rows):
            for row in page.rows:  # only countdowns and marks move
                table.update_cell(str(row.id), "due", self._due(row, now))
                table.update_cell(str(row.id), "mark", "✓" if row.id in self.marked else " ")
        else:
            cursor = table.cursor_row
            table.clear()
            for row in page.rows:
                table.add_row(*self._cells(row, now), key=str(row.id))
            if page.rows:
                table.move_cursor(row=min(cursor, len(page.rows) - 1))
        highlighted = page.rows[table.cursor_row] if 0 <= table.cursor_row < len(page.rows) else None
        self._show_row_detail(str(highlighted.id) if highlighted else None)
        self._show_page_info()

    def _show_page_info(self) -> None:
        page = self.current_page
        if page.total == 0:
            info = "Nothing here: no recipient matches the filter."
        else:
            last = page.offset + len(page.rows)
            info = f"Rows {fmt.count(page.offset + 1)}–{fmt.count(last)} of {fmt.count(page.total)}"
            if self.marked:
                info += f" · {fmt.count(len(self.marked))} marked"
        self.query_one("#page-info", Static).update(info)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_row_detail(event.row_key.value)

    def _show_row_detail(self, key: str | None) -> None:
        row = next((row for row in self.current_page.rows if str(row.id) == key), None)
        detail = ""
        if row is not None and row.meaning:
            code = f"{row.code} " if row.code is not None else ""
            detail = f"{row.phone}: {code}{row.meaning}"
        self.query_one("#row-detail", Static).update(Text(detail, no_wrap=True, overflow="ellipsis"))

    def _cells(self, row: RetryRow, now: float) -> tuple[str | Text, ...]:
        return (
            "✓" if row.id in self.marked else " ",
            row.phone,
            {"retry": "waiting", "in_doubt": "in doubt"}.get(row.status, str(row.status)),
            str(row.attempts),
            str(row.code) if row.code is not None else "—",
            # Cut to the column with "…", not mid-word without a sign that more was there.
            Text(row.meaning, no_wrap=True, overflow="ellipsis"),
            self._due(row, now),
        )

    @staticmethod
    def _due(row: RetryRow, now: float) -> str:
        if row.status is not RecipientState.RETRY or row.next_attempt_at is None:
            return ""
        return "now" if row.next_attempt_at <= now else fmt.duration(row.next_attempt_at - now)

    # -- filters ---------------------------------------------------------------------------
    async def on_select_changed(self, event: Select.Changed) -> None:
        status = None if event.value is Select.NULL else RecipientState(str(event.value))
        await self._set_filter(RetryFilter(status, self.row_filter.code))

    async def on_input_changed(self, event: Input.Changed) -> None:
        error = self.query_one("#code-error", Static)
        try:
            code = parse_code(event.value.strip())
        except ValueError as problem:
            error.update(str(problem))
            return
        error.update("")
        await self._set_filter(RetryFilter(self.row_filter.status, code))

    async def _set_filter(self, wanted: RetryFilter) -> None:
        if wanted == self.row_filter:
            return
        self.row_filter = wanted
        self.page_offset = 0
        self.marked.clear()
        await self.refresh_data()

    # -- actions ---------------------------------------------------------------------------
    async def action_page(self, step: int) -> None:
        offset = self.page_offset + step * PAGE_SIZE
        if 0 <= offset < self.current_page.total:
            self.page_offset = offset
            await self.refresh_data()

    def action_toggle_mark(self) -> None:
        table = self.query_one(DataTable)
        if not self.current_page.rows:
            return
        row = self.current_page.rows[table.cursor_row]
        self.marked.symmetric_difference_update({row.id})
        table.update_cell(str(row.id), "mark", "✓" if row.id in self.marked else " ")
        self._show_page_info()
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def _picked(self) -> tuple[int, ...]:
        """The marked rows, or the row under the cursor when none is marked."""
        if self.marked:
            return tuple(sorted(self.marked))
        if not self.current_page.rows:
            return ()
        return (self.current_page.rows[self.query_one(DataTable).cursor_row].id,)

    def action_requeue(self) -> None:
        self._act("requeue", self._picked())

    def action_skip(self) -> None:
        self._act("skip", self._picked())

    def action_requeue_all(self) -> None:
        self._confirm_all("requeue", "Retry")

    def action_skip_all(self) -> None:
        self._confirm_all("skip", "Skip")

    def _confirm_all(self, verb: str, label: str) -> None:
        if not self.current_page.total:
            return
        count = fmt.count(self.current_page.total)

        self.confirm(
            ConfirmModal(
                f"{label} all {count} matching recipients?",
                "Every row matching the current filter, on every page.",
                label,
            ),
            lambda: self._act(verb, self.row_filter),
        )

    def _act(self, verb: str, target: RetryTarget) -> None:
        if target == ():
            return
        method = self.backend.requeue if verb == "requeue" else self.backend.skip
        done = "queued for sending" if verb == "requeue" else "skipped"

        async def run() -> None:
            count = await method(self.campaign, target)
            self.marked.clear()
            self.notify(f"{fmt.count(count)} recipients {done}")
            await self.refresh_data()

        self.watui.run_command(run)

    def action_export(self) -> None:
        default = str(self.watui.start_dir / f"{self.campaign}-retry-queue.csv")

        self.export_to_chosen_file(
            "Export to CSV", "Rows matching the filter go to:", default,
            lambda path: self.backend.export_retry_queue(self.campaign, self.row_filter, path),
        )

    def action_back(self) -> None:
        self.app.pop_screen()
