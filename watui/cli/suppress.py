"""``watui suppress ...``: the suppression list (numbers no campaign may message): add, remove,
import a CSV, list, export."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from watui.cli.campaign import print_table, with_database
from watui.cli.errors import EXIT_OK, CliError
from watui.errors import BackendError, ContactsError, InvalidPhone
from watui.service import suppressions as service
from watui.storage import Database
from watui.storage.phones import check_region
from watui.storage.rows import iso_utc
from watui.storage.suppressions import SuppressResult, list_suppressions

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "suppress", help="the suppression list: numbers no campaign may message",
        description="Numbers on the list are not queued by an import and skipped if already "
        "queued; marketing-only ones are skipped for MARKETING templates only.",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="suppress_command", metavar="ACTION", required=True)

    adding = commands.add_parser("add", help="suppress numbers")
    adding.add_argument("phones", nargs="+", metavar="PHONE")
    _entry_options(adding)
    adding.set_defaults(handler=_add)

    removing = commands.add_parser("remove", help="take numbers off the list")
    removing.add_argument("phones", nargs="+", metavar="PHONE")
    removing.add_argument("--default-region", metavar="XX", help="region for national numbers")
    removing.set_defaults(handler=_remove)

    importing = commands.add_parser("import", help="suppress every number of a CSV file")
    importing.add_argument("file", metavar="FILE.csv", help="CSV with a header row and a phone column")
    importing.add_argument("--phone-column", metavar="C", default="phone", help="default: phone")
    _entry_options(importing)
    importing.set_defaults(handler=_import)

    listing = commands.add_parser("list", help="list the suppressed numbers, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    exporting = commands.add_parser("export", help="write the list as CSV (importable again)")
    exporting.add_argument("file", nargs="?", metavar="FILE", help="default: standard output")
    exporting.set_defaults(handler=_export)


def _entry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="TEXT", help="a note kept with each entry")
    parser.add_argument(
        "--marketing-only", action="store_true",
        help="stop MARKETING templates only (utility and authentication still go)",
    )  # fmt: skip
    parser.add_argument("--default-region", metavar="XX", help="region for national numbers")


def _with_database(args: argparse.Namespace, work: Callable[[Database], Awaitable[T]]) -> T:
    """``campaign``'s database runner, with a bad number or file as one line too."""
    try:
        return with_database(args, work)
    except (InvalidPhone, BackendError) as error:
        raise CliError(str(error)) from None


def _region(args: argparse.Namespace) -> str | None:
    try:
        return check_region(args.default_region)
    except ContactsError as error:
        raise CliError(str(error)) from None


def _add(args: argparse.Namespace) -> int:
    region = _region(args)
    result = _with_database(args, lambda db: service.add_numbers(
        db, args.phones, marketing_only=args.marketing_only, note=args.reason, default_region=region))
    print(_summary(result))
    return EXIT_OK


def _summary(result: SuppressResult) -> str:
    plural = "s" if result.added != 1 else ""
    return (f"suppressed {result.added:,} number{plural} ({result.already:,} already on the "
            f"list); {result.skipped:,} queued recipients skipped")


def _remove(args: argparse.Namespace) -> int:
    region = _region(args)
    removed = _with_database(args, lambda db: service.remove_numbers(db, args.phones, region))
    print(f"removed {removed:,} of {len(args.phones):,} from the list")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    region = _region(args)
    done = _with_database(args, lambda db: service.import_file(
        db, Path(args.file), phone_column=args.phone_column, default_region=region,
        marketing_only=args.marketing_only, note=args.reason))
    for bad in done.bad:
        print(f"{args.file} line {bad.line}: {bad.reason} (not imported)", file=sys.stderr)
    print(_summary(done.result) + (f"; {len(done.bad):,} bad rows not imported" if done.bad else ""))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    entries = _with_database(args, list_suppressions)
    if args.json:
        print(json.dumps([entry.as_json() for entry in entries], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not entries:
        print("No suppressed numbers.")
        return EXIT_OK
    rows = [[e.phone, e.scope, e.reason, e.detail or "", (iso_utc(e.created_at) or "").replace("T", " ")]
            for e in entries]  # fmt: skip
    print_table(["PHONE", "SCOPE", "REASON", "DETAIL", "SINCE (UTC)"], rows)
    print(f"{len(entries):,} suppressed number{'s' if len(entries) != 1 else ''}.")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    if args.file is None:
        _with_database(args, lambda db: service.write_csv(db, sys.stdout))
        return EXIT_OK
    written = _with_database(args, lambda db: service.export_to_file(db, Path(args.file)))
    print(f"wrote {written:,} numbers to {args.file}", file=sys.stderr)
    return EXIT_OK
