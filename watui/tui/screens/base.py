"""What every watui screen shares: the backend, the clock, commands run as App workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from textual.screen import ModalScreen, Screen
from textual.worker import Worker

from watui.errors import WatuiError
from watui.service.api import Backend
from watui.tui.protocols import WatuiHost
from watui.tui.widgets.modals import PromptModal, parse_export_path

ModalT = TypeVar("ModalT", bound=ModalScreen[Any])


class WatuiScreen(Screen[None]):
    """A screen that reads the backend on the app's refresh tick while it is shown."""

    #: Whether this screen polls the backend on the app's refresh tick.
    LIVE = True
    #: The heading of this screen's keys in the help screen (the app lists which screens).
    HELP_TITLE: ClassVar[str] = ""
    _last_refresh_error: str | None = None

    def __init__(self) -> None:
        super().__init__()
        #: Names of the installed modals this screen keeps (see ``kept_modal``).
        self._kept_modals: set[str] = set()

    @property
    def watui(self) -> WatuiHost:
        """The app this screen runs in, as much of it as a screen may use."""
        return cast("WatuiHost", self.app)

    @property
    def backend(self) -> Backend:
        return self.watui.backend

    def now(self) -> float:
        return self.watui.clock()

    async def on_mount(self) -> None:
        # Textual calls every class's on_mount in the MRO, subclasses first: do not call super().
        await self._refresh_safely()
        if self.LIVE and self.watui.refresh_interval:
            self.set_interval(self.watui.refresh_interval, self._tick, name="refresh")

    async def on_unmount(self) -> None:
        for name in self._kept_modals:
            modal = self.app.get_screen(name)
            if modal in self.app.screen_stack:
                continue  # the app is closing with the modal open: Textual cleans it up
            self.app.uninstall_screen(name)
            if modal.is_attached:
                await modal.remove()
        self._kept_modals.clear()

    def kept_modal(self, key: str, build: Callable[[], ModalT]) -> ModalT:
        """A modal built on first use and kept (installed) while this screen lives: reopening
        it skips composing and styling its widgets again, the bulk of a key's latency."""
        name = f"{key}@{id(self)}"
        if name not in self._kept_modals:
            self.app.install_screen(build(), name)
            self._kept_modals.add(name)
        return cast("ModalT", self.app.get_screen(name))

    async def _tick(self) -> None:
        # Only the screen a person is looking at polls the backend (also under a small modal,
        # so the graph keeps moving while the rate dialog is open). Not ``is_current``: Textual
        # counts the screen under the top one as current too, and the campaigns table then
        # queried and re-laid out the whole screen 4 times a second under the live monitor.
        stack = self.app.screen_stack
        if self.app.screen is self or (isinstance(self.app.screen, ModalScreen) and stack[-2] is self):
            await self._refresh_safely()

    async def _refresh_safely(self) -> None:
        """A refresh the backend refuses (say, the campaign was deleted elsewhere) is shown
        once as a notification; the screen stays up and keeps trying."""
        try:
            await self.refresh_data()
        except WatuiError as error:
            if str(error) != self._last_refresh_error:
                self._last_refresh_error = str(error)
                self.notify(str(error), title="Cannot refresh", severity="error")
        else:
            self._last_refresh_error = None

    async def refresh_data(self) -> None:
        """Read the backend and update the widgets (override)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers started by this screen report here, not to the App: pass failures on."""
        self.watui.report_failure(event)

    def confirm(self, modal: ModalScreen[bool], on_yes: Callable[[], object]) -> None:
        """Show a yes/no modal; call ``on_yes`` only when the person says yes."""

        def answered(answer: bool | None) -> None:
            if answer:
                on_yes()

        self.app.push_screen(modal, answered)

    def export_to_chosen_file(
        self, title: str, label: str, default: str, export: Callable[[Path], Awaitable[object]]
    ) -> None:
        """Ask for a file (in a folder that exists), then run ``export(path)`` as a command."""

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.command(lambda: export(path), f"Exported to {path}")

        self.app.push_screen(
            PromptModal(title, label, default, parse_export_path, ok_label="Export"), chosen
        )

    def command(self, action: Callable[[], Awaitable[object]], done: str | None = None) -> None:
        """Run a backend command as an App worker; report its outcome; refresh this screen."""

        async def run() -> None:
            await action()
            if done:
                self.notify(done)
            await self.refresh_data()

        self.watui.run_command(run)
