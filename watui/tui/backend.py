"""The narrow interface between the terminal UI and the rest of watui.

Screens call these methods and read the plain types in ``watui.tui.models``; they never see SQL,
HTTP or engine internals. The real implementation adapts storage and the engine to it; tests use
``tests.tui_fakes.FakeBackend``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, SecretStr

from watui.tui.models import (
    CampaignRow,
    CampaignSpec,
    ContactsPreview,
    EngineEvent,
    MetricsSnapshot,
    RetryFilter,
    RetryPage,
    RetryTarget,
    SettingRow,
    StepSpec,
    TemplateInfo,
    TestSendResult,
    ValidationReport,
)

SECRET_MASK = "********"


class BackendError(Exception):
    """A command the person asked for could not be done; the text says why and what to do.

    Screens show it beside the field or as a notification; it never crashes the UI.
    """


class Backend(Protocol):
    """Everything the UI can read or command. Every method may raise ``BackendError``."""

    async def list_campaigns(self) -> list[CampaignRow]: ...

    async def campaign_status(self, name: str) -> CampaignRow: ...

    async def list_templates(self) -> list[TemplateInfo]:
        """Approved templates only."""
        ...

    async def preview_contacts(
        self, path: Path, phone_column: str, default_region: str | None, limit: int
    ) -> ContactsPreview: ...

    async def validate_contacts(
        self, path: Path, phone_column: str, default_region: str | None
    ) -> ValidationReport: ...

    async def create_campaign(self, spec: CampaignSpec) -> CampaignRow:
        """Create (and start when ``spec.start_now``); all or nothing."""
        ...

    async def start(self, name: str) -> None: ...

    async def pause(self, name: str) -> None: ...

    async def resume(self, name: str) -> None: ...

    async def cancel(self, name: str) -> None: ...

    async def delete(self, name: str) -> None: ...

    async def set_rate(self, name: str, rate: float) -> None: ...

    async def metrics(self, name: str) -> MetricsSnapshot | None:
        """The latest snapshot, or None when nothing is sending this campaign."""
        ...

    async def events(self, name: str, since_seq: int) -> list[EngineEvent]: ...

    async def retry_queue(
        self, name: str, status_filter: RetryFilter, offset: int, limit: int
    ) -> RetryPage: ...

    async def requeue(self, name: str, target: RetryTarget) -> int:
        """Send the rows again as soon as possible; returns how many were requeued."""
        ...

    async def skip(self, name: str, target: RetryTarget) -> int:
        """Never send the rows; returns how many were skipped."""
        ...

    async def export_retry_queue(self, name: str, status_filter: RetryFilter, path: Path) -> int:
        """Write the matching rows to a CSV file; returns how many were written."""
        ...

    async def send_test(self, spec: CampaignSpec | StepSpec | str, phone: str) -> TestSendResult:
        """Send the step's first template (or a campaign's by name) to one number now."""
        ...

    def settings_view(self) -> list[SettingRow]:
        """Every setting with its effective value, secrets masked."""
        ...

    async def shutdown(self) -> None:
        """Stop sending cleanly: in-flight requests finish, outcomes are flushed."""
        ...


def settings_rows(settings: BaseModel, prefix: str = "") -> list[SettingRow]:
    """Flatten a settings model into dotted names, masking every secret that is set."""
    rows: list[SettingRow] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(settings_rows(value, prefix=f"{dotted}."))
        elif isinstance(value, SecretStr):
            rows.append(
                SettingRow(dotted, SECRET_MASK if value.get_secret_value() else "(not set)")
            )
        elif name == "database_url":
            rows.append(SettingRow(dotted, mask_url_password(str(value))))
        else:
            rows.append(SettingRow(dotted, _format_value(value)))
    return rows


def mask_url_password(url: str) -> str:
    """``postgresql+asyncpg://user:secret@host/db`` -> ``...user:********@host/db``."""
    return _URL_PASSWORD.sub(rf"\1{SECRET_MASK}@", url)


_URL_PASSWORD = re.compile(r"(//[^:/@]*:)[^@/]*@")


def _format_value(value: object) -> str:
    if value is None:
        return "auto"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_format_value(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
