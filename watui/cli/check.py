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
from watui.service.models import CampaignCheck
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
        print("\n".join(check.lines()))
    return EXIT_OK
