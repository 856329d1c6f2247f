"""What screens and the command palette need of the app, typed below them so neither imports it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from textual.worker import Worker

from watui.service.api import Backend


class WatuiHost(Protocol):
    """The app as its screens know it: the backend, the clock, and where commands run."""

    @property
    def backend(self) -> Backend: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between a visible screen's reads of the backend; None: no timer (tests)."""
        ...

    @property
    def start_dir(self) -> Path:
        """Where file pickers and exports start."""
        ...

    def run_command(self, action: Callable[[], Awaitable[None]]) -> Worker[None]:
        """Run a command as an App worker, so it outlives the screen that asked."""
        ...

    def report_failure(self, event: Worker.StateChanged) -> None:
        """Show a failed worker to the person as one notification."""
        ...
