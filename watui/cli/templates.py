"""``watui templates sync|list``: fetch the WABA's message templates and show the cached ones."""

from __future__ import annotations

import argparse
import json
from typing import Any

from watui.cli.errors import EXIT_OK, CliError
from watui.cli.main import run_async, settings_from_args
from watui.settings import Settings
from watui.storage import Database
from watui.storage.templates import list_templates, store_templates
from watui.whatsapp.client import TemplateListError, WhatsAppClient


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("templates", help="sync and list message templates")
    actions = parser.add_subparsers(dest="templates_action", metavar="ACTION", required=True)
    sync = actions.add_parser("sync", help="fetch every template of the WABA into the database")
    sync.set_defaults(handler=_sync)
    listing = actions.add_parser("list", help="show the approved templates already synced")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)


def _sync(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    _require(settings)
    count = run_async(_fetch_and_store(settings))
    print(f"synced {count} templates")
    return EXIT_OK


def _require(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("whatsapp.access_token", settings.whatsapp.access_token.get_secret_value()),
            ("whatsapp.waba_id", settings.whatsapp.waba_id),
        )
        if not value
    ]
    if missing:
        raise CliError(f"set {' and '.join(missing)} (watui.toml or WATUI_* variables) first")


async def _fetch_and_store(settings: Settings) -> int:
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        try:
            fetched = await client.list_templates()
        except TemplateListError as error:
            raise CliError(str(error)) from None
    async with Database(settings.database_url) as db:
        return await store_templates(db, fetched)


def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    rows = run_async(_load(settings))
    if args.json:
        keys = ("name", "language", "category", "body_param_count", "header_format", "body_text")
        print(json.dumps([{key: row[key] for key in keys} for row in rows], indent=2))
        return EXIT_OK
    if not rows:
        print("no approved templates cached; run 'watui templates sync'")
        return EXIT_OK
    print(f"{'NAME':<28} {'LANG':<8} {'CATEGORY':<12} {'PARAMS':>6} HEADER")
    for row in rows:
        print(
            f"{row['name']:<28} {row['language']:<8} {row['category'] or '':<12} "
            f"{row['body_param_count']:>6} {row['header_format'] or '-'}"
        )
    return EXIT_OK


async def _load(settings: Settings) -> list[dict[str, Any]]:
    async with Database(settings.database_url) as db:
        return await list_templates(db)
