"""Contacts files: what a step reads (ContactsSource), reading it (ContactsReader), and the
rules that judge each row (judge_rows), without writing anything.

Apart from the insert so that validation (the setup screen's report) and the import run the
same rules over the same reader, and only the import needs a database.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from watui.contracts import RecipientParams
from watui.errors import ContactsError, InvalidPhone
from watui.rules import Field, MappedButton
from watui.storage.phones import PhoneNormaliser
from watui.storage.zones import recipient_zone_key

#: A field longer than this is a broken file (or not a contacts file); the row is rejected.
MAX_FIELD_CHARS = 64 * 1024
#: The optional column naming a recipient's time zone (IANA), over the one its number gives.
TZ_COLUMN = "tz"
#: Enough bytes to tell binary data from text before parsing.
SNIFF_BYTES = 8192

#: Header guesses for a media header parameter taken from a URL's extension.
_MEDIA_EXTENSIONS = {
    "image": (".jpg", ".jpeg", ".png", ".webp"),
    "video": (".mp4", ".3gp"),
}

csv.field_size_limit(MAX_FIELD_CHARS)


#: A dynamic button parameter taken from a column (URL suffix or quick-reply payload): the
#: rules' shape, so that the mapping check reads a step's buttons as they are.
ButtonParam = MappedButton


@dataclass(frozen=True)
class ContactsSource:
    """One step's contacts file and how its columns map to the template's parameters."""

    path: Path
    phone_column: str = "phone"
    body_params: tuple[str, ...] = ()
    header_param: str | None = None
    buttons: tuple[ButtonParam, ...] = ()
    default_region: str | None = None
    #: Give each row its zone key (recipients.tz): the campaign has a send window.
    with_zones: bool = False

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
    """What one step's import did: every data row is exactly one of queued/invalid/duplicate/
    suppressed (on the suppression list)/excluded (in the campaign's exclusion file)."""

    queued: int = 0
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0
    excluded: int = 0
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
    tz: int | None = None  # the TZ_COLUMN, when zones are wanted and the file has it


class RowSink(Protocol):
    """Where judge_rows hands each row: the import's database job, or validation's recorder."""

    counts: ImportCounts
    seen: set[int]

    def queue(self, line: int, phone: str, params: RecipientParams, tz: str | None) -> None: ...

    def reject(
        self, line: int, phone_raw: str | None, reason: str, *, duplicate: bool = False
    ) -> None: ...

    def reject_duplicate(self, line: int, phone_raw: str, phone: str) -> None: ...


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
        phone = self._column_index(src.phone_column, "phone numbers", Field.PHONE_COLUMN)
        body = Field.BODY_PARAMS
        return _Layout(
            width=len(self.header),
            phone=phone,
            body=[self._column_index(col, "body parameter", body) for col in src.body_params],
            header=self._column_index(src.header_param, "header parameter", Field.HEADER_PARAM)
            if src.header_param
            else None,
            buttons=[
                (b, self._column_index(b.column, f"button {b.index}", Field.BUTTONS))
                for b in src.buttons
            ],
            tz=self._optional_column(TZ_COLUMN) if src.with_zones else None,
        )

    def _optional_column(self, wanted: str) -> int | None:
        folded = [i for i, name in enumerate(self.header) if name.casefold() == wanted]
        return folded[0] if len(folded) == 1 else None

    def _column_index(self, wanted: str, role: str, field: Field) -> int:
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
            f"(columns: {shown}{more}){hint}",
            field,
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


def judge_rows(reader: ContactsReader, sink: RowSink) -> Iterator[None]:
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
    zoned = reader.source.with_zones
    for line, row, broken in reader.rows():
        if row is None:
            sink.reject(line, None, broken or "malformed CSV row")
        else:
            _take_row(sink, normaliser, layout, mapped_indexes, line, row, zoned)
        yield


def _mapped_indexes(layout: _Layout) -> list[int]:
    indexes = list(layout.body)
    if layout.header is not None:
        indexes.append(layout.header)
    indexes.extend(index for _, index in layout.buttons)
    return indexes


def _take_row(
    job: RowSink,
    normaliser: PhoneNormaliser,
    layout: _Layout,
    mapped_indexes: Sequence[tuple[int, str]],
    line: int,
    row: list[str],
    zoned: bool,
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
    tz = None
    if zoned:
        given = row[layout.tz].strip() if layout.tz is not None else None
        try:
            tz = recipient_zone_key(phone, given)
        except InvalidPhone as error:
            job.reject(line, raw_phone, str(error))
            return
    job.seen.add(key)
    job.queue(line, phone, _params(layout, row), tz)


def _params(layout: _Layout, row: list[str]) -> RecipientParams:
    """The recipient's ``params`` JSON (docs/architecture.md): values from the mapped columns."""
    params: RecipientParams = {"body": [row[index].strip() for index in layout.body]}
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
