"""Check a contacts file the way the import would, without writing anything.

Setup shows this report before anything is queued. It runs the importer's own row rules (same
code path, a recorder instead of the database), so the report and the import can never disagree.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from watui.contracts import RecipientParams
from watui.errors import ContactsError
from watui.rules import duplicate_reject_reason
from watui.storage.contacts import (
    ContactsReader,
    ContactsSource,
    ImportCounts,
    _open_text,
    judge_rows,
)

EXAMPLES_KEPT = 200


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    phone_raw: str | None
    reason: str


@dataclass
class ValidationResult:
    counts: ImportCounts = field(default_factory=ImportCounts)
    invalid: list[RejectedRow] = field(default_factory=list)  # the first EXAMPLES_KEPT
    duplicates: list[RejectedRow] = field(default_factory=list)


class _Recorder:
    """Stands in for the importer's database job: same interface, keeps counts and examples."""

    def __init__(self) -> None:
        self.result = ValidationResult()
        self.counts = self.result.counts
        self.seen: set[int] = set()  # the importer's duplicate check: E.164 digits as ints
        self._first_lines: dict[str, int] = {}

    def queue(self, line: int, phone: str, params: RecipientParams, tz: str | None) -> None:
        self.counts.queued += 1
        self._first_lines[phone] = line

    def reject_duplicate(self, line: int, phone_raw: str, phone: str) -> None:
        """Worded as the import words it once flushed: "duplicate of line N"."""
        self.reject(line, phone_raw, duplicate_reject_reason(self._first_lines[phone]), duplicate=True)

    def reject(self, line: int, phone_raw: str | None, reason: str, *, duplicate: bool = False) -> None:
        kept = self.result.duplicates if duplicate else self.result.invalid
        if len(kept) < EXAMPLES_KEPT:
            kept.append(RejectedRow(line, phone_raw, reason))
        if duplicate:
            self.counts.duplicates += 1
        else:
            self.counts.invalid += 1


def validate_contacts(source: ContactsSource) -> ValidationResult:
    """Every row judged as the import would judge it. Raises ContactsError for a bad file."""
    recorder = _Recorder()
    with ContactsReader(source) as reader:
        for _ in judge_rows(reader, recorder):
            pass
    return recorder.result


def preview_rows(path: Path, limit: int) -> tuple[list[str], list[list[str]]]:
    """The header and the first ``limit`` data rows as written, whatever the columns are."""
    try:
        with _open_text(path) as handle:
            first = handle.readline()
            delimiter = ";" if first.count(";") > first.count(",") else ","
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            header = [name.strip() for name in next(reader, [])]
            rows = [row for row in itertools.islice(reader, limit * 2) if row][:limit]
    except (csv.Error, UnicodeDecodeError) as error:
        raise ContactsError(f"contacts file {path} cannot be read as CSV: {error}") from None
    if not header:
        raise ContactsError(f"contacts file {path} is empty: the first line must name the columns")
    return header, rows
