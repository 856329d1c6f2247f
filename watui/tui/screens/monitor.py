"""Live monitor of one campaign: throughput chart, latency, in-flight, progress, errors, events.

Reads one aggregated ``MetricsSnapshot`` per refresh tick (2-4 Hz), never one message per send.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import DataTable, Header, RichLog, Static
from textual.widgets.data_table import ColumnKey

from watui.service.models import (
    CampaignRow,
    CampaignState,
    ErrorCount,
    MetricsSnapshot,
    SendingNumber,
)
from watui.tui import format as fmt
from watui.tui.messages import OpenReport, OpenRetryQueue
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.chart import ThroughputChart
from watui.tui.widgets.keybar import KeyBar
from watui.tui.widgets.modals import PromptModal, parse_rate

PROGRESS_WIDTH = 20
EVENT_LINES = 500


class MonitorScreen(WatuiScreen):
    """Watch and steer one campaign while it sends."""

    CSS_PATH = "monitor.tcss"
    HELP_TITLE = "Live monitor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space,p", "pause_resume", "Pause/Resume", key_display="space"),
        Binding("r", "change_rate", "Rate"),
        Binding("t", "retry_queue", "Retry queue"),
        # Not on the key bar, which is full at 80 columns: the help and the palette list it.
        Binding("v", "report", "Report", show=False),
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.campaign = name
        self._last_seq = 0
        self._event_lines: deque[str] = deque(maxlen=EVENT_LINES)
        self._status: CampaignRow | None = None
        self._snapshot: MetricsSnapshot | None = None
        self._errors_shown: tuple[object, ...] = ()
        self._texts_shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status-line")
        with Horizontal(id="top"):
            chart = ThroughputChart(id="chart")
            chart.border_title = "Throughput (msg/s)"
            chart.border_subtitle = "[$success]⣀ sent/s[/]  [$warning]⠁ target[/]"
            yield chart
            stats = Static(id="stats")
            stats.border_title = "Now"
            yield stats
        yield Static(id="progress")
        yield Static(id="numbers")  # a campaign of several numbers: each one's rate and state
        with Horizontal(id="bottom"):
            errors: DataTable[str] = DataTable(id="errors", cursor_type="none", show_cursor=False)
            errors.border_title = "Errors by code"
            errors.border_subtitle = "late: after acceptance"
            errors.add_column("Code", key="code")
            errors.add_column("Send", key="count")
            errors.add_column("Late", key="late")
            errors.add_column("Meaning", key="meaning")
            yield errors
            with Vertical(id="events-box"):
                # Wrapped, not cut: at 80 columns an event line is wider than its box.
                log = RichLog(id="events", max_lines=EVENT_LINES, wrap=True, min_width=20)
                log.border_title = "Events"
                yield log
        yield KeyBar()

    async def refresh_data(self) -> None:
        self._status = await self.backend.campaign_status(self.campaign)
        self._snapshot = await self.backend.metrics(self.campaign)
        events = await self.backend.events(self.campaign, self._last_seq)
        with self.app.batch_update():
            self._show_status()
            self._show_metrics()
            log = self.query_one("#events", RichLog)
            for event in events:
                line = f"{fmt.clock_time(event.at)}  {event.text}"
                self._event_lines.append(line)
                log.write(Text(line))
                self._last_seq = max(self._last_seq, event.seq)

    def _show_status(self) -> None:
        status, snap = self._status, self._snapshot
        assert status is not None
        self.sub_title = status.name
        line = f"[b]{escape(status.name)}[/b]  "
        if status.status is CampaignState.PAUSED:
            reason = escape(status.paused_reason or "paused")
            line += f"[$warning][b]‖ PAUSED[/b]: {reason}[/]  (space to resume)"
        elif status.status is CampaignState.RUNNING and snap is not None and snap.outage:
            line += f"[$error][b]⚠[/b] {escape(snap.outage.line(snap.at))}[/]"
        elif status.status is CampaignState.RUNNING:
            target = f" at {snap.target_rate:g} msg/s target" if snap else ""
            line += f"[$success][b]▶ RUNNING[/b][/]{target}"
            if snap is not None and snap.waiting_reason:
                line += f"  [$warning]waiting: {escape(snap.waiting_reason)}[/]"
        else:
            line += f"[b]{status.status}[/b]"
        self._set_text("#status-line", line)

    def _show_metrics(self) -> None:
        status, snap = self._status, self._snapshot
        assert status is not None
        chart = self.query_one(ThroughputChart)
        if snap is None:
            chart.show((), None)
        else:
            title = f"Throughput (msg/s), last {fmt.duration(len(snap.sent_per_s))}"
            if chart.border_title != title:
                chart.border_title = title
            chart.show(
                snap.sent_per_s,
                snap.target_rate,
                snap.failed_per_s,
                snap.retried_per_s,
                snap.throttled_per_s,
                snap.delivered_per_s,
            )
        self._set_text("#stats", self._stats_text(snap))
        total = snap.total if snap else status.total
        done = total - (snap.pending if snap else status.pending)
        fraction = done / total if total else 0.0
        eta = snap.eta_seconds if snap else status.eta_seconds
        sent, failed = (snap.sent, snap.failed) if snap else (status.sent, status.failed)
        self._set_text(
            "#progress",
            f"{fmt.bar(fraction, PROGRESS_WIDTH)} {fraction * 100:.1f}% "
            f"{fmt.count(done)}/{fmt.count(total)} · [$success]{fmt.count(sent)} sent[/] · "
            f"[$error]{fmt.count(failed)} failed[/] · ETA {fmt.duration(eta)}",
        )
        self._show_numbers(snap)
        self._show_errors(snap)

    def _show_numbers(self, snap: MetricsSnapshot | None) -> None:
        """One entry per number, only for a campaign of several (one number's is the chart)."""
        numbers = snap.numbers if snap else ()
        shown = self.query_one("#numbers", Static)
        shown.display = len(numbers) > 1
        if len(numbers) > 1:
            self._set_text("#numbers", " · ".join(_number_text(number) for number in numbers))

    def _set_text(self, selector: str, text: str) -> None:
        """Update a fixed-size text only when it changed, without a layout pass: an unchanged
        or same-size update would otherwise re-lay-out the whole screen on every tick."""
        if self._texts_shown.get(selector) == text:
            return
        self._texts_shown[selector] = text
        self.query_one(selector, Static).update(text, layout=False)

    def _stats_text(self, snap: MetricsSnapshot | None) -> str:
        if snap is None:
            return "[dim]Not sending.[/dim]"
        rate_now = snap.sent_per_s[-1] if snap.sent_per_s else 0.0
        return "\n".join(
            (
                f"sent now   {fmt.rate(rate_now)}",
                f"target     {fmt.rate(snap.target_rate)}",
                f"lat p50/95 {_pair(snap.latency_p50, snap.latency_p95, 1000, 'ms')}",
                f"in flight  {snap.in_flight}/{snap.window}",
                # The connection limit beside its reuse: in flight never exceeds it.
                f"conn/reuse {snap.connections or '—'}/{_whole_percent(snap.connection_reuse)}",
                f"retrying   {fmt.count(snap.retrying)}",
                f"in doubt   {fmt.count(snap.in_doubt)}",
                f"deliv/read [$success]{_whole_percent(snap.delivered_share)}[/]/"
                f"{_whole_percent(snap.read_share)}",
                f"dlv p50/95 {_pair(snap.deliver_p50, snap.deliver_p95, 1, 's')}",
            )
        )

    def _show_errors(self, snap: MetricsSnapshot | None) -> None:
        errors = (snap.errors, snap.late_errors) if snap else ((), ())
        table = self.query_one("#errors", DataTable)
        if errors == self._errors_shown:
            self._fit_meaning_column(table)  # the box may have been laid out since
            return
        self._errors_shown = errors
        table.clear()
        for code, at_send, late, meaning in _errors_by_code(*errors):
            table.add_row(
                str(code) if code is not None else "—", fmt.count(at_send) if at_send else "",
                fmt.count(late) if late else "", Text(meaning, no_wrap=True, overflow="ellipsis"),
            )
        self.call_after_refresh(self._fit_meaning_column, table)  # once the new rows are measured

    def _fit_meaning_column(self, table: DataTable[str]) -> None:
        """The meaning takes what the box has left and ends in "…" when cut (at 80 columns
        "Message undeliverable (not on WhatsApp)" does not fit)."""
        others = sum(column.get_render_width(table) for key, column in table.columns.items()
                     if key.value != "meaning")
        room = table.scrollable_content_region.width - others - 2 * table.cell_padding
        meaning = table.columns[ColumnKey("meaning")]
        if room >= 8 and meaning.width != room:
            meaning.auto_width = False
            meaning.width = room
            table.refresh()

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self._fit_to_width)

    def _fit_to_width(self) -> None:
        self._fit_meaning_column(self.query_one("#errors", DataTable))
        # RichLog wraps a line once, when written: wrap them all again for the new width.
        log = self.query_one("#events", RichLog)
        log.clear()
        for line in self._event_lines:
            log.write(Text(line))

    def action_pause_resume(self) -> None:
        status = self._status
        if status is None:
            return
        if status.status is CampaignState.RUNNING:
            self.command(lambda: self.backend.pause(self.campaign), "Paused")
        elif status.status in (CampaignState.PAUSED, CampaignState.DRAFT):
            action = (
                self.backend.resume
                if status.status is CampaignState.PAUSED
                else (self.backend.start)
            )
            self.command(lambda: action(self.campaign), "Sending")
        else:
            self.notify(f"The campaign is {status.status}", severity="warning")

    def action_change_rate(self) -> None:
        current = self._snapshot.target_rate if self._snapshot else 80.0

        def chosen(rate: float | None) -> None:
            if rate is not None:
                self.command(
                    lambda: self.backend.set_rate(self.campaign, rate),
                    f"Rate set to {rate:g} msg/s",
                )

        prompt = self.kept_modal("rate", self._rate_prompt)
        prompt.reset(f"{current:g}")
        self.app.push_screen(prompt, chosen)

    @staticmethod
    def _rate_prompt() -> PromptModal[float]:
        return PromptModal(
            "Change the send rate",
            "Messages per second (takes effect at once):",
            "",
            parse_rate,
            ok_label="Set rate",
        )

    def action_retry_queue(self) -> None:
        self.post_message(OpenRetryQueue(self.campaign))

    def action_report(self) -> None:
        self.post_message(OpenReport(self.campaign))

    def action_back(self) -> None:
        self.app.pop_screen()


def _errors_by_code(
    at_send: tuple[ErrorCount, ...], late: tuple[ErrorCount, ...]
) -> list[tuple[int | None, int, int, str]]:
    """One row per code: errors answered to a send, and failures reported after acceptance."""
    sent_counts = {error.code: error.count for error in at_send}
    late_counts = {error.code: error.count for error in late}
    meanings = {error.code: error.meaning for error in (*late, *at_send)}
    rows = [(code, sent_counts.get(code, 0), late_counts.get(code, 0), meaning)
            for code, meaning in meanings.items()]
    return sorted(rows, key=lambda row: -(row[1] + row[2]))


def _pair(first: float | None, second: float | None, scale: float, unit: str) -> str:
    """Two figures in one unit ("142/231ms"), so p50 and p95 share a line."""
    if first is None or second is None:
        return "—"
    digits = 0 if scale > 1 or second >= 10 else 1
    return f"{first * scale:.{digits}f}/{second * scale:.{digits}f}{unit}"


def _number_text(number: SendingNumber) -> str:
    name = escape(number.phone_number_id)
    if number.state == "sending":
        return f"{name} [$success]▶[/] {fmt.rate(number.rate)}"
    if number.state == "paused":
        return f"{name} [$warning]‖ {escape(number.reason or 'paused')}[/]"
    return f"{name} [dim]{escape(number.state)}[/dim]"


def _whole_percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction * 100:.0f}%"
