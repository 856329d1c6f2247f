"""Settings: one validated model, merged from the command line, env, a TOML file and defaults."""

from watui.errors import SettingsError
from watui.settings.loader import find_config_file, load_settings
from watui.settings.model import (
    AudienceSettings,
    HttpSettings,
    RetrySettings,
    SafetySettings,
    SendSettings,
    Settings,
    WebhookSettings,
    WhatsAppSettings,
)

__all__ = [
    "AudienceSettings",
    "HttpSettings",
    "RetrySettings",
    "SafetySettings",
    "SendSettings",
    "Settings",
    "SettingsError",
    "WebhookSettings",
    "WhatsAppSettings",
    "find_config_file",
    "load_settings",
]
