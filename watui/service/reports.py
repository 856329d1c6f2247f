"""Delivery figures with their meanings: the report (``watui report``, the report screen), the
failures by code ``watui status`` prints, and the monitor's slower figures.

Storage aggregates (storage/reports.py); this adds what people read: each code's meaning and
the report's shape. The command line and the UI both call here, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watui.service.models import (
    CampaignReport,
    CampaignState,
    CodeFailures,
    CountryFigures,
    ErrorCount,
    TimePoint,
)
from watui.storage import reports
from watui.storage.campaigns import get_campaign
from watui.storage.database import Database
from watui.storage.rows import iso_utc
from watui.whatsapp.errors import describe_code

#: The report's delivery time percentiles; the monitor shows p50 and p95.
REPORT_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
TIMELINE_BUCKETS = 60


async def code_failures(db: Database, campaign_id: int) -> tuple[CodeFailures, ...]:
    """Failures by code with their meaning, most first."""
    found = await reports.failures_by_code(db, campaign_id)
    return tuple(CodeFailures(item.code, describe_code(item.code), item.before, item.after)
                 for item in found)


def failures_json(failures: tuple[CodeFailures, ...]) -> dict[str, dict[str, Any]]:
    """``{code: {count, meaning, before, after}}``; the key "none" for failures with no code."""
    return {
        "none" if item.code is None else str(item.code): {
            "count": item.count, "meaning": item.meaning,
            "before_acceptance": item.before, "after_acceptance": item.after,
        }
        for item in failures
    }


async def deliver_times(db: Database, campaign_id: int) -> tuple[float | None, float | None]:
    """Seconds from accepted to delivered: (p50, p95)."""
    found = await reports.delivery_percentiles(db, campaign_id, (0.5, 0.95))
    return found[0.5], found[0.95]


def late_errors(failures: tuple[CodeFailures, ...]) -> tuple[ErrorCount, ...]:
    """The failures reported after acceptance, as the monitor's error table lists them."""
    return tuple(ErrorCount(item.code, item.meaning, item.after)
                 for item in sorted(failures, key=lambda item: -item.after) if item.after)


async def campaign_report(db: Database, name: str) -> CampaignReport:
    campaign = await get_campaign(db, name)
    percentiles = await reports.delivery_percentiles(
        db, campaign.id, [fraction for _, fraction in REPORT_PERCENTILES])
    pricing = await reports.by_pricing_category(db, campaign.id)
    countries = await reports.by_country(db, campaign.id)
    timeline = await reports.delivered_and_read_over_time(db, campaign.id, TIMELINE_BUCKETS)
    return CampaignReport(
        name=campaign.name, status=CampaignState(campaign.status), total=campaign.total,
        accepted=campaign.sent + campaign.failed_after, delivered=campaign.delivered,
        read=campaign.read, failed=campaign.failed, failed_after=campaign.failed_after,
        unconfirmed=campaign.unconfirmed, failures=await code_failures(db, campaign.id),
        countries=tuple(CountryFigures(c.region, c.name, c.recipients, c.delivered)
                        for c in countries),
        pricing=tuple(sorted(pricing.items(), key=lambda item: (-item[1], item[0]))),
        deliver_percentiles=tuple((label, percentiles[fraction])
                                  for label, fraction in REPORT_PERCENTILES),
        timeline=tuple(TimePoint(b.start, b.delivered, b.read) for b in timeline),
    )


def report_json(report: CampaignReport) -> dict[str, Any]:
    """What ``watui report --json`` prints (shares 0..1, times in seconds)."""
    return {
        "name": report.name,
        "status": report.status.value,
        "total": report.total,
        "funnel": {
            "accepted": report.accepted,
            "delivered": report.delivered,
            "read": report.read,
            "delivered_share": report.delivered_share,
            "read_share": report.read_share,
        },
        "failed": report.failed,
        "failed_after_acceptance": report.failed_after,
        "unconfirmed": report.unconfirmed,
        "failures_by_code": failures_json(report.failures),
        "by_country": [
            {"region": c.region, "name": c.name, "recipients": c.recipients,
             "delivered": c.delivered}
            for c in report.countries
        ],
        "by_pricing_category": dict(report.pricing),
        "delivery_seconds": dict(report.deliver_percentiles),
        "over_time": [
            {"from": iso_utc(point.at), "delivered": point.delivered, "read": point.read}
            for point in report.timeline
        ],
    }


@dataclass
class CounterSeries:
    """A per-second series from a counter read now and then (the monitor's delivered/s): the
    counter at the end of each second, differenced. No query of its own: it rides on the
    campaign row the monitor reads anyway."""

    seconds: int
    _last_value: dict[int, int] = field(default_factory=dict)

    def record(self, at: float, value: int) -> None:
        second = int(at)
        self._last_value[second] = value
        for old in [s for s in self._last_value if s < second - self.seconds - 1]:
            del self._last_value[old]

    def per_second(self, at: float, count: int) -> tuple[float, ...]:
        """The ``count`` complete seconds before ``at``, oldest first; a second with no
        reading shows 0 and the next reading carries its change."""
        now = int(at)
        readings = sorted(self._last_value.items())
        before = [value for second, value in readings if second < now - count]
        previous = before[-1] if before else None
        in_window = dict(readings)
        values: list[float] = []
        for second in range(now - count, now):
            current = in_window.get(second)
            if current is None:
                values.append(0.0)
                continue
            values.append(float(max(0, current - previous)) if previous is not None else 0.0)
            previous = current
        return tuple(values)


@dataclass
class SlowFigures:
    """The monitor's delivery figures that need a query over deliveries (time to deliver,
    failures by code), recomputed at most every ``every`` seconds: the monitor polls 3-4
    times a second, these change slowly and cost more than a counter read."""

    every: float = 5.0
    _cache: dict[int, tuple[float, DeliveryFigures]] = field(default_factory=dict)

    async def get(self, db: Database, campaign_id: int, now: float) -> DeliveryFigures:
        cached = self._cache.get(campaign_id)
        if cached is not None and now - cached[0] < self.every:
            return cached[1]
        p50, p95 = await deliver_times(db, campaign_id)
        figures = DeliveryFigures(p50, p95, late_errors(await code_failures(db, campaign_id)))
        self._cache[campaign_id] = (now, figures)
        return figures


@dataclass(frozen=True, slots=True)
class DeliveryFigures:
    deliver_p50: float | None
    deliver_p95: float | None
    late_errors: tuple[ErrorCount, ...]
