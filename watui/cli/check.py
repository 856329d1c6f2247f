"""``watui campaign check NAME [--rate-card FILE] [--json]``: a dry run before anything is sent.

Per step: how many will be sent, how many not and why; MARKETING templates to +1 numbers
(which Meta does not deliver); when the campaign will finish at its rate and within the 24-hour
messaging limit; and, with a rate card, what it will cost. Nothing is sent or written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from watui.cli.errors import EXIT_OK, CliError
from watui.cli.main import run_async, settings_from_args
from watui.errors import CampaignError, RateCardError
from watui.service.checks import check_as_json, check_campaign
from watui.service.models import CampaignCheck, StepCheck
from watui.storage import Database


def register_check(commands: argparse._SubParsersAction[Any]) -> None:
    """Added under ``watui campaign``."""
    checking = commands.add_parser(
        "check", help="dry run: what will be sent or skipped and why, when it ends, its cost"
    )
    checking.add_argument("name")
    checking.add_argument("--rate-card", metavar="FILE", type=Path,
                          help="CSV of prices by calling code and category (docs/rate-card.md)")
    checking.add_argument("--json", action="store_true", help="print JSON instead of text")
    checking.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def run() -> CampaignCheck:
        async with Database(settings.database_url) as db:
            return await check_campaign(db, settings, args.name, args.rate_card, time.time())

    try:
        check = run_async(run())
    except (CampaignError, RateCardError) as error:
        raise CliError(str(error)) from None
    if args.json:
        print(json.dumps(check_as_json(check), indent=2))
    else:
        print("\n".join(check_lines(check)))
    return EXIT_OK


def check_lines(check: CampaignCheck) -> list[str]:
    """The dry run as text, a line each: the CLI prints them, the setup screen shows them."""
    lines = [f"Campaign {check.name}: {check.will_send:,} to send at {check.rate:g} msg/s"]
    lines += [_step_line(step) for step in check.steps]
    lines += [f"  step {s.position}: {s.us_marketing:,} MARKETING to +1 numbers: Meta does not "
              "deliver those" for s in check.steps if s.us_marketing]
    if check.messaging_limit is not None:
        lines.append(f"24-hour messaging limit {check.messaging_limit:,}: {check.limit_used:,} "
                     f"numbers in the window now")
    lines.append(f"Sending takes {_duration(check.send_seconds)} at the rate; finishes "
                 f"{_when(check.finishes_at)}")
    if check.currency is not None:
        lines.append(f"Cost: {check.total_cost} {check.currency}"
                     + (f" ({check.unpriced:,} messages without a price on the card)"
                        if check.unpriced else ""))
    return lines


def _step_line(step: StepCheck) -> str:
    counts = [f"{r.count:,} {r.reason}" for r in (*step.rejected, *step.skipped) if r.count]
    waits = [f"{r.count:,} wait: {r.reason}" for r in step.delayed if r.count]
    not_sent = f"; not sent: {', '.join(counts)}" if counts else ""
    later = f"; {', '.join(waits)}" if waits else ""
    category = f" ({step.category})" if step.category else ""
    return (f"  step {step.position}: {step.template}{category} {step.language}: "
            f"{step.will_send:,} will be sent{not_sent}{later}")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(at: float | None) -> str:
    if at is None:
        return "at once (nothing to send)"
    return time.strftime("at %Y-%m-%d %H:%M %Z", time.localtime(at))
