"""The settings model: every knob watui has, with its default and its allowed values.

Names are a contract (scripts and other tools set them through ``WATUI_*`` variables and
``watui.toml``), so groups and field names here must not be renamed.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from watui.rules import (
    DEFAULT_STOP_WORDS,
    MAX_RATE,
    MAX_RETRIES_LIMIT,
    UNLIMITED,
    messaging_limit_problem,
    retry_delays_problem,
    stop_word_key,
)

APP_NAME = "watui"


def default_database_url() -> str:
    """The embedded default: a SQLite file in the user's data directory."""
    data_dir = Path(platformdirs.user_data_dir(APP_NAME))
    return f"sqlite+aiosqlite:///{data_dir / 'watui.db'}"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class WhatsAppSettings(_Group):
    """Where and as whom to talk to the Cloud API."""

    access_token: SecretStr = Field(default=SecretStr(""), description="System user access token")
    phone_number_id: str = Field(default="", description="Business phone number ID that sends")
    waba_id: str = Field(default="", description="WhatsApp Business Account ID (for templates)")
    api_base_url: str = Field(default="https://graph.facebook.com")
    api_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    app_secret: SecretStr = Field(default=SecretStr(""), description="Verifies webhook signatures")
    messaging_limit: int | Literal["unlimited", "account"] = Field(
        default=UNLIMITED,
        description="unique template recipients per moving 24 h (your tier, or account: as "
        "the Graph API reports it)",
    )
    marketing_messages: bool = Field(
        default=False, description="send MARKETING templates through the Marketing Messages API"
    )

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("messaging_limit", mode="before")
    @classmethod
    def _a_tier(cls, value: object) -> object:
        """Before pydantic's own check, so that any bad value gets the one message naming the
        tiers (an environment variable's "2000" is read as the number)."""
        if isinstance(value, str):
            text = value.strip().lower().replace(",", "").replace("_", "")
            value = int(text) if text.isdigit() else text
        problem = messaging_limit_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class SendSettings(_Group):
    """How fast and how far ahead the engine sends."""

    rate: float = Field(default=80.0, gt=0, le=MAX_RATE, description="messages/s per phone number")
    max_in_flight: int | None = Field(
        default=None, ge=1, le=10_000, description="requests in flight; None sizes it by Little's law"
    )
    claim_batch: int | None = Field(
        default=None, ge=1, le=10_000, description="rows claimed at once; None: a quarter second"
    )
    flush_interval_ms: int = Field(default=200, ge=10, le=60_000)
    flush_max_rows: int = Field(default=500, ge=1, le=100_000)
    lease_seconds: float = Field(default=120.0, ge=5, le=86_400)
    health_poll_s: float = Field(
        default=300.0, ge=0, le=86_400,
        description="seconds between polls of the sender numbers' tier and quality; 0: never",
    )
    max_outage_s: float | None = Field(
        default=None, gt=0, le=30 * 86_400,
        description="pause when the API is unreachable this long; None waits forever",
    )
    reassign_on_pause: bool = Field(
        default=False,
        description="a campaign of several numbers: move a paused number's recipients to the others",
    )


class RetrySettings(_Group):
    """When a transient failure is tried again: within the bounds a campaign's own policy has
    (``watui.rules``), since the setup form fills a campaign's policy from these."""

    max_retries: int = Field(default=2, ge=0, le=MAX_RETRIES_LIMIT)
    delays: list[float] = Field(default_factory=lambda: [5.0, 10.0], min_length=1)

    @field_validator("delays")
    @classmethod
    def _in_range(cls, value: list[float]) -> list[float]:
        problem = retry_delays_problem(value)
        if problem is not None:
            raise ValueError(problem.message)
        return value


class SafetySettings(_Group):
    """Auto-pause rules: stop before a bad campaign burns the number's reputation."""

    max_failure_rate: float = Field(default=0.2, gt=0, le=1)
    window: int = Field(default=200, ge=10, le=100_000)
    min_outcomes: int = Field(default=50, ge=1, le=100_000)


class HttpSettings(_Group):
    """The one shared connection pool."""

    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    #: "auto": sized while sending from the rate and the answers' latency (at most
    #: rules.MAX_AUTO_CONNECTIONS); a number caps requests in flight at that many.
    max_connections: int | Literal["auto"] = "auto"
    # As many as max_connections: httpx's own pool closes every released connection while more
    # than this many are open, so a window deeper than it opened a new connection per request.
    max_keepalive_connections: int = Field(default=100, ge=0, le=10_000)
    keepalive_expiry: float = Field(default=30.0, ge=0)
    timeout: float = Field(default=30.0, gt=0, le=600)
    http2: bool = False

    @field_validator("max_connections", mode="before")
    @classmethod
    def _auto_or_count(cls, value: object) -> object:
        """One message for both forms (the union's own names each branch apart)."""
        if value == "auto":
            return value
        count = int(value) if isinstance(value, str) and value.strip().isdecimal() else value
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise ValueError('give "auto" or a whole number of connections from 1 to 10000')
        return count


class WebhookSettings(_Group):
    """The receiver of Meta's webhooks (delivery statuses, inbound messages, opt-outs)."""

    enabled: bool = Field(default=False, description="run the receiver inside watui and watui run")
    host: str = Field(default="127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(default=8788, ge=0, le=65_535, description="0 picks a free port")
    path: str = Field(default="/webhook", pattern=r"^/[A-Za-z0-9._~/-]*$")
    verify_token: SecretStr = Field(
        default=SecretStr(""), description="Meta's subscription handshake token"
    )
    # A POST carries at most 1,000 statuses, ~0.5 MB: 2 MiB leaves room for long error texts.
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    commit_interval_ms: int = Field(default=20, ge=1, le=5_000)
    unconfirmed_after_s: float = Field(default=600.0, ge=1, le=7 * 86_400)
    resend_unconfirmed: bool = False
    # Statuses come seconds to hours after a send: `watui run` keeps listening this long at
    # most once sending is done, less when every accepted message has its final status.
    linger_s: float = Field(
        default=60.0, ge=0, le=86_400,
        description="after sending, watui run keeps receiving statuses up to this long (0: stop at once)",
    )


class AudienceSettings(_Group):
    """Who must not be messaged: what an inbound message must say to opt its sender out."""

    stop_words: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STOP_WORDS),
        description="an inbound message that is one of these (any case, accents) suppresses its sender",
    )

    @field_validator("stop_words")
    @classmethod
    def _has_letters(cls, value: list[str]) -> list[str]:
        empty = [word for word in value if not stop_word_key(word)]
        if empty:
            raise ValueError(f"{empty[0]!r} has no letters or digits: every stop word needs some")
        return value


#: The TOML file the next ``Settings()`` reads; set by ``loader.load_settings``.
TOML_FILE: ContextVar[Path | None] = ContextVar("watui_toml_file", default=None)


class Settings(BaseSettings):
    """All of watui's settings. Precedence: init kwargs (the command line), env, TOML, defaults."""

    model_config = SettingsConfigDict(
        env_prefix="WATUI_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        case_sensitive=False,
    )

    database_url: str = Field(default_factory=default_database_url)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)
    send: SendSettings = Field(default_factory=SendSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    audience: AudienceSettings = Field(default_factory=AudienceSettings)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:/// or postgresql+asyncpg://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = TOML_FILE.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)
