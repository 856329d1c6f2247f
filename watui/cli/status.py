"""``watui status NAME [--json]``: where a campaign stands, from its counters and one GROUP BY."""

from __future__ import annotations

import argparse
import json
from typing import Any

from watui.cli.campaign import print_table, with_database
from watui.cli.errors import EXIT_OK
from watui.cli.main import settings_from_args
from watui.storage.campaigns import campaign_status

#: The summary fields shown as "label: value" lines, in order.
_FIELDS = (
    ("status", "Status"),
    ("total", "Total"),
    ("sent", "Sent"),
    ("failed", "Failed"),
    ("pending", "Pending"),
    ("retrying", "Retrying"),
    ("in_doubt", "In doubt"),
    ("skipped", "Skipped"),
    ("invalid", "Invalid (rejected at import)"),
    ("paused_reason", "Paused because"),
    ("rate", "Rate (msg/s)"),
    ("max_retries", "Max retries"),
    ("delays", "Retry delays (s)"),
    ("created_at", "Created"),
    ("started_at", "Started"),
    ("finished_at", "Finished"),
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("status", help="show a campaign's progress")
    parser.add_argument("name")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    retry_defaults = settings_from_args(args).retry
    report = with_database(
        args, lambda db: campaign_status(db, args.name, retry_defaults=retry_defaults)
    )
    summary = report.as_json()
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(f"Campaign {summary['name']}")
    shown = {key: _shown(key, summary[key]) for key, _ in _FIELDS if key in summary}
    shown.update(_retry_policy_shown(summary["retry"]))
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
    return EXIT_OK


def _shown(key: str, value: Any) -> str:
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
