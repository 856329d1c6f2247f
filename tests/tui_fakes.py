"""A deterministic in-memory Backend for the UI's snapshot and Pilot tests.

Fixed clock, recorded series, and real (but simple) reading of CSV files, so the screens can be
exercised without the engine or a database. Every command is recorded in ``calls``.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from watui.errors import BackendError, CampaignExists, WatuiError
from watui.service.models import (
    CampaignCheck,
    CampaignReport,
    CampaignRow,
    CampaignSpec,
    CampaignState,
    CodeFailures,
    ContactsPreview,
    CountryFigures,
    EngineEvent,
    ErrorCount,
    MetricsSnapshot,
    NumberRow,
    NumbersReport,
    ReasonCount,
    RecipientState,
    RejectedContact,
    RetryFilter,
    RetryPage,
    RetryRow,
    RetryTarget,
    SettingRow,
    StepCheck,
    StepSpec,
    TemplateButton,
    TemplateInfo,
    TestSendResult,
    TimePoint,
    ValidationReport,
)
from watui.service.settings_view import settings_rows
from watui.settings import Settings
from watui.tui.app import WatuiApp

#: A small contacts file: 4 valid rows, 1 invalid, 1 duplicate (path relative to the repo root).
CONTACTS = Path("tests/data/tui/contacts.csv")

#: 2027-01-15 08:00:00 UTC: every time shown in a snapshot derives from it.
FIXED_NOW = 1_800_000_000.0
SERIES_SECONDS = 120
_PHONE = re.compile(r"^\+?[1-9]\d{7,14}$")

TEMPLATES = [
    TemplateInfo(
        "order_shipped",
        "en_US",
        "UTILITY",
        "Hi {{1}}, your order {{2}} has shipped and will arrive on {{3}}.",
        3,
    ),
    TemplateInfo(
        "spring_sale",
        "en_US",
        "MARKETING",
        "Hello {{1}}! Our spring sale starts today: 20% off everything.",
        1,
        header_format="image",
    ),
    TemplateInfo(
        "appointment_reminder",
        "pt_BR",
        "UTILITY",
        "Olá {{1}}, lembrete da sua consulta em {{2}}.",
        2,
        header_format="text",
        header_text="Lembrete",
    ),
    TemplateInfo("welcome", "en_US", "MARKETING", "Welcome to Acme! Reply STOP to opt out.", 0),
    TemplateInfo(
        "parcel_tracking",
        "en_US",
        "UTILITY",
        "Hi {{1}}, your parcel is out for delivery.",
        1,
        buttons=(
            TemplateButton("url", "Track", "https://acme.test/t/{{1}}"),
            TemplateButton("quick_reply", "Not at home"),
            TemplateButton("phone_number", "Call us"),
        ),
    ),
]

ERROR_MEANINGS = {
    131026: "Message undeliverable (not on WhatsApp)",
    131000: "Something went wrong (transient)",
    130429: "Throughput limit reached",
    131048: "Spam rate limit hit: account paused",
    131049: "Not delivered to keep engagement healthy",
}


def recorded_series(seconds: int, rate: float, phase: float = 0.0) -> tuple[float, ...]:
    """A believable sent/s series: a ramp, then steady at the rate with a small wobble."""
    values = []
    for second in range(seconds):
        ramp = min(1.0, (second + 1) / 8)
        wobble = 1.5 * math.sin(second / 3 + phase) + (0.8 if second % 7 == 0 else 0)
        values.append(round(max(0.0, rate * ramp - 2 + wobble)))
    return tuple(values)


def small_series(seconds: int, every: int, size: int) -> tuple[float, ...]:
    return tuple(
        float(size if second % every == 0 else (1 if second % 5 == 0 else 0))
        for second in range(seconds)
    )


@dataclass
class FakeCampaign:
    row: CampaignRow
    target_rate: float = 80.0
    retry_rows: list[RetryRow] = field(default_factory=list)
    events: list[EngineEvent] = field(default_factory=list)


class FakeBackend:
    """Implements ``watui.service.api.Backend`` with fixed data."""

    def __init__(self, campaigns: list[FakeCampaign] | None = None, now: float = FIXED_NOW) -> None:
        self.now = now
        self.campaigns: dict[str, FakeCampaign] = {c.row.name: c for c in campaigns or []}
        self.calls: list[tuple[str, ...]] = []
        self.created: list[CampaignSpec] = []
        self.shut_down = False
        #: What create_campaign refuses with, as the live backend would (rules' problems).
        self.refusal: WatuiError | None = None
        self.numbers: tuple[NumberRow, ...] = ()

    @classmethod
    def sample(cls, retry_rows: int = 240) -> FakeBackend:
        """Four campaigns in every state that matters, one of them running."""
        running = FakeCampaign(
            CampaignRow(
                "spring-sale",
                CampaignState.RUNNING,
                total=5_000,
                sent=2_140,
                failed=12,
                pending=2_841,
                retrying=7,
                in_doubt=0,
                rate=79.6,
                eta_seconds=35.7,
                delivered=1_986,
                read=911,
                failed_after=3,
            ),
            retry_rows=_retry_rows(retry_rows, FIXED_NOW),
            events=[
                EngineEvent(1, FIXED_NOW - 95, "start", "Started at 80 msg/s"),
                EngineEvent(2, FIXED_NOW - 60, "rate", "Rate changed 80 → 60 msg/s"),
                EngineEvent(3, FIXED_NOW - 30, "rate", "Rate changed 60 → 80 msg/s"),
                EngineEvent(4, FIXED_NOW - 12, "throttle", "130429 seen: backing off to 72 msg/s"),
            ],
        )
        paused = FakeCampaign(
            CampaignRow(
                "welcome-series",
                CampaignState.PAUSED,
                total=1_200,
                sent=310,
                failed=4,
                pending=886,
                paused_reason="(#131048) Spam rate limit hit",
                delivered=301,
                read=122,
            ),
            retry_rows=_retry_rows(3, FIXED_NOW),
            events=[
                EngineEvent(
                    1, FIXED_NOW - 400, "pause", "Auto-paused: (#131048) Spam rate limit hit"
                )
            ],
        )
        done = FakeCampaign(
            CampaignRow(
                "october-newsletter",
                CampaignState.COMPLETED,
                total=12_000,
                sent=11_874,
                failed=126,
                pending=0,
                invalid=31,
                delivered=11_530,
                read=7_322,
                failed_after=41,
                unconfirmed=0,
            )
        )
        draft = FakeCampaign(
            CampaignRow(
                "vip-preview", CampaignState.DRAFT, total=250, sent=0, failed=0, pending=250
            )
        )
        return cls([running, paused, done, draft])

    # -- reading ---------------------------------------------------------------------------
    async def list_campaigns(self) -> list[CampaignRow]:
        return [campaign.row for campaign in self.campaigns.values()]

    async def campaign_status(self, name: str) -> CampaignRow:
        return self._get(name).row

    async def list_templates(self) -> list[TemplateInfo]:
        return list(TEMPLATES)

    async def preview_contacts(
        self, path: Path, phone_column: str, default_region: str | None, limit: int
    ) -> ContactsPreview:
        columns, rows = _read_csv(path)
        return ContactsPreview(tuple(columns), tuple(tuple(row) for row in rows[:limit]))

    async def validate_contacts(
        self, path: Path, phone_column: str, default_region: str | None
    ) -> ValidationReport:
        columns, rows = _read_csv(path)
        if phone_column not in columns:
            raise BackendError(
                f"no column {phone_column!r} in {path.name} (columns: {', '.join(columns)})"
            )
        index = columns.index(phone_column)
        seen: set[str] = set()
        invalid: list[RejectedContact] = []
        duplicates: list[RejectedContact] = []
        for line, row in enumerate(rows, start=2):
            phone = row[index].strip() if index < len(row) else ""
            digits = phone.replace(" ", "").replace("-", "")
            if not _PHONE.match(digits):
                invalid.append(RejectedContact(line, phone, "not a phone number"))
            elif digits in seen:
                duplicates.append(RejectedContact(line, phone, "duplicate of an earlier row"))
            else:
                seen.add(digits)
        return ValidationReport(len(seen), tuple(invalid), tuple(duplicates))

    async def metrics(self, name: str) -> MetricsSnapshot | None:
        campaign = self._get(name)
        row = campaign.row
        if row.status not in (CampaignState.RUNNING, CampaignState.PAUSED):
            return None
        running = row.status is CampaignState.RUNNING
        sent = recorded_series(SERIES_SECONDS, campaign.target_rate)
        if not running:  # it sent until it paused 25 s ago
            sent = sent[:-25] + (0.0,) * 25
        return MetricsSnapshot(
            at=self.now,
            status=row.status,
            target_rate=campaign.target_rate,
            sent_per_s=sent,
            failed_per_s=small_series(SERIES_SECONDS, 17, 3),
            retried_per_s=small_series(SERIES_SECONDS, 11, 4),
            throttled_per_s=small_series(SERIES_SECONDS, 40, 2),
            latency_p50=0.142 if running else None,
            latency_p95=0.231 if running else None,
            in_flight=19 if running else 0,
            window=32,
            connection_reuse=0.994,
            connections=28 if running else 0,
            total=row.total,
            sent=row.sent,
            failed=row.failed,
            pending=row.pending,
            retrying=row.retrying,
            in_doubt=row.in_doubt,
            skipped=row.skipped,
            eta_seconds=row.eta_seconds if running else None,
            errors=(
                ErrorCount(131026, ERROR_MEANINGS[131026], 9),
                ErrorCount(131000, ERROR_MEANINGS[131000], 5),
                ErrorCount(130429, ERROR_MEANINGS[130429], 2),
                ErrorCount(None, "Read timeout (may have been delivered)", 1),
            ),
            paused_reason=row.paused_reason,
            delivered=row.delivered,
            read=row.read,
            failed_after=row.failed_after,
            unconfirmed=row.unconfirmed,
            delivered_per_s=tuple(round(v * 0.93) for v in sent[:-6]) + (0.0,) * 6,
            deliver_p50=2.4,
            deliver_p95=7.9,
            late_errors=(ErrorCount(131049, ERROR_MEANINGS[131049], 2),
                         ErrorCount(131026, ERROR_MEANINGS[131026], 1)),
        )

    async def report(self, name: str) -> CampaignReport:
        """Figures consistent with the campaign's row: the funnel from its counters."""
        row = self._get(name).row
        accepted = row.sent + row.failed_after
        timeline = tuple(
            TimePoint(self.now - 3_600 + 60 * minute, round(accepted / 60 * (1 + math.sin(minute / 9)) / 1.2),
                      round(row.read / 60 * (1 + math.sin((minute - 6) / 9)) / 1.2))
            for minute in range(60)
        ) if row.delivered else ()
        return CampaignReport(
            name=row.name, status=row.status, total=row.total, accepted=accepted,
            delivered=row.delivered, read=row.read, failed=row.failed,
            failed_after=row.failed_after, unconfirmed=row.unconfirmed,
            failures=(
                CodeFailures(131026, ERROR_MEANINGS[131026], 9, 1),
                CodeFailures(131049, ERROR_MEANINGS[131049], 0, 2),
                CodeFailures(131000, ERROR_MEANINGS[131000], 2, 0),
            ) if row.failed else (),
            countries=(CountryFigures("ES", "Spain", row.total, row.delivered),),
            pricing=(("marketing", row.delivered),) if row.delivered else (),
            deliver_percentiles=(("p50", 2.4), ("p90", 6.1), ("p99", 14.8)) if row.delivered
            else (("p50", None), ("p90", None), ("p99", None)),
            timeline=timeline,
        )

    async def export_recipients(self, name: str, path: Path, file_format: str = "csv") -> int:
        self.calls.append(("export_recipients", name, str(path), file_format))
        row = self._get(name).row
        path.write_text("phone,status\n" + "".join(f"+3461234{i:04d},sent\n" for i in range(row.sent)))
        return row.sent

    async def events(self, name: str, since_seq: int) -> list[EngineEvent]:
        return [event for event in self._get(name).events if event.seq > since_seq]

    async def retry_queue(
        self, name: str, status_filter: RetryFilter, offset: int, limit: int
    ) -> RetryPage:
        matching = self._matching(name, status_filter)
        return RetryPage(tuple(matching[offset : offset + limit]), len(matching), offset)

    async def list_numbers(self, refresh: bool) -> NumbersReport:
        return NumbersReport(self.numbers, "106540352242922")

    def settings_view(self) -> list[SettingRow]:
        settings = Settings(
            database_url="postgresql+asyncpg://watui:db-password-1@localhost/watui",
            whatsapp={
                "access_token": "EAAG-secret-token",
                "phone_number_id": "106540352242922",
                "waba_id": "102290129340398",
            },
        )
        return settings_rows(settings)

    # -- commands --------------------------------------------------------------------------
    async def check_campaign(self, name: str, rate_card: Path | None = None) -> CampaignCheck:
        """Every pending row will be sent, the invalid ones were not queued: no limit, no card."""
        row = self._get(name).row
        step = StepCheck(1, "order_shipped", "en_US", "UTILITY", row.pending,
                         rejected=(ReasonCount("invalid", row.invalid),))
        return CampaignCheck(row.name, self.now, (step,), 80.0, row.pending / 80.0,
                             self.now + row.pending / 80.0 if row.pending else None)

    async def create_campaign(self, spec: CampaignSpec) -> CampaignRow:
        self.calls.append(("create", spec.name))
        if spec.name in self.campaigns:
            raise CampaignExists(f"a campaign named {spec.name!r} already exists")
        if self.refusal is not None:
            raise self.refusal
        total = 0
        for step in spec.steps:
            report = await self.validate_contacts(
                Path(step.contacts), step.phone_column, step.default_region
            )
            total += report.valid
        status = CampaignState.RUNNING if spec.start_now else CampaignState.DRAFT
        row = CampaignRow(spec.name, status, total=total, sent=0, failed=0, pending=total)
        self.campaigns[spec.name] = FakeCampaign(row, target_rate=spec.rate)
        self.created.append(spec)
        return row

    async def start(self, name: str) -> None:
        self._set_status(name, "start", CampaignState.RUNNING)

    async def start_due_campaigns(self) -> list[str]:
        return []  # the fake's campaigns have no start time

    async def pause(self, name: str) -> None:
        self._set_status(name, "pause", CampaignState.PAUSED, reason="Paused by you")

    async def resume(self, name: str) -> None:
        self._set_status(name, "resume", CampaignState.RUNNING)

    async def cancel(self, name: str) -> None:
        self._set_status(name, "cancel", CampaignState.CANCELLED)

    async def delete(self, name: str) -> None:
        self.calls.append(("delete", name))
        self._get(name)
        del self.campaigns[name]

    async def set_rate(self, name: str, rate: float) -> None:
        self.calls.append(("set_rate", name, f"{rate:g}"))
        campaign = self._get(name)
        self._event(campaign, "rate", f"Rate changed {campaign.target_rate:g} → {rate:g} msg/s")
        campaign.target_rate = rate

    async def requeue(self, name: str, target: RetryTarget) -> int:
        return self._remove(name, "requeue", target)

    async def skip(self, name: str, target: RetryTarget) -> int:
        return self._remove(name, "skip", target)

    async def export_retry_queue(self, name: str, status_filter: RetryFilter, path: Path) -> int:
        self.calls.append(("export", name, str(path)))
        rows = self._matching(name, status_filter)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phone", "status", "attempts", "code", "meaning"])
            for row in rows:
                writer.writerow([row.phone, row.status, row.attempts, row.code or "", row.meaning])
        return len(rows)

    async def send_test(self, spec: CampaignSpec | StepSpec | str, phone: str) -> TestSendResult:
        self.calls.append(("send_test", phone))
        if not _PHONE.match(phone.replace(" ", "")):
            raise BackendError(f"{phone!r} is not a phone number; use +<country code><number>")
        return TestSendResult(True, "Accepted: wamid.HBgLMTU1NTAxMjM0NTYVAgARGBI5")

    async def shutdown(self) -> None:
        self.calls.append(("shutdown",))
        self.shut_down = True

    # -- helpers ---------------------------------------------------------------------------
    def _get(self, name: str) -> FakeCampaign:
        try:
            return self.campaigns[name]
        except KeyError:
            raise BackendError(f"no campaign named {name!r}") from None

    def _set_status(
        self, name: str, call: str, status: CampaignState, reason: str | None = None
    ) -> None:
        self.calls.append((call, name))
        campaign = self._get(name)
        campaign.row = replace(campaign.row, status=status, paused_reason=reason)
        self._event(campaign, call, f"{call.capitalize()}d" if call != "pause" else "Paused by you")

    def _event(self, campaign: FakeCampaign, kind: str, text: str) -> None:
        seq = campaign.events[-1].seq + 1 if campaign.events else 1
        campaign.events.append(EngineEvent(seq, self.now, kind, text))

    def _matching(self, name: str, wanted: RetryFilter) -> list[RetryRow]:
        return [
            row
            for row in self._get(name).retry_rows
            if (wanted.status is None or row.status == wanted.status)
            and (wanted.code is None or row.code == wanted.code)
        ]

    def _remove(self, name: str, call: str, target: RetryTarget) -> int:
        campaign = self._get(name)
        if isinstance(target, RetryFilter):
            chosen = {row.id for row in self._matching(name, target)}
            self.calls.append((call, name, f"filter={target.status}/{target.code}"))
        else:
            chosen = set(target)
            self.calls.append((call, name, ",".join(map(str, sorted(chosen)))))
        before = len(campaign.retry_rows)
        campaign.retry_rows = [row for row in campaign.retry_rows if row.id not in chosen]
        return before - len(campaign.retry_rows)


def _retry_rows(count: int, now: float) -> list[RetryRow]:
    """Rows cycling through waiting-for-retry, failed and in-doubt, with fixed countdowns."""
    rows = []
    for index in range(count):
        phone = f"+1555{index:07d}"
        kind = index % 4
        if kind in (0, 1):
            rows.append(
                RetryRow(
                    index + 1,
                    phone,
                    RecipientState.RETRY,
                    attempts=1 + kind,
                    code=131000,
                    meaning=ERROR_MEANINGS[131000],
                    next_attempt_at=now + 3 + index % 9,
                )
            )
        elif kind == 2:
            rows.append(
                RetryRow(
                    index + 1,
                    phone,
                    RecipientState.FAILED,
                    attempts=1,
                    code=131026,
                    meaning=ERROR_MEANINGS[131026],
                )
            )
        else:
            rows.append(
                RetryRow(
                    index + 1,
                    phone,
                    RecipientState.IN_DOUBT,
                    attempts=1,
                    meaning="Read timeout: may have been delivered",
                )
            )
    return rows


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise BackendError(f"cannot read {path}: {error.strerror}") from None
    if not rows:
        raise BackendError(f"{path.name} is empty: it needs a header row")
    return rows[0], rows[1:]


def make_app(backend: FakeBackend | None = None, **options: object) -> WatuiApp:
    """The app on a FakeBackend with the fake's fixed clock and no refresh timer by default."""
    backend = backend if backend is not None else FakeBackend.sample()
    settings: dict[str, object] = {"refresh_interval": None, "start_dir": CONTACTS.parent}
    settings.update(options)
    app = WatuiApp(backend, clock=lambda: backend.now, **settings)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app
