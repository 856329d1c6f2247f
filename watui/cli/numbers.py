"""``watui numbers [--json]``: the business account's phone numbers and their health.

Asks the Graph API, records what it said where the engine and the UI read it (number_health),
and prints each number's display number, verified name, quality rating, throughput level (with
the rate it allows) and messaging limit.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any

from watui.cli.account import require_account
from watui.cli.campaign import print_table
from watui.cli.errors import EXIT_OK, CliError
from watui.cli.main import run_async, settings_from_args
from watui.engine.number_health import refresh_numbers
from watui.errors import AccountNotFound, ApiUnavailable, TokenRefused
from watui.rules import throughput_rate
from watui.settings import Settings
from watui.storage.database import Database
from watui.whatsapp.client import WhatsAppClient
from watui.whatsapp.numbers import PhoneNumber, list_phone_numbers


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "numbers", help="list the account's phone numbers: quality, throughput, messaging limit"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_numbers)


def _numbers(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    require_account(settings)
    numbers = run_async(_listed(settings))
    if args.json:
        print(json.dumps([_as_json(number) for number in numbers], indent=2))
        return EXIT_OK
    if not numbers:
        print(f"The business account {settings.whatsapp.waba_id} has no phone numbers.")
        return EXIT_OK
    print_table(
        ["ID", "NUMBER", "NAME", "QUALITY", "THROUGHPUT", "MESSAGING LIMIT"],
        [
            [
                number.id, number.display_phone_number, number.verified_name or "-",
                number.quality_rating or "-", _throughput_shown(number.throughput_level),
                number.messaging_limit or "-",
            ]
            for number in numbers
        ],
    )  # fmt: skip
    return EXIT_OK


async def _listed(settings: Settings) -> list[PhoneNumber]:
    client = WhatsAppClient(settings.whatsapp, settings.http)
    async with Database(settings.database_url) as db, client:
        try:
            return await refresh_numbers(db, partial(list_phone_numbers, client))
        except TokenRefused as error:
            raise CliError(f"{error}: check whatsapp.access_token") from None
        except (AccountNotFound, ApiUnavailable) as error:
            raise CliError(str(error)) from None


def _throughput_shown(level: str | None) -> str:
    rate = throughput_rate(level)
    if rate is None:
        return level or "-"
    return f"{level} ({rate:,.0f} msg/s)"


def _as_json(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.id,
        "display_phone_number": number.display_phone_number,
        "verified_name": number.verified_name,
        "quality_rating": number.quality_rating,
        "throughput_level": number.throughput_level,
        "rate": throughput_rate(number.throughput_level),
        "messaging_limit": number.messaging_limit,
    }
