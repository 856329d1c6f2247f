"""LiveBackend: the UI's Backend over the real storage, engine and client, in the UI's own loop.

The screens call these plain methods; campaigns send in this process as asyncio tasks (one
CampaignSender each) sharing one HTTP client. Nothing here knows about Textual, and nothing in the
UI knows about SQL or HTTP: this module is the seam between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from watui.contracts import RecipientParams
from watui.engine.metrics import EngineMetrics, OutageFigures, SenderFigures
from watui.engine.numbers import NumbersSender, campaign_sender
from watui.engine.runner import CampaignNotRunnable, check_send_settings, prepare
from watui.engine.schedule import GateKind
from watui.engine.sender import CampaignSender, RunOutcome
from watui.errors import BackendError, InvalidCampaign, WatuiError
from watui.receiver import WebhookReceiver, applying_receiver
from watui.rules import (
    REVIEWABLE_STATUSES,
    WINDOW_WAIT_REASON,
    CampaignStatus,
    RecipientStatus,
    placeholder_names,
    rate_problem,
)
from watui.service import exports
from watui.service import numbers as numbers_view
from watui.service import reports as delivery_reports
from watui.service import suppressions as suppression_service
from watui.service.checks import check_campaign
from watui.service.models import (
    ApiOutage,
    ButtonColumn,
    CampaignCheck,
    CampaignReport,
    CampaignRow,
    CampaignSpec,
    CampaignState,
    ContactsPreview,
    EngineEvent,
    ErrorCount,
    MetricsSnapshot,
    NumbersReport,
    RecipientState,
    RejectedContact,
    RetryFilter,
    RetryPage,
    RetryRow,
    RetryTarget,
    SendingNumber,
    SettingRow,
    StepSpec,
    SuppressionPage,
    SuppressionRow,
    TemplateButton,
    TemplateInfo,
    TestSendResult,
    ValidationReport,
)
from watui.service.settings_view import settings_rows
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import claims, creation, monitoring, review, timing
from watui.storage import suppressions as suppression_store
from watui.storage import templates as template_store
from watui.storage.contacts import ContactsSource
from watui.storage.database import Database
from watui.storage.messaging_limit import shared_wait_reason
from watui.storage.rows import CampaignRecord, TemplateRecord, iso_utc
from watui.storage.validation import preview_rows, validate_contacts
from watui.whatsapp.errors import describe_code
from watui.whatsapp.payload import build_template_message
from watui.whatsapp.results import Accepted, ApiError

SERIES_SECONDS = 180  # what the monitor's chart shows
#: How long ``metrics`` reuses the campaign row and retry count that ``campaign_status`` has
#: just read: the monitor asks for both in one tick, and while sending each read waits its turn
#: for the database's thread (SQLite) or a round trip behind the engine's writes.
SAME_TICK = 0.1

T = TypeVar("T")


@dataclass
class _Run:
    sender: CampaignSender | NumbersSender
    task: asyncio.Task[RunOutcome]
    campaign_id: int
    outcome: RunOutcome | None = None

    @property
    def live(self) -> bool:
        """Still sending (a run that failed with an error is over too, and may start again)."""
        return not self.task.done()


class LiveBackend:
    """Implements ``watui.service.api.Backend``; ``watui.service.open.open_live_backend`` makes one."""

    def __init__(self, settings: Settings, db: Database, client_factory: Callable[[], Any]) -> None:
        self.settings = settings
        self.db = db
        self._client_factory = client_factory
        self._client: Any = None
        self._runs: dict[str, _Run] = {}
        # One metrics object per campaign across its runs in this process: after a pause and a
        # resume the monitor's graph and event log go on instead of starting over.
        self._metrics: dict[str, EngineMetrics] = {}
        self._first_started: dict[str, float] = {}  # monotonic, per campaign
        self._receiver: WebhookReceiver | None = None
        self._delivered: dict[str, delivery_reports.CounterSeries] = {}  # the chart's delivered/s
        self.slow_figures = delivery_reports.SlowFigures()  # time to deliver, late failures
        self._last_read: dict[str, tuple[float, CampaignRecord, int]] = {}  # see SAME_TICK

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    # ----- reading -----

    async def list_campaigns(self) -> list[CampaignRow]:
        found = await _guard(campaign_store.list_campaigns(self.db))
        shared_wait = await self._shared_wait(found)
        return [self._row(campaign, shared_wait=shared_wait) for campaign in found]

    async def campaign_status(self, name: str) -> CampaignRow:
        """From the campaign's counters and one index range count, never a count over every
        recipient: the monitor asks 4 times a second (campaign_status counted all rows: 50 ms of
        CPU per call at 100,000 recipients)."""
        campaign, retrying = await self._read_campaign(name)
        return self._row(campaign, retrying, shared_wait=await self._shared_wait([campaign]))

    async def _read_campaign(self, name: str, *, reuse: bool = False) -> tuple[CampaignRecord, int]:
        """The campaign's row and how many of its recipients wait for a retry; with ``reuse``,
        what ``campaign_status`` read within SAME_TICK seconds, if it did."""
        now = time.monotonic()
        last = self._last_read.get(name)
        if reuse and last is not None and now - last[0] <= SAME_TICK:
            return last[1], last[2]
        campaign, retrying = await _guard(monitoring.campaign_and_retrying(self.db, name))
        self._last_read[name] = (now, campaign, retrying)
        return campaign, retrying


    async def _shared_wait(self, found: list[CampaignRecord]) -> str | None:
        """The 24-hour limit's wait, read once, if a campaign sent by another process may wait."""
        elsewhere = any(
            c.status == CampaignStatus.RUNNING.value and not self.is_sending(c.name) for c in found
        )
        if not elsewhere:
            return None
        return await _guard(shared_wait_reason(self.db, self.settings.whatsapp, time.time()))

    def _row(
        self, campaign: CampaignRecord, retrying: int = 0, *, shared_wait: str | None = None
    ) -> CampaignRow:
        run = self._runs.get(campaign.name)
        rate = eta = outage = None
        pending = campaign.pending
        waiting = campaign.pause_reason == WINDOW_WAIT_REASON
        waiting_reason = shared_wait if campaign.status == CampaignStatus.RUNNING.value and pending else None
        if run is not None and run.live:
            metrics = run.sender.metrics
            if metrics.numbers:  # several numbers: the snapshot sums theirs
                figures = metrics.snapshot(seconds=10)
                rate, outage = figures.current_rate, _outage(figures.outage)
            else:  # the cheap way: no snapshot (it sorts every latency sample)
                rate, outage = metrics.current_rate(), _outage(metrics.outage)
            eta = pending / rate if rate > 0 and pending else None
            gate = run.sender.waiting
            waiting = gate is not None and gate.kind is GateKind.OUTSIDE_WINDOWS
            waiting_reason = run.sender.waiting_reason
        return CampaignRow(
            name=campaign.name, status=CampaignState(campaign.status), total=campaign.total,
            sent=campaign.sent, failed=campaign.failed, pending=pending,
            retrying=retrying, in_doubt=campaign.in_doubt,
            invalid=campaign.invalid, skipped=campaign.skipped, rate=rate, eta_seconds=eta,
            paused_reason=campaign.pause_reason, delivered=campaign.delivered, read=campaign.read,
            unconfirmed=campaign.unconfirmed, failed_after=campaign.failed_after,
            start_at=campaign.start_at, deadline=campaign.deadline, waiting_for_window=waiting,
            outage=outage, waiting_reason=waiting_reason,
        )

    async def list_templates(self) -> list[TemplateInfo]:
        rows = await _guard(template_store.list_templates(self.db, approved_only=True))
        return [
            TemplateInfo(
                name=row.name, language=row.language, category=row.category or "",
                body=row.body_text or "", param_count=row.body_param_count or 0,
                header_format=(row.header_format or "").lower() or None,
                header_text=row.header_text, buttons=_template_buttons(row.buttons),
            )
            for row in rows
        ]

    async def preview_contacts(
        self, path: Path, phone_column: str, default_region: str | None, limit: int
    ) -> ContactsPreview:
        header, rows = await _guard(asyncio.to_thread(preview_rows, path, limit))
        return ContactsPreview(tuple(header), tuple(tuple(row) for row in rows))

    async def validate_contacts(
        self, path: Path, phone_column: str, default_region: str | None
    ) -> ValidationReport:
        source = ContactsSource(Path(path), phone_column=phone_column, default_region=default_region)
        result = await _guard(asyncio.to_thread(validate_contacts, source))

        def shown(rows: list[Any]) -> tuple[RejectedContact, ...]:
            return tuple(RejectedContact(r.line, r.phone_raw or "", r.reason) for r in rows)

        return ValidationReport(
            valid=result.counts.queued, invalid=shown(result.invalid),
            duplicates=shown(result.duplicates), invalid_count=result.counts.invalid,
            duplicate_count=result.counts.duplicates,
        )

    async def metrics(self, name: str) -> MetricsSnapshot | None:
        """The last run's figures (kept after it ends, so the monitor still shows how it went);
        None when the campaign has not sent from this process."""
        run = self._runs.get(name)
        if run is None:
            return None
        summary, retrying = await self._read_campaign(name, reuse=True)
        engine = run.sender.metrics.snapshot(self._series_seconds(name))
        now = time.time()
        delivered = self._delivered.setdefault(name, delivery_reports.CounterSeries(SERIES_SECONDS))
        delivered.record(now, summary.delivered)
        slow = await _guard(self.slow_figures.get(self.db, run.campaign_id, now))
        return replace(
            _snapshot(engine, summary, retrying, run.live),
            delivered=summary.delivered, read=summary.read, failed_after=summary.failed_after,
            unconfirmed=summary.unconfirmed,
            delivered_per_s=delivered.per_second(now, max(0, len(engine.sent_per_s) - 1)),
            deliver_p50=slow.deliver_p50, deliver_p95=slow.deliver_p95,
            late_errors=slow.late_errors,
            waiting_reason=run.sender.waiting_reason if run.live else None,
        )

    def _series_seconds(self, name: str) -> int:
        """Seconds since the campaign first sent here, up to SERIES_SECONDS, plus the current
        one: the chart shows the run, not minutes of zeros from before it."""
        elapsed = time.monotonic() - self._first_started.get(name, time.monotonic())
        return max(2, min(SERIES_SECONDS, int(elapsed) + 2))

    def is_sending(self, name: str) -> bool:
        """Whether a run of this campaign is going on in this process."""
        run = self._runs.get(name)
        return run is not None and run.live

    async def events(self, name: str, since_seq: int) -> list[EngineEvent]:
        metrics = self._metrics.get(name)
        if metrics is None:
            return []
        return [EngineEvent(e.seq, e.at, e.kind, e.text) for e in metrics.events_since(since_seq)]

    async def retry_queue(
        self, name: str, status_filter: RetryFilter, offset: int, limit: int
    ) -> RetryPage:
        campaign_id = await self._campaign_id(name)
        status = status_filter.status
        rows, total = await _guard(review.review_page(
            self.db, campaign_id, status=status, code=status_filter.code, offset=offset, limit=limit,
        ))
        return RetryPage(tuple(_retry_row(row) for row in rows), total, offset)

    async def list_suppressions(self, containing: str, limit: int) -> SuppressionPage:
        entries = await suppression_store.list_suppressions(self.db, containing=containing, limit=limit)
        rows = tuple(SuppressionRow(e.phone, e.scope, e.reason, e.detail, e.created_at) for e in entries)
        return SuppressionPage(rows, await suppression_store.count_suppressions(self.db))

    async def suppress_numbers(self, phones: list[str], *, marketing_only: bool, note: str) -> int:
        done = await suppression_service.add_numbers(
            self.db, phones, marketing_only=marketing_only, note=note
        )
        return done.added

    async def unsuppress_numbers(self, phones: list[str]) -> int:
        return await suppression_service.remove_numbers(self.db, phones)

    def settings_view(self) -> list[SettingRow]:
        return settings_rows(self.settings)

    async def list_numbers(self, refresh: bool) -> NumbersReport:
        problem = await numbers_view.refresh(self.db, self.settings, self.client) if refresh else None
        rows = await _guard(numbers_view.number_rows(self.db))
        return NumbersReport(rows, self.settings.whatsapp.phone_number_id, problem)

    # ----- commands -----

    async def create_campaign(self, spec: CampaignSpec) -> CampaignRow:
        steps = [
            creation.NewStep(step.template, step.language, _source(step)) for step in spec.steps
        ]
        # The retry policy goes into the campaign's row: `watui run` and a restarted UI use it too.
        await _guard(creation.create_campaign(
            self.db, spec.name, steps, rate=spec.rate,
            max_retries=spec.max_retries, retry_delays=spec.retry_delays,
            senders=list(spec.senders) or None,
            start_at=spec.start_at, send_window=spec.send_window, deadline=spec.deadline,
            exclude=spec.exclude,
            endpoint=spec.endpoint,
        ))
        if spec.start_now:
            await self.start(spec.name)
        return await self.campaign_status(spec.name)

    async def start(self, name: str) -> None:
        if self.is_sending(name):
            return
        try:
            prepared = await prepare(self.db, name)
            row = await campaign_store.campaign_row(self.db, prepared.campaign_id)
            check_send_settings(self.settings, row.sender_ids())
        except CampaignNotRunnable as error:
            raise BackendError(str(error)) from None
        metrics = self._metrics.setdefault(name, EngineMetrics())
        self._first_started.setdefault(name, time.monotonic())
        sender = campaign_sender(self.db, self.client, self.settings, row, rate=row.rate, metrics=metrics)
        if prepared.resumed_from:
            metrics.event("resumed", f"resumed (had paused: {prepared.resumed_from})")
        task = asyncio.create_task(sender.run(), name=f"watui-campaign-{name}")
        run = _Run(sender, task, prepared.campaign_id)
        self._runs[name] = run
        task.add_done_callback(lambda done: self._finished(run, done))

    async def start_due_campaigns(self) -> list[str]:
        due = await _guard(timing.due_campaigns(self.db, time.time()))
        names = [campaign.name for campaign in due if not self.is_sending(campaign.name)]
        for name in names:
            await self.start(name)
        return names

    def _finished(self, run: _Run, task: asyncio.Task[RunOutcome]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            run.sender.metrics.event("error", f"sending stopped: {error!s:.200}")
            return
        run.outcome = task.result()

    async def pause(self, name: str) -> None:
        run = self._runs.get(name)
        if run is not None and run.live:
            run.sender.pause("paused by a person")
            await asyncio.shield(run.task)
            return
        campaign_id = await self._campaign_id(name)
        await _guard(campaign_store.pause_campaign(self.db, campaign_id, "paused by a person"))

    async def resume(self, name: str) -> None:
        await self.start(name)

    async def cancel(self, name: str) -> None:
        run = self._runs.get(name)
        if run is not None and run.live:
            run.sender.cancel()
            await asyncio.shield(run.task)
            return
        campaign_id = await self._campaign_id(name)
        await _guard(campaign_store.cancel_campaign(self.db, campaign_id))

    async def delete(self, name: str) -> None:
        if self.is_sending(name):
            raise BackendError(f"campaign {name!r} is sending: pause or cancel it before deleting")
        await _guard(campaign_store.delete_campaign(self.db, name))
        self._runs.pop(name, None)
        self._metrics.pop(name, None)

    async def set_rate(self, name: str, rate: float) -> None:
        if problem := rate_problem(rate):
            raise InvalidCampaign([problem])
        campaign_id = await self._campaign_id(name)
        await _guard(campaign_store.set_campaign_rate(self.db, campaign_id, rate))
        run = self._runs.get(name)
        if run is not None and run.live:
            run.sender.set_rate(rate)

    async def requeue(self, name: str, target: RetryTarget) -> int:
        summary = await _guard(campaign_store.get_campaign(self.db, name))
        ids, statuses, code = _target(target)
        moved = await _guard(
            review.requeue(self.db, summary.id, statuses=statuses, code=code, ids=ids)
        )
        if moved and summary.status == CampaignState.COMPLETED.value:
            # "Retry" on a finished campaign means send them now; a paused one stays paused
            # (a person or a safety rule paused it), a running one picks them up by itself.
            await self.start(name)
        return moved

    async def skip(self, name: str, target: RetryTarget) -> int:
        campaign_id = await self._campaign_id(name)
        ids, statuses, code = _target(target)
        return await _guard(review.skip(self.db, campaign_id, statuses=statuses, code=code, ids=ids))

    async def export_retry_queue(self, name: str, status_filter: RetryFilter, path: Path) -> int:
        campaign_id = await self._campaign_id(name)
        status = status_filter.status
        written = 0
        target = Path(path).expanduser()
        try:
            with target.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["phone", "status", "attempts", "error_code", "meaning", "error",
                                 "next_attempt_at", "step"])
                async for row in review.iter_review_rows(
                    self.db, campaign_id, status=status, code=status_filter.code
                ):
                    writer.writerow([
                        row.phone, row.status, row.attempts, row.error_code or "",
                        describe_code(row.error_code) if row.error_code else "",
                        row.error_title or "", _iso(row.next_attempt_at) if row.status == "retry" else "",
                        row.step_position + 1,
                    ])
                    written += 1
        except OSError as error:
            raise BackendError(f"cannot write {target}: {error.strerror}") from None
        return written

    async def report(self, name: str) -> CampaignReport:
        report: CampaignReport = await _guard(delivery_reports.campaign_report(self.db, name))
        return report

    async def check_campaign(self, name: str, rate_card: Path | None = None) -> CampaignCheck:
        return await _guard(check_campaign(self.db, self.settings, name, rate_card, time.time()))

    async def export_recipients(self, name: str, path: Path, file_format: str = "csv") -> int:
        campaign_id = await self._campaign_id(name)
        return await exports.export_to_file(
            self.db, campaign_id, path, exports.export_format(file_format))

    async def send_test(self, spec: CampaignSpec | StepSpec | str, phone: str) -> TestSendResult:
        from watui.storage.phones import PhoneNormaliser

        step, header_format = await self._test_step(spec)
        try:
            e164 = PhoneNormaliser(step.default_region).to_e164(phone.strip())
        except ValueError as error:
            raise BackendError(str(error)) from None
        params = await self._sample_params(step)
        template = await self._template(step.template, step.language)
        if header_format is None and template is not None:
            header_format = (template.header_format or "").lower() or None
        names = placeholder_names(template.body_text) if template else []
        payload = build_template_message(e164, step.template, step.language, params, header_format,
                                         names or None)
        result = await self.client.send(payload)
        if isinstance(result, Accepted):
            return TestSendResult(True, f"accepted: {result.wamid}")
        code = result.code if isinstance(result, ApiError) else None
        return TestSendResult(False, f"{code or 'transport'}: {describe_code(code)} ({_detail(result)})")

    async def _test_step(self, spec: CampaignSpec | StepSpec | str) -> tuple[StepSpec, str | None]:
        """The step a test send uses and, for a saved campaign, the header format its mapping
        recorded (an image header is sent as a link, a text one as text)."""
        if isinstance(spec, str):
            return await self._campaign_test_step(spec)
        if isinstance(spec, CampaignSpec):
            if not spec.steps:
                raise BackendError("add a step (template and contacts) before a test send")
            spec = spec.steps[0]
        return spec, None  # the template's own header format, looked up by send_test

    async def _campaign_test_step(self, name: str) -> tuple[StepSpec, str | None]:
        """A saved campaign's step still to send (else its first), with its column mapping."""
        status = await _guard(campaign_store.campaign_status(self.db, name))
        step = await _guard(claims.current_step(self.db, status.campaign.id))
        if step is None:
            first = status.steps[0]
            return StepSpec(first.template, first.language, first.contacts_file or ""), None
        contacts = status.steps[step.position].contacts_file or ""
        mapping = step.mapping
        return (
            StepSpec(step.template_name, step.language, contacts, tuple(mapping.get("body") or ()),
                     mapping.get("header"), buttons=tuple(
                         ButtonColumn(b["index"], b["sub_type"], b["column"])
                         for b in mapping.get("buttons") or ()
                     )),
            mapping.get("header_format"),
        )

    async def _template(self, name: str, language: str) -> TemplateRecord | None:
        for row in await _guard(template_store.list_templates(self.db)):
            if row.name == name and row.language == language:
                return row
        return None

    async def _sample_params(self, step: StepSpec) -> RecipientParams:
        """Parameters from the first contact row, so the test shows what recipients will see."""
        if not step.contacts:
            return {"body": []}
        header, rows = await _guard(asyncio.to_thread(preview_rows, Path(step.contacts), 1))
        if not rows:
            return {"body": []}
        values = dict(zip(header, rows[0], strict=False))
        params: RecipientParams = {"body": [values.get(col, "") for col in step.body_params]}
        if step.header_param:
            params["header"] = values.get(step.header_param, "")
        if step.buttons:
            params["buttons"] = [
                {"index": b.index, "sub_type": b.sub_type, "text": values.get(b.column, "")}
                for b in step.buttons
            ]
        return params

    async def start_receiver(self) -> str | None:
        """With webhook.enabled: the webhook receiver and its applier in this event loop until
        shutdown; the URL it listens on (None when not enabled). Raises ReceiverError (one line)
        without the app secret or when the port is taken."""
        if not self.settings.webhook.enabled or self._receiver is not None:
            return None
        receiver = applying_receiver(self.db, self.settings)
        url = await receiver.start()
        self._receiver = receiver
        return url

    async def shutdown(self) -> None:
        """Stop every campaign cleanly: in-flight requests finish, outcomes are flushed; then
        the receiver, which answers the POSTs in flight and applies what it stored."""
        running = [run for run in self._runs.values() if run.live]
        for run in running:
            run.sender.request_stop()
        if running:
            await asyncio.gather(*(run.task for run in running), return_exceptions=True)
        if self._receiver is not None:
            with contextlib.suppress(Exception):
                await self._receiver.stop()
            self._receiver = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        await self.db.close()

    async def _campaign_id(self, name: str) -> int:
        campaign = await _guard(campaign_store.get_campaign(self.db, name))
        return campaign.id


def _source(step: StepSpec) -> ContactsSource:
    return ContactsSource(
        Path(step.contacts).expanduser(), phone_column=step.phone_column,
        body_params=tuple(step.body_params), header_param=step.header_param,
        buttons=tuple(step.buttons),  # the rules' MappedButton on both sides
        default_region=step.default_region,
    )


def _template_buttons(stored: str | None) -> tuple[TemplateButton, ...]:
    """The template's buttons as the API listed them (a JSON list kept by the sync)."""
    try:
        buttons = json.loads(stored) if stored else []
    except ValueError:
        return ()
    return tuple(
        TemplateButton(str(b.get("type", "")).lower(), str(b.get("text", "")), b.get("url"))
        for b in buttons if isinstance(b, dict)
    )


def _target(target: RetryTarget) -> tuple[list[int] | None, list[RecipientStatus], int | None]:
    if isinstance(target, RetryFilter):
        statuses = [target.status] if target.status else list(REVIEWABLE_STATUSES)
        return None, statuses, target.code
    return list(target), list(REVIEWABLE_STATUSES), None


def _retry_row(row: review.ReviewRow) -> RetryRow:
    return RetryRow(
        id=row.id, phone=row.phone, status=RecipientState(row.status), attempts=row.attempts,
        code=row.error_code,
        meaning=describe_code(row.error_code) if row.error_code else (row.error_title or ""),
        next_attempt_at=row.next_attempt_at if row.status == "retry" else None,
        step=row.step_position + 1,
    )


def _snapshot(
    engine: SenderFigures, summary: CampaignRecord, retrying: int, live: bool
) -> MetricsSnapshot:
    pending = summary.pending
    rate = engine.current_rate
    errors = tuple(
        ErrorCount(int(label) if label.isdigit() else None,
                   describe_code(int(label)) if label.isdigit() else label.replace("_", " "), count)
        for label, count in sorted(engine.errors_by_code.items(), key=lambda item: -item[1])
    )
    return MetricsSnapshot(
        at=engine.at, status=CampaignState(summary.status), target_rate=engine.target_rate,
        # Complete seconds only: the engine's last value is the second still running, and
        # "sent now" read from it dips at the start of every second.
        sent_per_s=engine.sent_per_s[:-1], failed_per_s=engine.failed_per_s[:-1],
        retried_per_s=engine.retried_per_s[:-1], throttled_per_s=engine.throttled_per_s[:-1],
        latency_p50=engine.latency_p50, latency_p95=engine.latency_p95,
        in_flight=engine.in_flight, window=engine.window,
        connection_reuse=engine.connection_reuse, connections=engine.connections,
        total=summary.total, sent=summary.sent,
        failed=summary.failed, pending=pending, retrying=retrying,
        in_doubt=summary.in_doubt, skipped=summary.skipped,
        eta_seconds=pending / rate if live and rate > 0 and pending else None, errors=errors,
        paused_reason=summary.pause_reason, outage=_outage(engine.outage) if live else None,
        numbers=tuple(
            SendingNumber(n.phone_number_id, n.state, n.current_rate, n.target_rate, n.reason)
            for n in engine.numbers
        ),
    )


def _outage(figures: OutageFigures | None) -> ApiOutage | None:
    return None if figures is None else ApiOutage(
        figures.since, figures.retry_at, figures.checking_every)


def _detail(result: Any) -> str:
    return str(getattr(result, "title", None) or getattr(result, "detail", ""))[:200]


def _iso(timestamp: float | None) -> str:
    return iso_utc(timestamp) or ""


async def _guard(awaitable: Awaitable[T]) -> T:
    """Watui's own errors pass as they are (the UI tells them apart by class); any other bad
    value becomes a BackendError: the UI shows it, never crashes."""
    try:
        return await awaitable
    except WatuiError:
        raise
    except ValueError as error:
        raise BackendError(str(error)) from None

