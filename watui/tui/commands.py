"""The command palette's watui actions (ctrl+p): new campaign, open or inspect any campaign."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from watui.tui.app import WatuiApp

Command = tuple[str, str, Callable[[], object]]


class WatuiCommands(Provider):
    """Main actions plus 'Monitor X' and 'Retry queue of X' for every campaign."""

    async def startup(self) -> None:
        app = cast("WatuiApp", self.app)
        try:
            campaigns = await app.backend.list_campaigns()
        except Exception:  # the palette must open even when the backend is unhappy
            campaigns = []
        self._commands = self._static_commands() + [
            command
            for campaign in campaigns
            for command in (
                (
                    f"Monitor {campaign.name}",
                    f"Live graph and controls ({campaign.status})",
                    partial(self._open, "monitor", campaign.name),
                ),
                (
                    f"Retry queue of {campaign.name}",
                    "Waiting, failed and in-doubt recipients",
                    partial(self._open, "retry", campaign.name),
                ),
            )
        ]

    def _static_commands(self) -> list[Command]:
        return [
            ("New campaign", "Open campaign setup", partial(self._open, "setup", None)),
            ("Campaigns", "Back to the list of campaigns", partial(self._open, "home", None)),
            (
                "Settings",
                "Show the effective settings (secrets masked)",
                partial(self._open, "settings", None),
            ),
            ("Help", "Every key, screen by screen", partial(self._open, "help", None)),
        ]

    def _open(self, what: str, name: str | None) -> None:
        from watui.tui import navigation

        navigation.open_screen(self.app, what, name)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands:
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
