"""``watui campaign ...``: create (from options or a TOML spec), list, delete, rejects, pause,
resume, cancel."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from watui.cli.check import register_check
from watui.cli.errors import EXIT_OK, CliError
from watui.cli.main import run_async, settings_from_args
from watui.cli.problems import worded
from watui.errors import CampaignError, ContactsError
from watui.rules import BUTTON_SUB_TYPES, ENDPOINT_CHOICES
from watui.storage import Database
from watui.storage.campaigns import (
    cancel_campaign,
    delete_campaign,
    get_campaign,
    list_campaigns,
    list_rejects,
    pause_campaign,
    resume_campaign,
)
from watui.storage.contacts import ButtonParam, ContactsSource
from watui.storage.creation import CreatedCampaign, NewStep, create_campaign
from watui.storage.phones import check_region

T = TypeVar("T")

#: Keys a spec's ``[[steps]]`` table may hold, and what each must be.
_STEP_KEYS = {
    "template": "a string (the template name)",
    "language": 'a string such as "en_US"',
    "contacts": "a string (CSV path, relative to the spec file)",
    "body_params": 'an array of column names, e.g. ["first_name", "order"]',
    "header_param": "a string (column name)",
    "buttons": 'an array of tables, e.g. [{ index = 0, column = "order_link" }]',
    "phone_column": "a string (column name)",
    "default_region": 'a two-letter region code such as "ES"',
}
_REQUIRED_STEP_KEYS = ("template", "language", "contacts")
_TOP_KEYS = (
    "name", "rate", "max_retries", "retry_delays", "senders", "steps", "start_at", "send_window",
    "deadline", "exclude", "endpoint",
)
#: When to send: strings as --start-at, --send-window and --deadline take them (a TOML date-time
#: is taken too).
_SCHEDULE_KEYS = ("start_at", "send_window", "deadline")


@dataclass(frozen=True)
class CampaignRequest:
    """What ``campaign create`` was asked for, from options or a spec; None: the settings'."""

    name: str
    steps: list[NewStep]
    rate: float | None = None
    max_retries: int | None = None
    retry_delays: list[float] | None = None
    senders: list[str] | None = None
    start_at: str | None = None
    send_window: str | None = None
    deadline: str | None = None
    exclude: Path | None = None  # a CSV of numbers this campaign must not message
    endpoint: str | None = None  # "auto", "messages" or "marketing_messages"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("campaign", help="create, list, delete and control campaigns")
    commands = parser.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)
    _register_create(commands)

    listing = commands.add_parser("list", help="list campaigns with their counters")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    deleting = commands.add_parser("delete", help="delete a campaign and everything of it")
    deleting.add_argument("name")
    deleting.set_defaults(handler=_delete)

    rejected = commands.add_parser("rejects", help="import rows that were not queued, and why")
    rejected.add_argument("name")
    rejected.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    rejected.set_defaults(handler=_rejects)

    register_check(commands)

    for action, helptext, handler in (
        ("pause", "pause a campaign (a running sender stops claiming)", _pause),
        ("resume", "resume a paused campaign", _resume),
        ("cancel", "cancel: every queued or retrying recipient is skipped", _cancel),
    ):
        control = commands.add_parser(action, help=helptext)
        control.add_argument("name")
        control.set_defaults(handler=handler)


def _register_create(commands: argparse._SubParsersAction[Any]) -> None:
    create = commands.add_parser(
        "create",
        help="create a campaign and import its contacts",
        description="Create a campaign from options (one step) or from a TOML spec (--spec).",
    )
    create.add_argument("name", nargs="?", help="campaign name (unique)")
    create.add_argument("--spec", metavar="FILE.toml", help="several steps from a TOML spec")
    create.add_argument("--template", metavar="T", help="approved template name")
    create.add_argument("--language", metavar="CODE", help="template language, e.g. en_US")
    create.add_argument("--contacts", metavar="FILE.csv", help="CSV with a header row")
    create.add_argument(
        "--body-params", metavar="COL1,COL2", help="columns for the body's {{1}}, {{2}}, ..."
    )
    create.add_argument("--header-param", metavar="COL", help="column for the header parameter")
    create.add_argument(
        "--button-param", metavar="INDEX:COL[:quick_reply]", action="append", default=[],
        help="column for button INDEX's parameter: a URL button's dynamic suffix, or with "
        ":quick_reply a quick-reply payload (repeat for each button)",
    )
    create.add_argument("--phone-column", metavar="C", default="phone", help="default: phone")
    create.add_argument("--default-region", metavar="XX", help="region for national numbers")
    create.add_argument("--rate", metavar="N", type=float, help="messages/s for this campaign")
    create.add_argument(
        "--max-retries", metavar="N", type=int, help="retries of a transient failure (0-10)"
    )
    create.add_argument(
        "--retry-delays", metavar="S1,S2", help="seconds before each retry, e.g. 5,10"
    )
    create.add_argument(
        "--senders", metavar="ID1,ID2",
        help="phone number IDs that send it, each recipient always from the same one "
        "(default: whatsapp.phone_number_id)",
    )
    create.add_argument("--start-at", metavar="TIME", help="send from then on: ISO 8601 with an "
                        "offset or zone, e.g. 2026-12-07T09:00+01:00 or '2026-12-07T09:00 "
                        "Europe/Madrid'")
    create.add_argument("--send-window", metavar="HH:MM-HH:MM", help="send only within these "
                        "hours of each recipient's local time (zone from the number, or a tz "
                        "column), e.g. 09:00-20:00")
    create.add_argument("--deadline", metavar="TIME", help="pause rather than send after then "
                        "(ISO 8601 with an offset or zone)")
    create.add_argument(
        "--exclude", metavar="FILE.csv", help="numbers (a phone column) this campaign must not message"
    )
    create.add_argument(
        "--endpoint", metavar="E", help=f"where its messages go: {', '.join(ENDPOINT_CHOICES)} "
        "(default auto: MARKETING templates to marketing_messages when whatsapp.marketing_messages)",
    )
    create.set_defaults(handler=_create)


def with_database(
    args: argparse.Namespace, work: Callable[[Database], Awaitable[T]], *, spec: bool = False
) -> T:
    """Open the database from the settings, run ``work``, and turn bad input into CliError,
    naming the option (or with ``spec``, the spec file's key) of each problem."""
    settings = settings_from_args(args)

    async def run() -> T:
        async with Database(settings.database_url) as db:
            return await work(db)

    try:
        return run_async(run())
    except (CampaignError, ContactsError) as error:
        raise CliError(worded(error, spec=spec)) from None


def _create(args: argparse.Namespace) -> int:
    request = _from_spec(args) if args.spec else _from_options(args)
    created = with_database(
        args,
        lambda db: create_campaign(
            db, request.name, request.steps, rate=request.rate,
            max_retries=request.max_retries, retry_delays=request.retry_delays,
            senders=request.senders,
            start_at=request.start_at, send_window=request.send_window, deadline=request.deadline,
            exclude=request.exclude,
            endpoint=request.endpoint,
        ),
        spec=bool(args.spec),
    )  # fmt: skip
    _print_created(created, request.steps)
    return EXIT_OK


def _retry_delays_option(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise CliError(
            f"--retry-delays {value!r} is not a list of seconds: give them separated by commas, "
            "e.g. --retry-delays 5,10"
        ) from None


def _senders_option(value: str | None) -> list[str] | None:
    """``--senders 106540352242922,106540352242923``; each id is checked by the rules."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _from_options(args: argparse.Namespace) -> CampaignRequest:
    missing = [
        option
        for option, value in (
            ("NAME", args.name),
            ("--template", args.template),
            ("--language", args.language),
            ("--contacts", args.contacts),
        )
        if not value
    ]
    if missing:
        raise CliError(
            f"campaign create needs {', '.join(missing)} (or --spec FILE.toml for several steps)"
        )
    body = [col.strip() for col in (args.body_params or "").split(",") if col.strip()]
    source = ContactsSource(
        path=Path(args.contacts),
        phone_column=args.phone_column,
        body_params=tuple(body),
        header_param=args.header_param or None,
        buttons=_button_options(args.button_param),
        default_region=_region(args.default_region),
    )
    return CampaignRequest(
        args.name,
        [NewStep(args.template, args.language, source)],
        rate=args.rate,
        max_retries=args.max_retries,
        retry_delays=_retry_delays_option(args.retry_delays),
        senders=_senders_option(args.senders),
        start_at=args.start_at,
        send_window=args.send_window,
        deadline=args.deadline,
        exclude=Path(args.exclude) if args.exclude else None,
        endpoint=args.endpoint,
    )


def _button_options(values: Sequence[str]) -> tuple[ButtonParam, ...]:
    """``--button-param 0:order_link`` (a URL button), ``1:code:quick_reply`` (a payload)."""
    buttons = []
    for value in values:
        parts = value.split(":")
        if len(parts) not in (2, 3) or not parts[0].strip().isdigit() or not parts[1].strip():
            raise CliError(
                f"--button-param {value!r} is not INDEX:COLUMN: give the button's position in the "
                "template (from 0) and a column, e.g. --button-param 0:order_link"
            )
        sub_type = parts[2].strip() if len(parts) == 3 else "url"
        buttons.append(_button(int(parts[0]), parts[1].strip(), sub_type, f"--button-param {value!r}"))
    return tuple(buttons)


def _button(index: int, column: str, sub_type: str, where: str) -> ButtonParam:
    if sub_type not in BUTTON_SUB_TYPES:
        raise CliError(
            f"{where}: the button kind must be {' or '.join(BUTTON_SUB_TYPES)}, not {sub_type!r}"
        )
    if not 0 <= index <= 9:
        raise CliError(f"{where}: a template has buttons 0 to 9, not {index}")
    return ButtonParam(index, sub_type, column)


def _region(value: str | None) -> str | None:
    try:
        return check_region(value)
    except ContactsError as error:
        raise CliError(str(error)) from None


def _from_spec(args: argparse.Namespace) -> CampaignRequest:
    clashing = [
        option
        for option, value in (
            ("NAME", args.name),
            ("--template", args.template),
            ("--language", args.language),
            ("--contacts", args.contacts),
            ("--body-params", args.body_params),
            ("--header-param", args.header_param),
            ("--button-param", args.button_param),
            ("--default-region", args.default_region),
        )
        if value
    ]
    if clashing:
        raise CliError(f"--spec takes everything from the file: drop {', '.join(clashing)}")
    path = Path(args.spec)
    request = load_spec(_read_spec(path), path)
    # Options given with --spec win over the file's values, like settings on the command line.
    delays = _retry_delays_option(args.retry_delays)
    senders = _senders_option(args.senders)
    return CampaignRequest(
        request.name,
        request.steps,
        rate=request.rate if args.rate is None else args.rate,
        max_retries=request.max_retries if args.max_retries is None else args.max_retries,
        retry_delays=request.retry_delays if delays is None else delays,
        senders=request.senders if senders is None else senders,
        start_at=args.start_at or request.start_at,
        send_window=args.send_window or request.send_window,
        deadline=args.deadline or request.deadline,
        exclude=Path(args.exclude) if args.exclude else request.exclude,
        endpoint=request.endpoint if args.endpoint is None else args.endpoint,
    )


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise CliError(f"spec file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise CliError(f"spec file {path} is not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"spec file {path} cannot be read: {error}") from None


def load_spec(spec: dict[str, Any], path: Path) -> CampaignRequest:
    """The request a parsed spec makes; CliError names the bad key and the fix."""
    where = f"spec file {path}"
    unknown = sorted(set(spec) - set(_TOP_KEYS))
    if unknown:
        raise CliError(
            f"{where}: unknown key {unknown[0]!r}; top-level keys are {', '.join(_TOP_KEYS)}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CliError(f'{where}: missing or empty top-level key "name": add name = "my-campaign"')
    rate = spec.get("rate")
    if rate is not None and not _is_number(rate):
        raise CliError(f"{where}: rate must be a number of messages/s, e.g. rate = 80")
    max_retries = spec.get("max_retries")
    if max_retries is not None and (isinstance(max_retries, bool) or not isinstance(max_retries, int)):
        raise CliError(f"{where}: max_retries must be a whole number, e.g. max_retries = 2")
    retry_delays = spec.get("retry_delays")
    if retry_delays is not None and not (
        isinstance(retry_delays, list) and all(_is_number(delay) for delay in retry_delays)
    ):
        raise CliError(
            f"{where}: retry_delays must be an array of seconds, e.g. retry_delays = [5, 10]"
        )
    senders = spec.get("senders")
    if senders is not None and not (
        isinstance(senders, list) and all(isinstance(sender, str) for sender in senders)
    ):
        raise CliError(
            f'{where}: senders must be an array of phone number IDs as strings, e.g. '
            'senders = ["106540352242922", "106540352242923"]'
        )
    endpoint = spec.get("endpoint")
    if endpoint is not None and not isinstance(endpoint, str):
        raise CliError(f'{where}: endpoint must be a string, e.g. endpoint = "marketing_messages"')
    tables = spec.get("steps")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise CliError(
            f"{where}: needs at least one [[steps]] table with template, language and contacts"
        )
    steps = [_spec_step(table, i, path) for i, table in enumerate(tables, 1)]
    start_at, send_window, deadline = (_spec_text(spec, key, where) for key in _SCHEDULE_KEYS)
    return CampaignRequest(
        name, steps, rate, max_retries, retry_delays, senders, start_at, send_window, deadline,
        _spec_exclude(spec, path), endpoint,
    )


def _spec_text(spec: dict[str, Any], key: str, where: str) -> str | None:
    """A schedule key as text: a string, or a TOML date-time (as ISO 8601)."""
    value = spec.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    raise CliError(f'{where}: {key} must be a string, e.g. {key} = "{_SCHEDULE_EXAMPLES[key]}"')


_SCHEDULE_EXAMPLES = {
    "start_at": "2026-12-07T09:00+01:00",
    "send_window": "09:00-20:00",
    "deadline": "2026-12-08T20:00 Europe/Madrid",
}


def _spec_exclude(spec: dict[str, Any], path: Path) -> Path | None:
    """``exclude = "do-not-contact.csv"``, relative to the spec file like the contacts."""
    value = spec.get("exclude")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CliError(f'spec file {path}: exclude must be a CSV path, e.g. exclude = "opted-out.csv"')
    exclude = Path(value).expanduser()
    return exclude if exclude.is_absolute() else path.parent / exclude


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _spec_step(table: dict[str, Any], number: int, path: Path) -> NewStep:
    where = f"spec file {path}, step {number}"
    unknown = sorted(set(table) - set(_STEP_KEYS))
    if unknown:
        raise CliError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(_STEP_KEYS)}")
    for key in _REQUIRED_STEP_KEYS:
        if key not in table:
            raise CliError(f"{where}: missing key {key!r}: add {key} = {_STEP_KEYS[key]}")
    for key, value in table.items():
        if key == "buttons":
            good = isinstance(value, list) and all(isinstance(v, dict) for v in value)
        elif key == "body_params":
            good = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        else:
            good = isinstance(value, str) and bool(value.strip())
        if not good:
            raise CliError(f"{where}: {key} must be {_STEP_KEYS[key]}")
    contacts = Path(table["contacts"]).expanduser()
    if not contacts.is_absolute():
        contacts = path.parent / contacts
    source = ContactsSource(
        path=contacts,
        phone_column=table.get("phone_column", "phone"),
        body_params=tuple(table.get("body_params", ())),
        header_param=table.get("header_param"),
        buttons=_spec_buttons(table.get("buttons", []), where),
        default_region=_region(table.get("default_region")),
    )
    return NewStep(table["template"], table["language"], source)


def _spec_buttons(tables: list[dict[str, Any]], where: str) -> tuple[ButtonParam, ...]:
    """``buttons = [{ index = 0, column = "order_link" }, { index = 1, column = "code",
    sub_type = "quick_reply" }]``"""
    buttons = []
    for number, table in enumerate(tables, 1):
        here = f"{where}, button {number}"
        unknown = sorted(set(table) - {"index", "column", "sub_type"})
        if unknown:
            raise CliError(f"{here}: unknown key {unknown[0]!r}; allowed: index, column, sub_type")
        index, column = table.get("index"), table.get("column")
        if isinstance(index, bool) or not isinstance(index, int):
            raise CliError(f"{here}: index must be the button's position in the template, e.g. index = 0")
        if not isinstance(column, str) or not column.strip():
            raise CliError(f'{here}: column must name a column of the contacts, e.g. column = "order_link"')
        sub_type = table.get("sub_type", "url")
        buttons.append(_button(index, column.strip(), str(sub_type), here))
    return tuple(buttons)


def _print_created(created: CreatedCampaign, step_specs: Sequence[NewStep]) -> None:
    count = len(created.steps)
    print(f"Created campaign {created.name!r} ({count} step{'s' if count != 1 else ''}, draft)")
    rows = [
        [
            str(position),
            f"{spec.template} ({spec.language})",
            str(spec.contacts.path),
            f"{counts.queued:,}",
            f"{counts.invalid:,}",
            f"{counts.duplicates:,}",
            f"{counts.suppressed:,}",
            f"{counts.excluded:,}",
        ]
        for position, (spec, counts) in enumerate(zip(step_specs, created.steps, strict=True), 1)
    ]
    print_table(["STEP", "TEMPLATE", "CONTACTS", "QUEUED", "INVALID", "DUPLICATES", "SUPPRESSED",
                 "EXCLUDED"], rows)  # fmt: skip
    print(
        f"Total: {created.queued:,} queued, {created.invalid:,} invalid, "
        f"{created.duplicates:,} duplicates, {created.suppressed:,} suppressed, "
        f"{created.excluded:,} excluded"
    )
    if created.rejected:
        print(f"See why with: watui campaign rejects {_quoted(created.name)}")


def _quoted(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else repr(name)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; numbers (and their headers) right-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(_looks_numeric(row[i]) for row in rows) for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))


def _looks_numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").replace("-", "").isdigit() or cell == "-"


def _list(args: argparse.Namespace) -> int:
    summaries = [campaign.summary() for campaign in with_database(args, list_campaigns)]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return EXIT_OK
    if not summaries:
        print("No campaigns yet: create one with 'watui campaign create'.")
        return EXIT_OK
    rows = [
        [
            s["name"],
            s["status"],
            f"{s['total']:,}",
            f"{s['sent']:,}",
            f"{s['failed']:,}",
            f"{s['pending']:,}",
            f"{s['invalid']:,}",
            (s["created_at"] or "-").replace("T", " ").rstrip("Z"),
        ]
        for s in summaries
    ]
    print_table(
        ["NAME", "STATUS", "TOTAL", "SENT", "FAILED", "PENDING", "INVALID", "CREATED (UTC)"], rows
    )
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with_database(args, lambda db: delete_campaign(db, args.name))
    print(f"Deleted campaign {args.name!r}.")
    return EXIT_OK


def _rejects(args: argparse.Namespace) -> int:
    found = with_database(args, lambda db: list_rejects(db, args.name))
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["step", "line", "phone", "reason"])
        for reject in found:
            writer.writerow(
                [reject.step, reject.line, reject.phone or "", reject.reason]
            )
        return EXIT_OK
    if not found:
        print(f"Campaign {args.name!r} has no rejected rows.")
        return EXIT_OK
    rows = [[str(r.step), str(r.line), r.phone or "", r.reason] for r in found]
    print_table(["STEP", "LINE", "PHONE", "REASON"], rows)
    print(f"{len(found):,} rejected row{'s' if len(found) != 1 else ''}.")
    return EXIT_OK


def _control(args: argparse.Namespace, act: Callable[[Database, int], Awaitable[Any]]) -> Any:
    async def by_name(db: Database) -> Any:
        campaign = await get_campaign(db, args.name)
        return await act(db, campaign.id)

    return with_database(args, by_name)


def _pause(args: argparse.Namespace) -> int:
    _control(args, lambda db, cid: pause_campaign(db, cid, "paused from the command line"))
    print(f"Paused campaign {args.name!r}.")
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    _control(args, resume_campaign)
    print(f"Resumed campaign {args.name!r}.")
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    skipped = _control(args, cancel_campaign)
    print(f"Cancelled campaign {args.name!r}: {skipped:,} recipients skipped.")
    return EXIT_OK
