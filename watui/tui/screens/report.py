"""A campaign's report: the funnel accepted → delivered → read as bars, delivered and read over
time as sparklines, delivery times, and failures by code (before and after acceptance).

Reads one ``CampaignReport`` on opening and every few seconds after (it aggregates over every
recipient, so it is not polled at the monitor's pace); ``e`` exports every recipient.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import DataTable, Header, Sparkline, Static

from watui.service.models import CampaignReport
from watui.tui import format as fmt
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.keybar import KeyBar

#: Seconds between reloads: the report is a handful of aggregate queries over the campaign.
RELOAD_EVERY = 5.0
FUNNEL_LABEL = 10
FUNNEL_NUMBERS = 16  # " 12,345  100.0%"


class ReportScreen(WatuiScreen):
    """How a campaign's messages fared once accepted."""

    CSS_PATH = "report.tcss"
    HELP_TITLE = "Report"
    LIVE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "export", "Export"),
        Binding("q,escape", "back", "Back", key_display="q"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.campaign = name
        self.report: CampaignReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        funnel = Static(id="funnel")
        funnel.border_title = "Accepted → delivered → read"
        yield funnel
        with Horizontal(id="middle"):
            with Vertical(id="timeline") as timeline:
                timeline.border_title = "Over time"
                yield Static("[$success]delivered[/]", classes="series-label")
                yield Sparkline([], id="delivered-line")
                yield Static("[$accent]read[/]", classes="series-label")
                yield Sparkline([], id="read-line")
            times = Static(id="times")
            times.border_title = "Time to deliver"
            yield times
        failures: DataTable[str] = DataTable(id="failures", cursor_type="none", show_cursor=False)
        failures.border_title = "Failures by code"
        failures.add_column("Code", key="code")
        failures.add_column("Before", key="before")
        failures.add_column("After", key="after")
        failures.add_column("Meaning", key="meaning")
        yield failures
        yield KeyBar()

    async def on_mount(self) -> None:
        if self.watui.refresh_interval:
            self.set_interval(RELOAD_EVERY, self._tick, name="reload")

    async def refresh_data(self) -> None:
        report = await self.backend.report(self.campaign)
        if report == self.report:
            return
        self.report = report
        self.sub_title = report.name
        with self.app.batch_update():
            self.query_one("#summary", Static).update(_summary(report))
            self._show_funnel(report)
            self._show_timeline(report)
            self.query_one("#times", Static).update(_times(report))
            self._show_failures(report)

    def _show_funnel(self, report: CampaignReport) -> None:
        funnel = self.query_one("#funnel", Static)
        width = max(funnel.content_region.width - FUNNEL_LABEL - FUNNEL_NUMBERS, 10)
        steps = (("accepted", report.accepted, "$primary"), ("delivered", report.delivered,
                 "$success"), ("read", report.read, "$accent"))
        lines = []
        for label, value, colour in steps:
            fraction = value / report.accepted if report.accepted else 0.0
            lines.append(
                f"{label:<{FUNNEL_LABEL}}[{colour}]{fmt.bar(fraction, width)}[/]"
                f" {fmt.count(value):>7} {fmt.percent(fraction if report.accepted else None):>7}"
            )
        funnel.update("\n".join(lines))

    def _show_timeline(self, report: CampaignReport) -> None:
        self.query_one("#delivered-line", Sparkline).data = [p.delivered for p in report.timeline]
        self.query_one("#read-line", Sparkline).data = [p.read for p in report.timeline]
        timeline = self.query_one("#timeline", Vertical)
        if report.timeline:
            span = report.timeline[-1].at - report.timeline[0].at
            timeline.border_subtitle = f"{fmt.clock_time(report.timeline[0].at)} + {fmt.duration(span)}"
        else:
            timeline.border_subtitle = "nothing delivered yet"

    def _show_failures(self, report: CampaignReport) -> None:
        table = self.query_one("#failures", DataTable)
        table.clear()
        for item in report.failures:
            table.add_row(
                "—" if item.code is None else str(item.code), fmt.count(item.before),
                fmt.count(item.after), Text(item.meaning, no_wrap=True, overflow="ellipsis"),
            )

    def on_resize(self) -> None:
        if self.report is not None:
            self.call_after_refresh(self._show_funnel, self.report)

    def action_export(self) -> None:
        default = str(self.watui.start_dir / f"{self.campaign}-recipients.csv")

        self.export_to_chosen_file(
            "Export every recipient", "CSV, or JSON Lines when the name ends in .jsonl:", default,
            lambda path: self.backend.export_recipients(
                self.campaign, path, "jsonl" if path.suffix == ".jsonl" else "csv"),
        )

    def action_back(self) -> None:
        self.app.pop_screen()


def _summary(report: CampaignReport) -> str:
    return (
        f"[b]{escape(report.name)}[/b]  {report.status.value} · {fmt.count(report.total)} total"
        f" · [$error]{fmt.count(report.failed)} failed[/], {fmt.count(report.failed_after)} late"
        f" · {fmt.count(report.unconfirmed)} unconfirmed"
    )


def _times(report: CampaignReport) -> str:
    lines = [f"{label}  {_seconds(value)}" for label, value in report.deliver_percentiles]
    if report.pricing:
        lines.append("")
        lines += [f"{escape(category)[:10]:<10} {fmt.count(count):>6}"
                  for category, count in report.pricing[:3]]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "—" if value is None else fmt.duration(value) if value >= 60 else f"{value:.1f}s"
