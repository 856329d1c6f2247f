"""Plain data the terminal UI reads. No Textual, SQL or HTTP here.

The engine and storage are adapted to produce these (the UI never sees their own types), so the
UI can be built, tested and snapshotted against a fake backend with fixed data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from watui.rules import (
    CampaignStatus,
    MappedButton,
    RecipientStatus,
    button_needs_param,
    button_takes_param,
    outage_line,
)

#: The rules' statuses under the names the UI has always used (one definition: watui.rules).
#: The retry queue shows the reviewable ones (``rules.REVIEWABLE_STATUSES``).
CampaignState = CampaignStatus
RecipientState = RecipientStatus


def share(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` (0..1), None when the whole is 0: "—" rather than a false 0%."""
    return part / whole if whole else None


class SharesOfSent:
    """Delivered and read as shares of sent, for the rows that carry all three counts."""

    __slots__ = ()
    sent: int
    delivered: int
    read: int

    @property
    def delivered_share(self) -> float | None:
        """Delivered of sent (0..1); None before anything was sent."""
        return share(self.delivered, self.sent)

    @property
    def read_share(self) -> float | None:
        return share(self.read, self.sent)


@dataclass(frozen=True, slots=True)
class ApiOutage:
    """The API is unreachable and sending waits for it (nobody is charged for it): since when,
    and when the next try goes (None: it is out now). Wall-clock seconds."""

    since: float
    retry_at: float | None
    checking_every: float | None = None  # the probe goes when a connect check goes through

    def line(self, now: float) -> str:
        """"API unreachable since HH:MM:SS, trying again in N s" (or "checking every 0.5 s")."""
        return outage_line(self.since, self.retry_at, now, self.checking_every)


@dataclass(frozen=True, slots=True)
class CampaignRow(SharesOfSent):
    """One campaign as the home table and the status line show it."""

    name: str
    status: CampaignState
    total: int
    sent: int
    failed: int
    pending: int
    retrying: int = 0
    in_doubt: int = 0
    invalid: int = 0
    skipped: int = 0
    rate: float | None = None  # msg/s achieved now; None when not sending
    eta_seconds: float | None = None
    paused_reason: str | None = None
    delivered: int = 0  # of the sent, Meta reported delivered (or read)
    read: int = 0
    unconfirmed: int = 0
    failed_after: int = 0  # failures reported after acceptance (also in failed)
    start_at: float | None = None  # when it may start sending (epoch seconds)
    deadline: float | None = None  # past it the campaign pauses rather than send late
    waiting_for_window: bool = False  # every recipient left is outside their send window
    outage: ApiOutage | None = None  # while sending waits for the API
    waiting_reason: str | None = None  # why a running campaign sends nothing now (24-hour limit)

    @property
    def done(self) -> int:
        return self.total - self.pending

    @property
    def progress(self) -> float:
        """Fraction of recipients with a final outcome (0..1)."""
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """One of a template's buttons, in the template's order (its index is its position)."""

    kind: str  # url / quick_reply / phone_number / copy_code / ... (lower case)
    text: str
    url: str | None = None

    @property
    def needs_param(self) -> bool:
        return button_needs_param(self.kind, self.url)

    @property
    def takes_param(self) -> bool:
        return button_takes_param(self.kind, self.url)


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """An approved template as setup offers it."""

    name: str
    language: str
    category: str
    body: str  # with {{1}}, {{2}}, ... placeholders
    param_count: int
    header_format: str | None = None  # text / image / video / document
    header_text: str | None = None
    buttons: tuple[TemplateButton, ...] = ()


@dataclass(frozen=True, slots=True)
class ContactsPreview:
    """The header and first rows of a contacts file."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class RejectedContact:
    line: int
    value: str  # the phone text as written in the file
    reason: str


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What an import would do, computed before anything is queued."""

    valid: int
    invalid: tuple[RejectedContact, ...] = ()
    duplicates: tuple[RejectedContact, ...] = ()
    invalid_count: int | None = None  # when the lists above are truncated
    duplicate_count: int | None = None

    @property
    def invalid_total(self) -> int:
        return self.invalid_count if self.invalid_count is not None else len(self.invalid)

    @property
    def duplicate_total(self) -> int:
        return self.duplicate_count if self.duplicate_count is not None else len(self.duplicates)


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One template send within a campaign (the `[[steps]]` of a spec file)."""

    template: str
    language: str
    contacts: str  # path of the CSV file
    body_params: tuple[str, ...] = ()
    header_param: str | None = None
    phone_column: str = "phone"
    default_region: str | None = None
    buttons: tuple[ButtonColumn, ...] = ()


#: The column that fills button ``index``'s parameter (sub_type url or quick_reply): the rules'
#: shape, as the mapping check reads it.
ButtonColumn = MappedButton


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """Everything setup collected; steps are sent strictly in order."""

    name: str
    steps: tuple[StepSpec, ...]
    rate: float = 80.0
    max_retries: int = 2
    retry_delays: tuple[float, ...] = (5.0, 10.0)
    start_now: bool = False
    #: Phone number IDs that send it; empty: the configured whatsapp.phone_number_id.
    senders: tuple[str, ...] = ()
    #: When to send, as typed (rules.schedule_from_text); empty: no such limit.
    start_at: str = ""
    send_window: str = ""
    deadline: str = ""
    exclude: Path | None = None  # a CSV of numbers this campaign must not message
    endpoint: str = "auto"  # or "messages" / "marketing_messages" (rules.ENDPOINT_CHOICES)


@dataclass(frozen=True, slots=True)
class ErrorCount:
    code: int | None  # None: a transport failure (no API code)
    meaning: str
    count: int


@dataclass(frozen=True, slots=True)
class SendingNumber:
    """One number of a campaign sent from several, as the monitor shows it."""

    phone_number_id: str
    state: str  # sending / paused / held by another process / done / waiting
    rate: float  # msg/s sent from it now
    target_rate: float
    reason: str | None = None  # why it paused


@dataclass(frozen=True, slots=True)
class MetricsSnapshot(SharesOfSent):
    """A campaign's live figures, cheap to read 2-4 times a second.

    The series hold one value per second, oldest first, the last one being the second that
    ended at ``at``.
    """

    at: float  # unix time of the snapshot
    status: CampaignState
    target_rate: float
    sent_per_s: tuple[float, ...] = ()
    failed_per_s: tuple[float, ...] = ()
    retried_per_s: tuple[float, ...] = ()
    throttled_per_s: tuple[float, ...] = ()
    latency_p50: float | None = None  # seconds
    latency_p95: float | None = None
    in_flight: int = 0
    window: int = 0  # the in-flight limit
    connection_reuse: float | None = None  # requests that reused a connection (0..1)
    connections: int = 0  # the connection limit: requests allowed in flight now
    total: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    retrying: int = 0
    in_doubt: int = 0
    skipped: int = 0
    eta_seconds: float | None = None
    errors: tuple[ErrorCount, ...] = ()
    paused_reason: str | None = None
    delivered: int = 0
    read: int = 0
    failed_after: int = 0
    unconfirmed: int = 0
    delivered_per_s: tuple[float, ...] = ()  # from the delivered counter, per second
    deliver_p50: float | None = None  # seconds from accepted to delivered
    deliver_p95: float | None = None
    late_errors: tuple[ErrorCount, ...] = ()  # failures reported after acceptance, by code
    outage: ApiOutage | None = None  # while sending waits for the API
    numbers: tuple[SendingNumber, ...] = ()  # a campaign of several numbers: each one's rate and state
    waiting_reason: str | None = None  # why the run sends nothing now (24-hour limit)

    @property
    def progress(self) -> float:
        return (self.total - self.pending) / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class CodeFailures:
    """Failed recipients with one error code, before and after the API accepted the send."""

    code: int | None  # None: a transport failure (no API code)
    meaning: str
    before: int
    after: int

    @property
    def count(self) -> int:
        return self.before + self.after


@dataclass(frozen=True, slots=True)
class CountryFigures:
    region: str  # ISO 3166 code of the calling code's main region
    name: str
    recipients: int
    delivered: int


@dataclass(frozen=True, slots=True)
class TimePoint:
    at: float  # unix time the span begins
    delivered: int
    read: int


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """How a campaign's messages fared (``watui report``, the report screen)."""

    name: str
    status: CampaignState
    total: int
    accepted: int  # the API accepted the send (sent now, or failed after acceptance)
    delivered: int
    read: int
    failed: int
    failed_after: int
    unconfirmed: int
    failures: tuple[CodeFailures, ...] = ()
    countries: tuple[CountryFigures, ...] = ()
    pricing: tuple[tuple[str, int], ...] = ()  # (category, messages), most first
    deliver_percentiles: tuple[tuple[str, float | None], ...] = ()  # ("p50", seconds), ...
    timeline: tuple[TimePoint, ...] = ()

    @property
    def delivered_share(self) -> float | None:
        """Delivered of accepted (0..1)."""
        return share(self.delivered, self.accepted)

    @property
    def read_share(self) -> float | None:
        return share(self.read, self.accepted)


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """A notable event (pause, resume, rate change, auto-pause), never one per send."""

    seq: int
    at: float
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class RetryRow:
    """A recipient waiting for a retry, failed for good, or in doubt."""

    id: int
    phone: str
    status: RecipientState
    attempts: int
    code: int | None = None
    meaning: str = ""
    next_attempt_at: float | None = None  # only for status retry
    step: int = 1


@dataclass(frozen=True, slots=True)
class RetryFilter:
    """Which rows of the retry queue to show or act on; None means any."""

    status: RecipientState | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class RetryPage:
    rows: tuple[RetryRow, ...]
    total: int  # rows matching the filter, over all pages
    offset: int = 0


@dataclass(frozen=True, slots=True)
class TestSendResult:
    ok: bool
    detail: str  # the message id, or the error with its meaning


@dataclass(frozen=True, slots=True)
class SettingRow:
    name: str
    value: str  # secrets already masked


#: The rows a requeue, skip or export acts on: picked ids, or everything matching a filter.
RetryTarget = tuple[int, ...] | RetryFilter


@dataclass(frozen=True, slots=True)
class NumberRow:
    """One of the account's phone numbers as last heard of (a poll or a webhook)."""

    display_number: str
    phone_number_id: str | None  # None: only a webhook named it so far
    verified_name: str | None
    quality: str | None  # GREEN / YELLOW / RED / UNKNOWN
    throughput_level: str | None  # STANDARD / HIGH
    rate: float | None  # msg/s the throughput level allows
    messaging_limit: str | None
    heard_at: float  # unix time
    source: str  # poll / webhook
    event: str | None = None  # the last webhook's event (FLAGGED, UPGRADE, ...)


@dataclass(frozen=True, slots=True)
class NumbersReport:
    """The numbers screen's content: what is known, and why the API could not be asked now."""

    numbers: tuple[NumberRow, ...]
    default_sender: str  # whatsapp.phone_number_id: what a campaign without senders uses
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    """One number on the suppression list (``rules.SuppressionScope`` / ``SuppressionReason``)."""

    phone: str
    scope: str
    reason: str
    detail: str | None
    since: float  # when it was added


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    rows: tuple[SuppressionRow, ...]
    total: int  # every number on the list, whatever the filter


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str  # invalid, duplicate, over the 24-hour messaging limit, ...
    count: int


@dataclass(frozen=True, slots=True)
class StepCheck:
    """One step of a dry run: what will be sent, and what will not and why."""

    position: int  # from 1
    template: str
    language: str
    category: str | None  # the synced template's; None when not synced
    will_send: int
    rejected: tuple[ReasonCount, ...] = ()  # never queued (the import's rejects)
    skipped: tuple[ReasonCount, ...] = ()  # queued, but the run will skip them
    delayed: tuple[ReasonCount, ...] = ()  # sent, but later
    us_marketing: int = 0  # MARKETING to +1 numbers: sent, but Meta does not deliver them

    def line(self) -> str:
        counts = [f"{r.count:,} {r.reason}" for r in (*self.rejected, *self.skipped) if r.count]
        waits = [f"{r.count:,} wait: {r.reason}" for r in self.delayed if r.count]
        not_sent = f"; not sent: {', '.join(counts)}" if counts else ""
        later = f"; {', '.join(waits)}" if waits else ""
        category = f" ({self.category})" if self.category else ""
        return (f"  step {self.position}: {self.template}{category} {self.language}: "
                f"{self.will_send:,} will be sent{not_sent}{later}")


@dataclass(frozen=True, slots=True)
class CostLine:
    calling_code: int | None  # None: numbers whose calling code is unknown
    category: str  # pricing category (marketing, utility, authentication, ...)
    messages: int
    unit_price: Decimal | None  # None: the rate card has no price for it
    cost: Decimal | None


@dataclass(frozen=True, slots=True)
class CampaignCheck:
    """A dry run of a campaign: nothing is sent or written."""

    name: str
    at: float  # when it was made (unix time)
    steps: tuple[StepCheck, ...]
    rate: float
    send_seconds: float  # at the rate, ignoring the limit
    finishes_at: float | None  # None: nothing to send
    messaging_limit: int | None = None  # None: unlimited
    limit_used: int = 0  # numbers in the window now
    limit_clears_at: float | None = None  # when the last number waiting for the limit may go
    currency: str | None = None  # None: no rate card given
    cost_lines: tuple[CostLine, ...] = ()
    total_cost: Decimal | None = None
    unpriced: int = 0  # messages the rate card has no price for

    @property
    def will_send(self) -> int:
        return sum(step.will_send for step in self.steps)

    def lines(self) -> list[str]:
        """The dry run as text, a line each: ``watui campaign check`` and the setup screen."""
        lines = [f"Campaign {self.name}: {self.will_send:,} to send at {self.rate:g} msg/s"]
        lines += [step.line() for step in self.steps]
        lines += [f"  step {s.position}: {s.us_marketing:,} MARKETING to +1 numbers: Meta does "
                  "not deliver those" for s in self.steps if s.us_marketing]
        if self.messaging_limit is not None:
            lines.append(f"24-hour messaging limit {self.messaging_limit:,}: "
                         f"{self.limit_used:,} numbers in the window now")
        lines.append(f"Sending takes {_rough_duration(self.send_seconds)} at the rate; finishes "
                     f"{_local_time(self.finishes_at)}")
        if self.currency is not None:
            unpriced = f" ({self.unpriced:,} messages without a price on the card)" if self.unpriced else ""
            lines.append(f"Cost: {self.total_cost} {self.currency}{unpriced}")
        return lines


def _rough_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _local_time(at: float | None) -> str:
    if at is None:
        return "at once (nothing to send)"
    return time.strftime("at %Y-%m-%d %H:%M %Z", time.localtime(at))
