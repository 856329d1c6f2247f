"""What a command that talks to the business account needs set, checked before it connects."""

from __future__ import annotations

from watui.cli.errors import CliError
from watui.settings import Settings


def require_account(settings: Settings) -> None:
    """The account's id and the token: without them the Graph API cannot be asked anything."""
    if not settings.whatsapp.waba_id:
        raise CliError("whatsapp.waba_id is not set: set WATUI_WHATSAPP__WABA_ID or add it to watui.toml")
    if not settings.whatsapp.access_token.get_secret_value():
        raise CliError("whatsapp.access_token is not set: set WATUI_WHATSAPP__ACCESS_TOKEN")
