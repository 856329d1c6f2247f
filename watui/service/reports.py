"""Delivery figures with their meanings: the report (``watui report``, the report screen), the
failures by code ``watui status`` prints, and the monitor's slower figures.

Storage aggregates (storage/reports.py); this adds what people read: each code's meaning and
the report's shape. The command line and the UI both call here, so they always agree.
"""

from __future__ import annotations

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
    }
