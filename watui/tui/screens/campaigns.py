"""Home: every campaign with its status, progress, counts, rate and ETA, refreshed live."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.widgets import DataTable, Header, Static

from watui.service.models import CampaignRow, CampaignState
from watui.tui import format as fmt
from watui.tui.messages import (
    OpenMonitor,
    OpenNumbers,
    OpenReport,
    OpenRetryQueue,
    OpenSettings,
    OpenSetup,
    OpenSuppression,
)
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar
from watui.tui.widgets.modals import ConfirmModal

COLUMNS = (
    ("name", "Campaign"),
    ("status", "Status"),
    ("progress", "Done"),
    ("sent", "Sent"),
    ("failed", "Failed"),
    ("delivery", "Dlv/Rd%"),
    ("total", "Total"),
    ("rate", "Rate"),
    ("eta", "ETA"),
)
BAR_WIDTH = 10
NARROW_NAME = 10
NARROW_BELOW = 100

#: A running campaign whose sending waits for the API (both widths: 8 characters at most).
OUTAGE_LABEL = "⚠ no API"

STATUS_LABELS = {
    CampaignState.DRAFT: "○ draft",
    CampaignState.RUNNING: "▶ running",
    CampaignState.PAUSED: "‖ paused",
    CampaignState.COMPLETED: "✔ done",
    CampaignState.CANCELLED: "✖ cancelled",
}
#: Under 100 columns: at most 8 characters, so the counts keep their digits in 80 columns.
NARROW_STATUS_LABELS = {
    CampaignState.DRAFT: "○ draft",
    CampaignState.RUNNING: "▶ run",
    CampaignState.PAUSED: "‖ paused",
    CampaignState.COMPLETED: "✔ done",
    CampaignState.CANCELLED: "✖ cancel",
}


def campaign_cells(
    row: CampaignRow, narrow: bool = False, now: float = 0.0
) -> tuple[Text | str, ...]:
    """One table row; ``narrow`` (under 100 columns) trims (shorter names, the percent
    without its bar) so all columns fit in 80 with millions in the counts."""
    name = (
        row.name
        if not narrow or len(row.name) <= NARROW_NAME
        else row.name[: NARROW_NAME - 1] + "…"
    )
    labels = NARROW_STATUS_LABELS if narrow else STATUS_LABELS
    status = OUTAGE_LABEL if row.outage else (
        schedule_label(row, narrow, now) or labels.get(row.status, str(row.status))
    )
    running = row.status is CampaignState.RUNNING
    done = f"{row.progress * 100:3.0f}%"
    return (
        name,
        status,
        done if narrow else f"{fmt.bar(row.progress, BAR_WIDTH)} {done}",
        _right(fmt.count(row.sent)),
        _right(fmt.count(row.failed)),
        _right(_delivery(row)),
        _right(fmt.count(row.total)),
        _right(fmt.rate(row.rate) if running else "—"),
        _right(fmt.duration(row.eta_seconds) if running else "—"),
    )


def schedule_label(row: CampaignRow, narrow: bool, now: float) -> str | None:
    """"◷ scheduled 09:00" for a draft that starts by itself, "◷ waiting for window" while
    every recipient left is outside their send window; None otherwise."""
    if row.status is CampaignState.DRAFT and row.start_at is not None:
        when = fmt.day_time(row.start_at, now)
        return f"◷ {when}" if narrow else f"◷ scheduled {when}"
    if row.waiting_for_window:
        return "◷ window" if narrow else "◷ waiting for window"
    return None


def _delivery(row: CampaignRow) -> str:
    """Delivered and read, in whole percent of sent ("93/43"): one column, so that the table
    still fits 80 columns with millions in the counts."""
    if row.delivered_share is None or row.read_share is None:
        return "—"
    return f"{row.delivered_share * 100:.0f}/{row.read_share * 100:.0f}"


def _right(text: str) -> Text:
    return Text(text, justify="right")


class CampaignsScreen(WatuiScreen):
    """The campaigns table; enter opens the live monitor."""

    CSS_PATH = "campaigns.tcss"
    HELP_TITLE = "Campaigns"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,o", "open", "Open", key_display="⏎"),
        Binding("n", "new", "New"),
        Binding("s", "start", "Start"),
        Binding("p", "pause_resume", "Pause/Resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("d", "delete", "Delete"),
        Binding("t", "retry_queue", "Retry queue"),
        Binding("v", "report", "Report"),
        Binding("m", "numbers", "Numbers", show=False),
        Binding("comma", "settings", "Settings", key_display=","),
        Binding("u", "suppression", "Suppression list", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, CampaignRow] = {}
        self._narrow = False

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(id="campaigns", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("No campaigns yet. Press [b]n[/b] to create one.", id="empty")
        yield Static(id="detail")
        yield KeyBar()

    async def refresh_data(self) -> None:
        rows = await self.backend.list_campaigns()
        table = self.query_one(DataTable)
        narrow = self.size.width < NARROW_BELOW
        if narrow != self._narrow:  # the terminal was resized across the limit: redraw all
            self._narrow = narrow
            table.clear()
            self._rows = {}
        wanted = {row.name: row for row in rows}
        for name in [name for name in self._rows if name not in wanted]:
            table.remove_row(name)
        now = self.now()
        for row in rows:
            cells = campaign_cells(row, narrow, now)
            if row.name in self._rows:
                if self._rows[row.name] != row:
                    # Widen as figures grow (0 -> 1,823; draft -> running): never cut a number.
                    for (column, _), value in zip(COLUMNS, cells, strict=True):
                        table.update_cell(row.name, column, value, update_width=True)
            else:
                table.add_row(*cells, key=row.name)
        self._rows = wanted
        self.query_one("#empty").display = not rows
        table.display = bool(rows)
        self._show_detail()

    async def on_resize(self) -> None:
        await self.refresh_data()

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def on_data_table_row_selected(self) -> None:
        self.action_open()

    def _show_detail(self) -> None:
        """One line under the table: the pause reason, retries, in-doubt, invalid rows."""
        row = self.selected()
        detail = ""
        if row is not None:
            parts = []
            if row.outage:
                parts.append(f"[b]{escape(row.outage.line(time.time()))}[/b]")
            if row.paused_reason:
                parts.append(f"[b]Paused:[/b] {escape(row.paused_reason)}")
            if row.status is CampaignState.DRAFT and row.start_at is not None:
                parts.append(f"starts at {fmt.day_time(row.start_at, self.now())}")
            if row.deadline is not None:
                parts.append(f"deadline {fmt.day_time(row.deadline, self.now())}")
            if row.waiting_reason:
                parts.append(f"[b]Waiting:[/b] {escape(row.waiting_reason)}")
            if row.delivered_share is not None and row.read_share is not None:
                parts.append(f"{fmt.percent(row.delivered_share)} delivered, "
                             f"{fmt.percent(row.read_share)} read of sent")
            if row.retrying:
                parts.append(f"{fmt.count(row.retrying)} waiting to retry")
            if row.in_doubt:
                parts.append(f"{fmt.count(row.in_doubt)} in doubt")
            if row.invalid:
                parts.append(f"{fmt.count(row.invalid)} invalid rows skipped at import")
            detail = f"[b]{escape(row.name)}[/b]: " + (" · ".join(parts) or f"{row.status}")
        self.query_one("#detail", Static).update(detail)

    def selected(self) -> CampaignRow | None:
        table = self.query_one(DataTable)
        if not self._rows or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._rows.get(key or "")

    def action_open(self) -> None:
        if row := self.selected():
            self.post_message(OpenMonitor(row.name))

    def action_new(self) -> None:
        self.post_message(OpenSetup())

    def action_settings(self) -> None:
        self.post_message(OpenSettings())

    def action_numbers(self) -> None:
        self.post_message(OpenNumbers())

    def action_suppression(self) -> None:
        self.post_message(OpenSuppression())

    def action_retry_queue(self) -> None:
        if row := self.selected():
            self.post_message(OpenRetryQueue(row.name))

    def action_report(self) -> None:
        if row := self.selected():
            self.post_message(OpenReport(row.name))

    def action_start(self) -> None:
        row = self.selected()
        if row and row.status is CampaignState.DRAFT:
            self.command(lambda: self.backend.start(row.name), f"Started {row.name}")
        elif row:
            self.notify(
                f"{row.name} is {row.status}; only a draft can be started", severity="warning"
            )

    def action_pause_resume(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.status is CampaignState.RUNNING:
            self.command(lambda: self.backend.pause(row.name), f"Paused {row.name}")
        elif row.status is CampaignState.PAUSED:
            self.command(lambda: self.backend.resume(row.name), f"Resumed {row.name}")
        else:
            self.notify(
                f"{row.name} is {row.status}: nothing to pause or resume", severity="warning"
            )

    def action_cancel(self) -> None:
        row = self.selected()
        if row is None or row.status in (CampaignState.COMPLETED, CampaignState.CANCELLED):
            return

        self.confirm(
            ConfirmModal(
                f"Cancel {row.name}?",
                f"{fmt.count(row.pending)} recipients will never be sent. This cannot be undone.",
                "Cancel campaign",
            ),
            lambda: self.command(lambda: self.backend.cancel(row.name), f"Cancelled {row.name}"),
        )

    def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.status is CampaignState.RUNNING:
            self.notify("Pause or cancel the campaign before deleting it", severity="warning")
            return

        self.confirm(
            ConfirmModal(
                f"Delete {row.name}?",
                f"Its {fmt.count(row.total)} recipients and their history are removed. "
                "This cannot be undone.",
                "Delete",
            ),
            lambda: self.command(lambda: self.backend.delete(row.name), f"Deleted {row.name}"),
        )
