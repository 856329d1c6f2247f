"""What storage hands out about campaigns, rejects and templates: typed, frozen rows.

Apart so that every caller (the engine, the service, the command line) reads the same names
with their types, instead of dict keys that a typo turns into a KeyError at run time; and so
that the JSON the command line prints is made in one place, with the keys it always had.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from watui.rules import AUTO_ENDPOINT, pending


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a campaign retries transient failures, and where each half of that came from."""

    max_retries: int
    delays: tuple[float, ...]
    max_retries_from: str  # "campaign" (its own, stored in its row) or "settings"
    delays_from: str


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """One row of ``campaigns``: the campaign, its counters and its own settings."""

    id: int
    name: str
    status: str
    rate: float | None
    max_retries: int | None
    retry_delays: str | None  # JSON list of seconds; None: the settings' delays
    current_step: int
    total: int
    sent: int
    failed: int
    invalid: int
    skipped: int
    in_doubt: int
    delivered: int  # accepted messages Meta reported delivered (or read)
    read: int
    failed_after: int  # failures reported after acceptance (also in `failed`)
    unconfirmed: int
    pause_reason: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    senders: str | None = None  # JSON list of phone_number_ids; None: the settings' number
    start_at: float | None = None  # when to send (rules.Schedule); None: no such limit
    send_window: str | None = None  # "09:00-20:00" in each recipient's local time
    deadline: float | None = None
    endpoint: str | None = None  # forced "messages" / "marketing_messages"; None: per step

    @classmethod
    def from_row(cls, row: Any) -> CampaignRecord:
        """From a row of ``select(campaigns)``."""
        return cls(**row._mapping)

    def summary(self) -> dict[str, Any]:
        """The counters-only part of the status (``watui campaign list --json``): cheap, from
        the campaign row alone."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "total": self.total,
            "sent": self.sent,
            "failed": self.failed,
            "pending": self.pending,
            "in_doubt": self.in_doubt,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "paused_reason": self.pause_reason,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "finished_at": iso_utc(self.finished_at),
            "rate": self.rate,
            "senders": self.sender_ids() or None,  # None: the settings' number
            "start_at": iso_utc(self.start_at),
            "send_window": self.send_window,
            "deadline": iso_utc(self.deadline),
        }

    def sender_ids(self, default: str | None = None) -> list[str]:
        """The numbers that send this campaign: its own, else ``[default]`` (the settings'
        ``whatsapp.phone_number_id``; empty when not given)."""
        if self.senders is not None:
            return [str(sender) for sender in json.loads(self.senders)]
        return [default] if default else []

    def sender_numbers(self, configured: str) -> list[str]:
        """The phone_number_ids that send this campaign, first one first (``senders``; NULL
        means the ``configured`` whatsapp.phone_number_id)."""
        return self.sender_ids(configured) or [configured]

    @property
    def pending(self) -> int:
        """Recipients still to be sent (``rules.pending``)."""
        return pending(
            self.total, self.sent, self.failed, self.skipped, self.in_doubt, self.unconfirmed
        )


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One step of a campaign's status: its template, contacts and recipients per status."""

    position: int  # from 1
    template: str
    language: str
    contacts_file: str | None
    total: int
    by_status: Mapping[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "template": self.template,
            "language": self.language,
            "contacts_file": self.contacts_file,
            "total": self.total,
            "by_status": dict(self.by_status),
        }


@dataclass(frozen=True, slots=True)
class CampaignStatusReport:
    """The status the command line and the UI show (``watui status --json``)."""

    campaign: CampaignRecord
    retrying: int
    sending: int
    steps: tuple[StepStatus, ...]
    retry: RetryPolicy | None = None  # the policy in force, when the settings' were given

    def as_json(self) -> dict[str, Any]:
        """The keys and values ``watui status --json`` has always printed, in that order."""
        shown = self.campaign.summary()
        shown["retrying"] = self.retrying
        shown["sending"] = self.sending
        shown["steps"] = [step.as_json() for step in self.steps]
        shown["endpoint"] = self.campaign.endpoint or AUTO_ENDPOINT
        if self.retry is not None:
            shown["retry"] = asdict(self.retry)
        return shown


@dataclass(frozen=True, slots=True)
class Reject:
    """A contacts row the import refused, with the reason people read."""

    step: int  # from 1
    line: int
    phone: str | None  # as written in the file (cut to a readable length)
    reason: str


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """One cached template, as Meta listed it at the last sync."""

    id: int
    template_id: str | None  # Meta's id
    name: str
    language: str
    status: str
    category: str | None
    body_text: str | None
    header_format: str | None  # TEXT / IMAGE / VIDEO / DOCUMENT / ...
    header_text: str | None
    footer_text: str | None
    buttons: str | None  # JSON list as Meta gives it
    body_param_count: int
    components: str | None  # raw JSON, for previews
    synced_at: float

    @classmethod
    def from_row(cls, row: Any) -> TemplateRecord:
        """From a row of ``select(templates)``."""
        return cls(**row._mapping)


def iso_utc(timestamp: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (``2026-11-29T02:03:04Z``); None stays None."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    return moment.replace("+00:00", "Z")
