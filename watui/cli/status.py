"""``watui status NAME [--json]``: where a campaign stands, from its counters and one GROUP BY."""

from __future__ import annotations

import argparse
import json
from typing import Any

from watui.cli.campaign import print_table, with_database
from watui.cli.errors import EXIT_OK
from watui.cli.main import settings_from_args
from watui.service.reports import code_failures, failures_json
from watui.storage.campaigns import campaign_status
from watui.storage.database import Database
from watui.storage.pinning import senders_status
from watui.storage.rows import CampaignStatusReport

#: The summary fields shown as "label: value" lines, in order.
_FIELDS = (
    ("status", "Status"),
    ("total", "Total"),
    ("sent", "Sent"),
    ("failed", "Failed"),
    ("failed_after", "  of which after acceptance"),
    ("delivered", "Delivered"),
    ("read", "Read"),
    ("unconfirmed", "Unconfirmed"),
    ("pending", "Pending"),
    ("retrying", "Retrying"),
    ("in_doubt", "In doubt"),
    ("skipped", "Skipped"),
    ("invalid", "Invalid (rejected at import)"),
    ("paused_reason", "Paused because"),
    ("rate", "Rate (msg/s)"),
    ("senders", "Sender numbers"),
    ("max_retries", "Max retries"),
    ("delays", "Retry delays (s)"),
    ("endpoint", "Endpoint"),
    ("created_at", "Created"),
    ("started_at", "Started"),
    ("finished_at", "Finished"),
    ("start_at", "Starts at"),
    ("send_window", "Send window (local)"),
    ("deadline", "Deadline"),
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("status", help="show a campaign's progress")
    parser.add_argument("name")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    retry_defaults = settings_from_args(args).retry

    configured = settings_from_args(args).whatsapp.phone_number_id

    async def read(db: Database) -> tuple[CampaignStatusReport, dict[str, Any], list[dict[str, Any]]]:
        report = await campaign_status(db, args.name, retry_defaults=retry_defaults)
        senders = await senders_status(db, report.campaign, configured)
        return report, failures_json(await code_failures(db, report.campaign.id)), senders

    report, failures, senders = with_database(args, read)
    summary = report.as_json()
    summary.update(_delivery_figures(report))
    summary["failures_by_code"] = failures
    summary["senders"] = senders
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(f"Campaign {summary['name']}")
    shown = {key: _shown(key, summary[key]) for key, _ in _FIELDS if key in summary}
    shown.update(_retry_policy_shown(summary["retry"]))
    for key in ("delivered", "read"):
        shown[key] += f" ({percent_of(summary[key], summary['sent'])} of sent)"
    width = max(len(label) for _, label in _FIELDS)
    for key, label in _FIELDS:
        print(f"  {label + ':':<{width + 1}} {shown[key]}")
    rows = [
        [
            str(step["position"]),
            f"{step['template']} ({step['language']})",
            f"{step['total']:,}",
            f"{step['by_status'].get('sent', 0):,}",
            f"{step['by_status'].get('failed', 0):,}",
            f"{step['by_status'].get('queued', 0) + step['by_status'].get('retry', 0):,}",
        ]
        for step in summary["steps"]
    ]
    print()
    print_table(["STEP", "TEMPLATE", "TOTAL", "SENT", "FAILED", "WAITING"], rows)
    if failures:
        print()
        print_table(["CODE", "FAILED", "AFTER ACCEPTANCE", "MEANING"], [
            [code, f"{item['count']:,}", f"{item['after_acceptance']:,}", item["meaning"]]
            for code, item in failures.items()
        ])
    return EXIT_OK


def percent_of(part: int, whole: int) -> str:
    """"42.0%", or "-" when there is no whole to take a share of."""
    return f"{part / whole * 100:.1f}%" if whole else "-"


def _delivery_figures(report: CampaignStatusReport) -> dict[str, int]:
    """What status webhooks told: delivered and read count accepted messages (so delivered ≤
    sent), failed_after the failures after acceptance (also in failed)."""
    campaign = report.campaign
    return {"delivered": campaign.delivered, "read": campaign.read,
            "unconfirmed": campaign.unconfirmed, "failed_after": campaign.failed_after}


def _shown(key: str, value: Any) -> str:
    if key == "senders":
        numbers = ", ".join(sender["phone_number_id"] for sender in value if sender["phone_number_id"])
        return numbers or "whatsapp.phone_number_id (from settings)"
    if value is None:
        return "-" if key != "rate" else "from settings"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _retry_policy_shown(policy: dict[str, Any]) -> dict[str, str]:
    """Each half of the retry policy in force, and whether it is the campaign's own."""
    origin = {"campaign": "this campaign's own", "settings": "from settings"}
    delays = ", ".join(f"{delay:g}" for delay in policy["delays"])
    return {
        "max_retries": f"{policy['max_retries']} ({origin[policy['max_retries_from']]})",
        "delays": f"{delays} ({origin[policy['delays_from']]})",
    }
