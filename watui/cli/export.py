"""``watui export NAME [--format csv|jsonl] [--status S] [--output FILE]``: every recipient with
what became of its message, streamed (constant memory at millions of rows)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from watui.cli.campaign import with_database
from watui.cli.errors import EXIT_OK, CliError
from watui.errors import BackendError
from watui.service.exports import (
    EXPORT_FORMATS,
    export_format,
    export_status,
    export_to_file,
    write_export,
)
from watui.storage.campaigns import get_campaign
from watui.storage.database import Database


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("export", help="every recipient and its delivery, as CSV or JSONL")
    parser.add_argument("name")
    parser.add_argument("--format", default="csv", help=f"one of {', '.join(EXPORT_FORMATS)}")
    parser.add_argument("--status", help="only recipients in this status (e.g. failed)")
    parser.add_argument("--output", metavar="FILE", help="write here (default: standard output)")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    try:
        file_format = export_format(args.format)
        statuses = None if args.status is None else [export_status(args.status)]
    except BackendError as error:
        raise CliError(str(error)) from None

    async def work(db: Database) -> int:
        campaign = await get_campaign(db, args.name)
        if args.output is None:
            return await write_export(db, campaign.id, sys.stdout, file_format, statuses)
        return await export_to_file(db, campaign.id, args.output, file_format, statuses)

    try:
        written = with_database(args, work)
    except BackendError as error:
        raise CliError(str(error)) from None
    if args.output is not None:
        print(f"{written:,} recipients written to {args.output}", file=sys.stderr)
    return EXIT_OK
