"""Plain data the terminal UI reads. No Textual, SQL or HTTP here.

The engine and storage are adapted to produce these (the UI never sees their own types), so the
UI can be built, tested and snapshotted against a fake backend with fixed data.
"""

from __future__ import annotations

from dataclasses import dataclass

from watui.rules import (
    CampaignStatus,
    MappedButton,
    RecipientStatus,
    button_needs_param,
    button_takes_param,
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
    endpoint: str = "auto"  # or "messages" / "marketing_messages" (rules.ENDPOINT_CHOICES)


@dataclass(frozen=True, slots=True)
class ErrorCount:
    code: int | None  # None: a transport failure (no API code)
    meaning: str
    count: int


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
