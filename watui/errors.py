"""Every error watui raises on purpose, under one root.

A ``WatuiError``'s message is meant for the person: one line that says what is wrong and what to
do. Front ends catch ``WatuiError`` (never match on its text) and show it; anything else is a bug.
The classes live here, below every layer, so that the UI and the CLI can tell them apart without
importing the storage, engine or client modules that raise them.
"""

from __future__ import annotations

from collections.abc import Sequence

from watui.rules import Field, Problem


class WatuiError(Exception):
    """The root: a request that cannot be done as asked; the message says what to fix."""


class SettingsError(WatuiError):
    """The settings (file, environment or options) are invalid; the message names the setting."""


class StorageError(WatuiError):
    """The database cannot be used as it is; the message says what to do."""


class CampaignError(WatuiError, ValueError):
    """A campaign request that cannot be done as asked; the message says what to fix."""


class CampaignNotFound(CampaignError):
    """No campaign has that name (or id)."""


class CampaignExists(CampaignError):
    """Campaign names are unique."""


class InvalidCampaign(CampaignError):
    """The campaign as asked disagrees with the rules (``watui.rules``): each problem names its
    field, so the CLI can name its option and the setup screen mark its field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problem.message for problem in self.problems))


class CampaignNotRunnable(CampaignError):
    """Unknown, completed or cancelled, or the settings lack what sending needs."""


class ContactsError(WatuiError, ValueError):
    """The contacts file cannot be imported at all; the message says what to fix. ``field``: the
    part of the step at fault when it is not the file itself (a column that is not there)."""

    def __init__(self, message: str, field: Field | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidPhone(WatuiError, ValueError):
    """The phone value is not a number WhatsApp can deliver to; the message is the reason."""


class TokenRefused(WatuiError):
    """The API refused the access token (code 190 or HTTP 401)."""


class ApiUnavailable(WatuiError):
    """The API could not be reached or answered with an error; the message says which."""


class AccountNotFound(WatuiError):
    """The API does not know the WhatsApp Business Account (or the token cannot see it)."""


class BackendError(WatuiError):
    """A command the person asked for through the service could not be done; the text says why."""


class MalformedWebhook(WatuiError, ValueError):
    """A webhook body that is not JSON, or not shaped like Meta's notifications; the message says
    where (the receiver answers 400 with it)."""


class ReceiverError(WatuiError):
    """The webhook receiver cannot start as configured; the message names the setting to fix."""


class RateCardError(WatuiError, ValueError):
    """A rate card file cannot be read; the message names the file, line and column to fix."""
