"""The watui terminal UI: an App around a ``Backend``; screens never see SQL or HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.widget import AwaitMount
from textual.worker import Worker, WorkerState

from watui.errors import WatuiError
from watui.service.api import Backend
from watui.tui.commands import WatuiCommands
from watui.tui.messages import (
    GoHome,
    OpenHelp,
    OpenMonitor,
    OpenNumbers,
    OpenReport,
    OpenRetryQueue,
    OpenSettings,
    OpenSetup,
    OpenSuppression,
)
from watui.tui.screens.base import WatuiScreen
from watui.tui.screens.campaigns import CampaignsScreen
from watui.tui.screens.help import HelpScreen, KeySection
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.screens.numbers import NumbersScreen
from watui.tui.screens.report import ReportScreen
from watui.tui.screens.retry_queue import RetryQueueScreen
from watui.tui.screens.settings import SettingsScreen
from watui.tui.screens.setup import SetupScreen
from watui.tui.screens.suppression import SuppressionScreen

HELP_SCREEN = "help"
#: How often the UI looks for scheduled campaigns whose start has come (a cheap query).
DUE_CHECK_SECONDS = 5.0

#: The screens whose keys the help screen lists, in its order (each under its HELP_TITLE).
SCREENS_WITH_KEYS: tuple[type[WatuiScreen], ...] = (
    CampaignsScreen,
    SetupScreen,
    MonitorScreen,
    RetryQueueScreen,
    ReportScreen,
    NumbersScreen,
    SuppressionScreen,
)


class WatuiApp(App[int]):
    """Campaigns home, setup, live monitor, retry queue, settings and help."""

    TITLE = "watui"
    SUB_TITLE = "WhatsApp campaigns"
    CSS_PATH = "app.tcss"
    COMMANDS: ClassVar = App.COMMANDS | {WatuiCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.time,
        refresh_interval: float | None = 0.3,
        start_dir: Path | None = None,
        startup: Callable[[WatuiApp], Awaitable[None]] | None = None,
        open_campaign: str | None = None,
        cleanup: Callable[[], Awaitable[None]] | None = None,
        due_check_interval: float | None = DUE_CHECK_SECONDS,
    ) -> None:
        super().__init__()
        self.due_check_interval = due_check_interval
        self._due_trouble: str | None = None
        self.backend = backend
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.start_dir = start_dir or Path.cwd()
        self._quitting = False
        self._startup = startup
        self._open_campaign = open_campaign
        self._cleanup = cleanup

    def run_to_exit_code(self) -> int:
        """Run the UI until it quits; the process's exit code (0 unless the app said otherwise)."""
        result = self.run()
        return 0 if result is None else result

    def on_mount(self) -> None:
        self._watch_hangup()
        self.push_screen(CampaignsScreen())
        if self._startup is not None:
            self.run_worker(self._start_up(), group="startup", exit_on_error=False)
        if self.due_check_interval:
            self.set_interval(self.due_check_interval, self._check_due, name="due")

    def _check_due(self) -> None:
        self.run_worker(self._start_due(), group="due", exclusive=True, exit_on_error=False)

    async def _start_due(self) -> None:
        """Start the scheduled campaigns whose start has come while the UI is open; a trouble
        (no access token, say) is told once, not every few seconds."""
        try:
            started = await self.backend.start_due_campaigns()
        except WatuiError as error:
            if str(error) != self._due_trouble:
                self._due_trouble = str(error)
                self.notify(str(error), title="Scheduled campaign not started", severity="error")
            return
        self._due_trouble = None
        for name in started:
            self.notify(f"{name}: its start time has come, sending", title="Started")

    async def _start_up(self) -> None:
        """Work that needs the app's event loop (the demo's mock API and campaign), then the
        campaign to watch, if one was named."""
        assert self._startup is not None
        await self._startup(self)
        if self._open_campaign:
            await self.open_monitor(self._open_campaign)

    def _watch_hangup(self) -> None:
        """A closed terminal or lost SSH session quits as cleanly as ctrl+q."""
        # No SIGHUP on this platform, or not the main thread (some test runners): nothing to do.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self) -> None:
        self.run_worker(self._quit_after_hangup(), group="quit", exit_on_error=False)

    async def _quit_after_hangup(self) -> None:
        """The terminal is gone: stop sending cleanly, then leave without restoring it (Textual's
        writer thread can block forever on a closed terminal)."""
        try:
            await self._shut_down()
        finally:
            os._exit(0)

    async def action_quit(self) -> None:
        """Stop sending cleanly (in-flight requests finish, outcomes flushed), then exit."""
        try:
            await self._shut_down()
        finally:
            self.exit(0)

    async def _shut_down(self) -> None:
        """Once, whichever way the app is leaving: stop sending cleanly, then clean up."""
        if self._quitting:
            return
        self._quitting = True
        await self.backend.shutdown()
        if self._cleanup is not None:
            await self._cleanup()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.show_help()

    def show_help(self) -> None:
        """Push the help screen. It never changes, so it is built once and kept (installed):
        reopening it skips composing, styling and laying out its tables again."""
        if not self.is_screen_installed(HELP_SCREEN):
            self.install_screen(HelpScreen(self.help_sections()), HELP_SCREEN)
        self.push_screen(HELP_SCREEN)

    @classmethod
    def help_sections(cls) -> list[KeySection]:
        """The app's own keys, then each screen's, from their bindings."""
        everywhere = KeySection("Everywhere", [*cls.BINDINGS, Binding("ctrl+p", "", "Command palette")])
        return [everywhere] + [
            KeySection(screen.HELP_TITLE, screen.BINDINGS)
            for screen in SCREENS_WITH_KEYS
        ]

    # ----- where screens and the command palette ask to go (watui.tui.messages): Textual
    # calls on_<message> for each message they post -----

    def open_monitor(self, campaign: str) -> AwaitMount:
        """Show a campaign's live monitor; a front end that opens on one awaits it."""
        return self.push_screen(MonitorScreen(campaign))

    def on_open_monitor(self, message: OpenMonitor) -> None:
        self.open_monitor(message.campaign)

    def on_open_retry_queue(self, message: OpenRetryQueue) -> None:
        self.push_screen(RetryQueueScreen(message.campaign))

    def on_open_report(self, message: OpenReport) -> None:
        self.push_screen(ReportScreen(message.campaign))

    def on_open_setup(self, _: OpenSetup) -> None:
        self.push_screen(SetupScreen())

    def on_open_settings(self, _: OpenSettings) -> None:
        self.push_screen(SettingsScreen())

    def on_open_numbers(self, _: OpenNumbers) -> None:
        self.push_screen(NumbersScreen())

    def on_open_suppression(self, _: OpenSuppression) -> None:
        self.push_screen(SuppressionScreen())

    def on_open_help(self, _: OpenHelp) -> None:
        self.action_help()

    def on_go_home(self, _: GoHome) -> None:
        """Pop back to the campaigns list, the screen above Textual's default one."""
        while len(self.screen_stack) > 2 and not isinstance(self.screen, CampaignsScreen):
            self.pop_screen()

    def run_command(self, action: Callable[[], Awaitable[None]]) -> Worker[None]:
        """Run a command in the App's worker group, so it outlives the screen that asked."""
        return self.run_worker(action(), group="commands", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_failure(event)

    def report_failure(self, event: Worker.StateChanged) -> None:
        """Every failed worker ends here: one line for the person, never a crash."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, WatuiError):
            self.notify(str(error), title="Not done", severity="error")
        else:
            self.notify(
                f"{type(error).__name__}: {error}", title="Unexpected error", severity="error"
            )
