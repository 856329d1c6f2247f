"""Streaming CSV import: contacts file -> recipients (queued) and rejects, one step at a time.

The file is read row by row and written in large executemany batches, so memory stays flat
whatever the file size; only the set of phone numbers already seen (for duplicates) grows.
Every row that is not queued becomes a reject with its line number and reason: nothing is
dropped silently. The caller owns the transaction, so a file that fails half-way leaves nothing.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberDesc,
    PhoneNumberFormat,
)
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.errors import ContactsError, InvalidPhone
from watui.storage.schema import RecipientStatus, recipients, rejects

#: Rows per executemany: large enough to amortise the round trip, small enough to stay light.
BATCH_ROWS = 5_000
#: A field longer than this is a broken file (or not a contacts file); the row is rejected.
MAX_FIELD_CHARS = 64 * 1024
#: Enough bytes to tell binary data from text before parsing.
SNIFF_BYTES = 8192
#: The reject keeps this much of a raw phone value, for people to recognise it.
MAX_RAW_PHONE_CHARS = 64

#: Header guesses for a media header parameter taken from a URL's extension.
_MEDIA_EXTENSIONS = {
    "image": (".jpg", ".jpeg", ".png", ".webp"),
    "video": (".mp4", ".3gp"),
}

csv.field_size_limit(MAX_FIELD_CHARS)



#: The button kinds whose parameter comes from a column: a dynamic URL's suffix, or the payload
#: a quick reply sends back.
BUTTON_SUB_TYPES = ("url", "quick_reply")


@dataclass(frozen=True)
class ButtonParam:
    """A dynamic button parameter taken from a column (URL suffix or quick-reply payload)."""

    index: int
    sub_type: str
    column: str


@dataclass(frozen=True)
class ContactsSource:
    """One step's contacts file and how its columns map to the template's parameters."""

    path: Path
    phone_column: str = "phone"
    body_params: tuple[str, ...] = ()
    header_param: str | None = None
    buttons: tuple[ButtonParam, ...] = ()
    default_region: str | None = None

    def __post_init__(self) -> None:
        # In index order once, here: the stored mapping and every request follow it.
        object.__setattr__(self, "buttons", tuple(sorted(self.buttons, key=lambda b: b.index)))

    def mapped_columns(self) -> list[tuple[str, str]]:
        """(column, what it feeds) for every parameter column, in template order."""
        mapped = [(col, f"body parameter {{{{{i}}}}}") for i, col in enumerate(self.body_params, 1)]
        if self.header_param:
            mapped.append((self.header_param, "header parameter"))
        mapped.extend((b.column, f"button {b.index} parameter") for b in self.buttons)
        return mapped


@dataclass
class ImportCounts:
    """What one step's import did: every data row is exactly one of queued/invalid/duplicate."""

    queued: int = 0
    invalid: int = 0
    duplicates: int = 0
    #: Guessed from the first header value when the template was not synced ("text", "image"...).
    header_format: str | None = None


@dataclass
class _Layout:
    """Where each needed column sits in a row of this file."""

    width: int
    phone: int
    body: list[int]
    header: int | None
    buttons: list[tuple[ButtonParam, int]]



class PhoneNormaliser:
    """Turns the phone numbers people type into E.164, fast for numbers already in E.164.

    Most contact exports already hold ``+<digits>``; for those the country code is split off by
    hand and validity is checked with precompiled rules (``_CountryRules``): phonenumbers' own
    parse and check would otherwise be most of a large import's time. Anything else, and any
    number the fast path cannot vouch for, goes through phonenumbers' full parser.
    """

    def __init__(self, default_region: str | None = None) -> None:
        self.default_region = check_region(default_region)

    def to_e164(self, raw: str) -> str:
        if raw[:1] == "+" and raw[1:2] != "0" and raw[1:].isdigit() and raw.isascii():
            fast = self._e164_fast(raw)
            if fast is not None:
                return fast
        return self._e164_full(raw)

    @staticmethod
    def _e164_fast(raw: str) -> str | None:
        """The number itself when it is valid E.164; None when the full parser must decide."""
        digits = raw[1:]
        for length in (1, 2, 3):
            code = int(digits[:length])
            if code in COUNTRY_CODE_TO_REGION_CODE:
                national = digits[length:]
                # Leading zeros (Italy and others) need the parser's special handling.
                if not national or national[0] == "0" or len(digits) > 15:
                    return None
                rules = _country_rules(code)
                if rules.parser_would_rewrite(national):
                    return None
                return raw if rules.is_valid(code, national) else None
        return None

    def _e164_full(self, raw: str) -> str:
        try:
            number = phonenumbers.parse(raw, self.default_region)
        except NumberParseException as error:
            if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
                if self.default_region is None and not raw.startswith(("+", "00")):
                    raise InvalidPhone(
                        f"phone {raw!r} has no country code: write it as +<country code><number> "
                        "or give a default region (--default-region)"
                    ) from None
                raise InvalidPhone(f"phone {raw!r} has an unknown country code") from None
            raise InvalidPhone(f"phone {raw!r} is not a phone number") from None
        if not phonenumbers.is_valid_number(number):
            where = f" (default region {self.default_region})" if self.default_region else ""
            raise InvalidPhone(f"phone {raw!r} is not a valid phone number{where}")
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@dataclass(frozen=True)
class _CountryRules:
    """phonenumbers' validity rules for one country calling code, compiled once.

    phonenumbers calls a number valid when it matches the general description and at least one
    type (fixed line, mobile, toll free...), each with its own allowed lengths. Here the type
    patterns allowed at each length are joined into one regex, so a check is two regex calls
    instead of up to ten lookups and matches; a test compares the answers with
    ``phonenumbers.is_valid_number``. Codes shared by several regions (+1, +7, +44...) defer
    to phonenumbers itself.
    """

    general_lengths: frozenset[int]
    general: re.Pattern[str] | None
    types_by_length: dict[int, re.Pattern[str]]
    national_prefix: re.Pattern[str] | None
    single_region: bool

    def parser_would_rewrite(self, national: str) -> bool:
        """True when phonenumbers.parse might strip a national prefix from these digits."""
        if self.national_prefix is None:
            return False
        match = self.national_prefix.match(national)
        return match is not None and (match.end() > 0 or any(match.groups()))

    def is_valid(self, code: int, national: str) -> bool:
        if not self.single_region:
            number = PhoneNumber(country_code=code, national_number=int(national))
            return bool(phonenumbers.is_valid_number(number))
        length = len(national)
        if self.general is None or (self.general_lengths and length not in self.general_lengths):
            return False
        types = self.types_by_length.get(length)
        return (
            types is not None
            and self.general.fullmatch(national) is not None
            and types.fullmatch(national) is not None
        )


#: National significant numbers are at most 17 digits (phonenumbers' MAX_LENGTH_FOR_NSN).
_MAX_NSN_LENGTH = 17


@functools.cache
def _country_rules(code: int) -> _CountryRules:
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if metadata is None:
        return _CountryRules(frozenset(), None, {}, None, single_region=False)
    kinds = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(metadata.mobile)
    general = metadata.general_desc
    prefix = metadata.national_prefix_for_parsing
    return _CountryRules(
        general_lengths=frozenset(general.possible_length or ()) if general else frozenset(),
        general=_pattern_of(general),
        types_by_length=_types_by_length(kinds),
        national_prefix=re.compile(prefix) if prefix else None,
        single_region=len(regions) == 1 and regions[0] != "001",
    )


def _pattern_of(desc: PhoneNumberDesc | None) -> re.Pattern[str] | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return re.compile(desc.national_number_pattern)


def _types_by_length(kinds: Sequence[PhoneNumberDesc | None]) -> dict[int, re.Pattern[str]]:
    """For each length, one regex matching exactly the numbers some type allows at it."""
    by_length: dict[int, list[str]] = {}
    for desc in kinds:
        if desc is None or not desc.national_number_pattern:
            continue
        # No lengths listed means "as the general description", checked before.
        lengths = desc.possible_length or range(1, _MAX_NSN_LENGTH + 1)
        for length in lengths:
            by_length.setdefault(length, []).append(desc.national_number_pattern)
    return {
        length: re.compile("|".join(f"(?:{pattern})" for pattern in patterns))
        for length, patterns in by_length.items()
    }


def check_region(region: str | None) -> str | None:
    """The region code in upper case, or ContactsError saying what a region code looks like."""
    if region is None or region == "":
        return None
    upper = region.strip().upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ContactsError(
            f"default region {region!r} is not a known region code: use two letters such as "
            "ES, US, GB or BR"
        )
    return upper


class ContactsReader:
    """An open contacts file: header checked on open, then data rows with their line numbers."""

    def __init__(self, source: ContactsSource) -> None:
        self.source = source
        self.path = source.path
        self._handle = _open_text(self.path)
        try:
            header_line = self._read_first_line()
            self.delimiter = _guess_delimiter(header_line)
            self._handle.seek(0)
            self._reader = csv.reader(self._handle, delimiter=self.delimiter)
            self.header = self._read_header()
            self.layout = self._locate_columns()
        except BaseException:
            self._handle.close()
            raise

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ContactsReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read_first_line(self) -> str:
        try:
            return self._handle.readline(MAX_FIELD_CHARS)
        except UnicodeDecodeError:
            raise ContactsError(
                f"contacts file {self.path} is not UTF-8 text: save it as UTF-8 CSV"
            ) from None

    def _read_header(self) -> list[str]:
        try:
            header = next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as error:
            raise ContactsError(
                f"contacts file {self.path} has an unreadable header: {error}"
            ) from None
        if not header or not any(name.strip() for name in header):
            raise ContactsError(
                f"contacts file {self.path} is empty: the first line must be a header row "
                "naming the columns (e.g. phone,first_name)"
            )
        return [name.strip() for name in header]

    def _locate_columns(self) -> _Layout:
        src = self.source
        phone = self._column_index(src.phone_column, "phone column (--phone-column)")
        return _Layout(
            width=len(self.header),
            phone=phone,
            body=[self._column_index(col, "body parameter column") for col in src.body_params],
            header=self._column_index(src.header_param, "header parameter column")
            if src.header_param
            else None,
            buttons=[(b, self._column_index(b.column, "button column")) for b in src.buttons],
        )

    def _column_index(self, wanted: str, role: str) -> int:
        """Exact header match first, then a unique case-insensitive one."""
        if wanted in self.header:
            return self.header.index(wanted)
        folded = [i for i, name in enumerate(self.header) if name.casefold() == wanted.casefold()]
        if len(folded) == 1:
            return folded[0]
        shown = ", ".join(repr(name) for name in self.header[:12])
        more = ", ..." if len(self.header) > 12 else ""
        hint = ""
        if len(self.header) == 1:
            hint = "; is it a comma- or semicolon-separated file with a header row?"
        raise ContactsError(
            f"contacts file {self.path} has no {wanted!r} column for the {role} "
            f"(columns: {shown}{more}){hint}"
        )

    def rows(self) -> Iterator[tuple[int, list[str] | None, str | None]]:
        """(line number, fields, None) per data row, or (line, None, reason) for a broken row.

        The line number is where the row starts (the header is line 1); blank lines are skipped.
        """
        reader = self._reader
        last_line = reader.line_num
        while True:
            start = last_line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                last_line = reader.line_num
                yield start, None, _csv_reason(error)
                continue
            except UnicodeDecodeError:
                raise ContactsError(
                    f"contacts file {self.path} is not UTF-8 text (undecodable bytes near line "
                    f"{reader.line_num + 1}): save it as UTF-8 CSV"
                ) from None
            last_line = reader.line_num
            if row:
                yield start, row, None


def _guess_delimiter(header_line: str) -> str:
    """Semicolon when the header has more semicolons than commas outside quotes (spreadsheets
    in many locales export that way); a quoted column name holding a semicolon does not count."""
    outside = {",": 0, ";": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in outside:
            outside[char] += 1
    return ";" if outside[";"] > outside[","] else ","


def _csv_reason(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return f"a field is longer than {MAX_FIELD_CHARS} characters"
    return f"malformed CSV row: {error}"


def _open_text(path: Path) -> TextIO:
    """Open as UTF-8 (BOM or not, any newline style), refusing files that are not text."""
    try:
        with path.open("rb") as raw:
            head = raw.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise ContactsError(f"contacts file {path} does not exist") from None
    except IsADirectoryError:
        raise ContactsError(f"contacts file {path} is a directory, not a CSV file") from None
    except OSError as error:
        raise ContactsError(f"contacts file {path} cannot be read: {error.strerror}") from None
    if b"\x00" in head:
        raise ContactsError(
            f"contacts file {path} is binary data, not a CSV text file (export it as CSV, UTF-8)"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the sniff window is fine; anything else is not UTF-8.
        if len(head) < SNIFF_BYTES or error.start < len(head) - 3:
            raise ContactsError(
                f"contacts file {path} is not UTF-8 text: save it as UTF-8 CSV"
            ) from None
    return path.open("r", encoding="utf-8-sig", newline="")


#: Every recipient column the import writes, in table order (as its tuples are); the rest
#: (lease, wamid, errors, sent_at) stay NULL.
_RECIPIENT_COLUMNS = (
    "campaign_id", "step_id", "line_no", "phone", "params", "status",
    "attempts", "next_attempt_at", "possibly_sent", "updated_at",
)  # fmt: skip
_QUEUED = RecipientStatus.QUEUED.value
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

BatchInsert = Callable[[list[tuple[Any, ...]]], Awaitable[None]]


async def _batch_insert(conn: AsyncConnection, columns: Sequence[str]) -> BatchInsert:
    """A bulk insert of plain tuples: SQLAlchemy's per-row dict handling is most of the cost.

    PostgreSQL gets COPY (several times faster than INSERT) on the transaction's own
    connection; SQLite gets an executemany of a statement compiled once.
    """
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection  # the asyncpg connection, inside our transaction
        assert driver is not None

        async def copy_tuples(rows: list[tuple[Any, ...]]) -> None:
            await driver.copy_records_to_table(recipients.name, records=rows, columns=list(columns))

        return copy_tuples
    compiled = insert(recipients).compile(dialect=conn.dialect, column_keys=list(columns))
    # sqlite3 binds positionally (qmark), in table column order, the order of ``columns``.
    assert compiled.positional and list(compiled.positiontup or ()) == list(columns)
    sql = str(compiled)

    async def insert_tuples(rows: list[tuple[Any, ...]]) -> None:
        await conn.exec_driver_sql(sql, rows)

    return insert_tuples


class _StepImport:
    """Holds the state of one step's import: the batches, the phones seen, the counts."""

    def __init__(self, conn: AsyncConnection, campaign_id: int, step_id: int, now: float) -> None:
        self.conn = conn
        self.campaign_id = campaign_id
        self.step_id = step_id
        self.now = now
        self.counts = ImportCounts()
        #: E.164 digits as ints: 1M numbers in about 60 MB. The first line of a duplicate is
        #: looked up in the table when the batch is written (duplicates are rare).
        self.seen: set[int] = set()
        self.unresolved_duplicates: list[tuple[dict[str, Any], str]] = []
        self.queued_batch: list[tuple[Any, ...]] = []
        self.reject_batch: list[dict[str, Any]] = []
        self.first_header: str | None = None
        self._insert_recipients: BatchInsert | None = None

    def queue(self, line: int, phone: str, params: dict[str, Any]) -> None:
        self.queued_batch.append(
            (
                self.campaign_id,
                self.step_id,
                line,
                phone,
                _to_json(params),
                _QUEUED,
                0,
                0.0,
                0,
                self.now,
            )
        )
        self.counts.queued += 1
        if self.first_header is None:
            self.first_header = params.get("header")

    def reject(
        self, line: int, phone_raw: str | None, reason: str, *, duplicate: bool = False
    ) -> None:
        self.reject_batch.append(
            {
                "campaign_id": self.campaign_id,
                "step_id": self.step_id,
                "line_no": line,
                "phone_raw": phone_raw[:MAX_RAW_PHONE_CHARS] if phone_raw else phone_raw,
                "reason": reason,
            }
        )
        if duplicate:
            self.counts.duplicates += 1
        else:
            self.counts.invalid += 1

    def reject_duplicate(self, line: int, phone_raw: str, phone: str) -> None:
        """A number already queued for this step; the reason gets its line at flush time."""
        self.reject(line, phone_raw, "duplicate", duplicate=True)
        self.unresolved_duplicates.append((self.reject_batch[-1], phone))

    @property
    def batch_full(self) -> bool:
        return len(self.queued_batch) >= BATCH_ROWS or len(self.reject_batch) >= BATCH_ROWS

    async def flush(self) -> None:
        if self.queued_batch:
            if self._insert_recipients is None:
                self._insert_recipients = await _batch_insert(self.conn, _RECIPIENT_COLUMNS)
            await self._insert_recipients(self.queued_batch)
            self.queued_batch = []
        if self.unresolved_duplicates:
            await self._name_first_lines()
        if self.reject_batch:
            await self.conn.execute(insert(rejects), self.reject_batch)
            self.reject_batch = []

    async def _name_first_lines(self) -> None:
        """Turn "duplicate" into "duplicate of line N": every first occurrence is written."""
        phones = sorted({phone for _, phone in self.unresolved_duplicates})
        first_lines: dict[str, int] = {}
        for start in range(0, len(phones), 500):
            result = await self.conn.execute(
                select(recipients.c.phone, recipients.c.line_no).where(
                    recipients.c.step_id == self.step_id,
                    recipients.c.phone.in_(phones[start : start + 500]),
                )
            )
            first_lines.update((phone, line) for phone, line in result)
        for reject_row, phone in self.unresolved_duplicates:
            reject_row["reason"] = f"duplicate of line {first_lines[phone]}"
        self.unresolved_duplicates = []


async def import_contacts(
    conn: AsyncConnection,
    reader: ContactsReader,
    *,
    campaign_id: int,
    step_id: int,
    now: float,
) -> ImportCounts:
    """Queue every valid, first-seen row of ``reader`` for the step; reject the others.

    Runs inside the caller's transaction. Raises ContactsError when the file turns out to be
    unreadable part-way (the caller's rollback then removes what was written).
    """
    job = _StepImport(conn, campaign_id, step_id, now)
    for _ in judge_rows(reader, job):
        if job.batch_full:
            await job.flush()
    await job.flush()
    if job.first_header is not None:
        job.counts.header_format = guess_header_format(job.first_header)
    return job.counts


def judge_rows(reader: ContactsReader, sink: Any) -> Iterator[None]:
    """Judge every data row, handing it to ``sink.queue`` or ``sink.reject`` (the import's
    database job, or validation's recorder: one set of rules for both); yields after each row
    so that a caller can flush its batches."""
    layout = reader.layout
    normaliser = PhoneNormaliser(reader.source.default_region)
    mapped = reader.source.mapped_columns()
    mapped_indexes = [
        (index, f"{column!r} ({role})")
        for (column, role), index in zip(mapped, _mapped_indexes(layout), strict=True)
    ]
    for line, row, broken in reader.rows():
        if row is None:
            sink.reject(line, None, broken or "malformed CSV row")
        else:
            _take_row(sink, normaliser, layout, mapped_indexes, line, row)
        yield


def _mapped_indexes(layout: _Layout) -> list[int]:
    indexes = list(layout.body)
    if layout.header is not None:
        indexes.append(layout.header)
    indexes.extend(index for _, index in layout.buttons)
    return indexes


def _take_row(
    job: _StepImport,
    normaliser: PhoneNormaliser,
    layout: _Layout,
    mapped_indexes: Sequence[tuple[int, str]],
    line: int,
    row: list[str],
) -> None:
    if len(row) != layout.width:
        raw_phone = row[layout.phone].strip() if len(row) > layout.phone else None
        job.reject(line, raw_phone, f"has {len(row)} fields, the header has {layout.width}")
        return
    raw_phone = row[layout.phone].strip()
    if not raw_phone:
        job.reject(line, None, "empty phone")
        return
    for index, described in mapped_indexes:
        if not row[index].strip():
            job.reject(line, raw_phone, f"empty value in column {described}")
            return
    try:
        phone = normaliser.to_e164(raw_phone)
    except InvalidPhone as error:
        job.reject(line, raw_phone, str(error))
        return
    key = int(phone[1:])
    if key in job.seen:
        job.reject_duplicate(line, raw_phone, phone)
        return
    job.seen.add(key)
    job.queue(line, phone, _params(layout, row))


def _params(layout: _Layout, row: list[str]) -> dict[str, Any]:
    """The recipient's ``params`` JSON (docs/architecture.md): values from the mapped columns."""
    params: dict[str, Any] = {"body": [row[index].strip() for index in layout.body]}
    if layout.header is not None:
        params["header"] = row[layout.header].strip()
    if layout.buttons:
        params["buttons"] = [
            {"index": button.index, "sub_type": button.sub_type, "text": row[index].strip()}
            for button, index in layout.buttons
        ]
    return params


def guess_header_format(value: str) -> str:
    """The header kind a parameter value suggests: a URL is media, anything else text."""
    lowered = value.lower().split("?", 1)[0]
    if not lowered.startswith(("http://", "https://")):
        return "text"
    for kind, extensions in _MEDIA_EXTENSIONS.items():
        if lowered.endswith(extensions):
            return kind
    return "document"
