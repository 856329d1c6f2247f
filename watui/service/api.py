"""The narrow interface the core offers its front ends: what the terminal UI can read or command.

Screens call these methods and read the plain types in ``watui.service.models``; they never see SQL,
HTTP or engine internals. The real implementation adapts storage and the engine to it; tests use
``tests.tui_fakes.FakeBackend``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from watui.errors import BackendError
from watui.service.models import (
    CampaignCheck,
    CampaignReport,
    CampaignRow,
    CampaignSpec,
    ContactsPreview,
    EngineEvent,
    MetricsSnapshot,
    NumbersReport,
    RetryFilter,
    RetryPage,
    RetryTarget,
    SettingRow,
    StepSpec,
    SuppressionPage,
    TemplateInfo,
    TestSendResult,
    ValidationReport,
)


class Backend(Protocol):
    """Everything the UI can read or command. Every method may raise a ``WatuiError``: mostly
    ``BackendError``; a rule broken (``create_campaign``, ``set_rate``) is ``InvalidCampaign``,
    whose problems name the field to mark."""

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
        """Create (and start when ``spec.start_now``); all or nothing. ``InvalidCampaign``
        lists every problem of the campaign, each keyed by field and step."""
        ...

    async def start(self, name: str) -> None: ...

    async def start_due_campaigns(self) -> list[str]:
        """Start every campaign whose start time has come (the UI asks every few seconds);
        the names of those started."""
        ...

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

    async def report(self, name: str) -> CampaignReport:
        """How the campaign's messages fared: funnel, failures, countries, delivery times."""
        ...

    async def check_campaign(self, name: str, rate_card: Path | None = None) -> CampaignCheck:
        """A dry run: per step what will be sent or not and why, the finish time within the
        24-hour limit, and with a rate card the cost. Nothing is sent or written."""
        ...

    async def export_recipients(self, name: str, path: Path, file_format: str = "csv") -> int:
        """Write every recipient with its delivery to ``path`` (csv or jsonl), whole or not at
        all; returns how many were written."""
        ...

    async def send_test(self, spec: CampaignSpec | StepSpec | str, phone: str) -> TestSendResult:
        """Send the step's first template (or a campaign's by name) to one number now."""
        ...

    async def list_numbers(self, refresh: bool) -> NumbersReport:
        """The account's numbers and their health as last heard; with ``refresh``, ask the API
        first (its refusal or absence is the report's ``problem``, not an error)."""
        ...

    async def list_suppressions(self, containing: str, limit: int) -> SuppressionPage:
        """The suppression list, newest first; ``containing``: only entries with that text."""
        ...

    async def suppress_numbers(self, phones: list[str], *, marketing_only: bool, note: str) -> int:
        """Put the numbers on the list (all valid, or InvalidPhone and none); returns how many
        were added. Their queued recipients in every campaign are skipped."""
        ...

    async def unsuppress_numbers(self, phones: list[str]) -> int:
        """Take the numbers off the list; returns how many were on it."""
        ...

    def settings_view(self) -> list[SettingRow]:
        """Every setting with its effective value, secrets masked."""
        ...

    async def shutdown(self) -> None:
        """Stop sending cleanly: in-flight requests finish, outcomes are flushed."""
        ...


__all__ = ["Backend", "BackendError"]
