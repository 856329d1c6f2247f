"""What screens and the command palette ask of the app: one typed message per place to go.

Screens post these upward and the app answers by pushing the screen, so no screen imports another
(or the app): messages up, method calls down. An unknown destination cannot be asked for.
"""

from __future__ import annotations

from textual.message import Message


class OpenMonitor(Message):
    """Show the live monitor of one campaign."""

    def __init__(self, campaign: str) -> None:
        super().__init__()
        self.campaign = campaign


class OpenRetryQueue(Message):
    """Show the retry queue of one campaign."""

    def __init__(self, campaign: str) -> None:
        super().__init__()
        self.campaign = campaign


class OpenReport(Message):
    """Show the delivery report of one campaign."""

    def __init__(self, campaign: str) -> None:
        super().__init__()
        self.campaign = campaign


class OpenSetup(Message):
    """Show the setup of a new campaign."""


class OpenSettings(Message):
    """Show the effective settings."""


class OpenNumbers(Message):
    """Show the account's phone numbers and their health."""


class OpenSuppression(Message):
    """Show the suppression list (numbers no campaign may message)."""


class OpenHelp(Message):
    """Show every key, screen by screen."""


class GoHome(Message):
    """Back to the campaigns list, closing whatever is above it."""
