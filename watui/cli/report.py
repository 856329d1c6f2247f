"""``watui report NAME [--json]``: how a campaign's messages fared once accepted.

The funnel accepted → delivered → read, failures by code (before and after acceptance), by
country, by pricing category, and how long delivery took.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from watui.cli.campaign import print_table, with_database
from watui.cli.errors import EXIT_OK
from watui.cli.status import percent_of
from watui.service.models import CampaignReport
from watui.service.reports import campaign_report, report_json


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("report", help="delivered, read and failed: a campaign's report")
    parser.add_argument("name")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    report = with_database(args, lambda db: campaign_report(db, args.name))
    if args.json:
        print(json.dumps(report_json(report), indent=2))
        return EXIT_OK
    print(f"Campaign {report.name} ({report.status.value}, {report.total:,} recipients)")
    print()
    print_table(["FUNNEL", "MESSAGES", "OF ACCEPTED"], [
        ["accepted", f"{report.accepted:,}", percent_of(report.accepted, report.accepted)],
        ["delivered", f"{report.delivered:,}", percent_of(report.delivered, report.accepted)],
        ["read", f"{report.read:,}", percent_of(report.read, report.accepted)],
    ])
    _print_sections(report)
    return EXIT_OK


def _print_sections(report: CampaignReport) -> None:
    times = ", ".join(f"{label} {_seconds(value)}" for label, value in report.deliver_percentiles)
    print(f"\nTime to deliver: {times}")
    if report.failures:
        print()
        print_table(["CODE", "BEFORE", "AFTER ACCEPTANCE", "MEANING"], [
            ["-" if item.code is None else str(item.code), f"{item.before:,}", f"{item.after:,}",
             item.meaning]
            for item in report.failures
        ])
    if report.countries:
        print()
        print_table(["COUNTRY", "NAME", "RECIPIENTS", "DELIVERED"], [
            [item.region, item.name, f"{item.recipients:,}", f"{item.delivered:,}"]
            for item in report.countries
        ])
    if report.pricing:
        print()
        print_table(["PRICING", "MESSAGES"],
                    [[category, f"{count:,}"] for category, count in report.pricing])


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
