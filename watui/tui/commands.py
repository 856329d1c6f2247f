"""The command palette's watui actions (ctrl+p): new campaign, open or inspect any campaign.

Each command posts the same typed message a screen's key would, so the app alone opens screens.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message

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
from watui.tui.protocols import WatuiHost

#: (title, help text, the message that choosing it posts to the app: made anew each time)
Command = tuple[str, str, Callable[[], Message]]


class WatuiCommands(Provider):
    """Main actions plus 'Monitor X', 'Retry queue of X' and 'Report of X' for every campaign."""

    async def startup(self) -> None:
        host = cast("WatuiHost", self.app)
        try:
            campaigns = await host.backend.list_campaigns()
        except Exception:  # the palette must open even when the backend is unhappy
            campaigns = []
        self._commands = self._static_commands() + [
            command
            for campaign in campaigns
            for command in (
                (
                    f"Monitor {campaign.name}",
                    f"Live graph and controls ({campaign.status})",
                    partial(OpenMonitor, campaign.name),
                ),
                (
                    f"Retry queue of {campaign.name}",
                    "Waiting, failed and in-doubt recipients",
                    partial(OpenRetryQueue, campaign.name),
                ),
                (
                    f"Report of {campaign.name}",
                    "Delivered, read and failed: funnel, times, codes; export",
                    partial(OpenReport, campaign.name),
                ),
            )
        ]

    def _static_commands(self) -> list[Command]:
        return [
            ("New campaign", "Open campaign setup", OpenSetup),
            ("Campaigns", "Back to the list of campaigns", GoHome),
            ("Settings", "Show the effective settings (secrets masked)", OpenSettings),
            ("Numbers", "The account's phone numbers: quality, throughput, limit", OpenNumbers),
            ("Suppression list", "Numbers no campaign may message: add, remove", OpenSuppression),
            ("Help", "Every key, screen by screen", OpenHelp),
        ]

    def _poster(self, make_message: Callable[[], Message]) -> Callable[[], object]:
        """What choosing a command runs: a fresh message each time, as a message is posted once."""
        return lambda: self.app.post_message(make_message())

    async def discover(self) -> Hits:
        for title, help_text, make_message in self._commands:
            yield DiscoveryHit(title, self._poster(make_message), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, make_message in self._commands:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._poster(make_message), help=help_text)
