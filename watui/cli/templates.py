"""``watui templates sync|list``: cache the account's message templates for setup and checks."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from watui.cli.account import require_account
from watui.cli.errors import CliError

if TYPE_CHECKING:
    from watui.storage.rows import TemplateRecord


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("templates", help="sync or list the account's message templates")
    commands = parser.add_subparsers(dest="templates_command", metavar="COMMAND", required=True)
    sync = commands.add_parser("sync", help="fetch every template from the Cloud API into the cache")
    sync.set_defaults(handler=_sync)
    listing = commands.add_parser("list", help="list the cached templates")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--all", action="store_true", help="include templates that are not approved")
    listing.set_defaults(handler=_list)


def _sync(args: argparse.Namespace) -> int:
    from watui.cli.main import settings_from_args

    settings = settings_from_args(args)
    require_account(settings)
    count = asyncio.run(_sync_async(settings))
    print(f"synced {count} templates")
    return 0


async def _sync_async(settings: Any) -> int:
    from watui.errors import ApiUnavailable, TokenRefused
    from watui.storage import templates as template_store
    from watui.storage.database import Database
    from watui.whatsapp.client import WhatsAppClient

    client = WhatsAppClient(settings.whatsapp, settings.http)
    async with Database(settings.database_url) as db, client:
        try:
            return await template_store.sync_templates(db, client)
        except TokenRefused as error:
            raise CliError(f"{error}: check whatsapp.access_token") from None
        except ApiUnavailable as error:
            raise CliError(str(error)) from None


def _list(args: argparse.Namespace) -> int:
    from watui.cli.main import settings_from_args

    settings = settings_from_args(args)
    rows = asyncio.run(_list_async(settings.database_url, approved_only=not args.all))
    if args.json:
        keys = ("name", "language", "status", "category", "body_param_count", "header_format", "body_text")
        print(json.dumps([{key: getattr(row, key) for key in keys} for row in rows], indent=2))
        return 0
    if not rows:
        print("no templates cached: run 'watui templates sync'")
        return 0
    for row in rows:
        print(f"{row.name:<28} {row.language:<7} {row.status:<9} "
              f"{row.body_param_count} params  {(row.body_text or '')[:60]}")
    return 0


async def _list_async(url: str, *, approved_only: bool) -> list[TemplateRecord]:
    from watui.storage import templates as template_store
    from watui.storage.database import Database

    async with Database(url) as db:
        return await template_store.list_templates(db, approved_only=approved_only)
