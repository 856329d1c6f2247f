"""The suppression list as people handle it: numbers typed or in a file, an export, the rows
the UI and ``watui suppress list`` show. Storage keeps and honours the list
(storage/suppressions.py); this turns what a person gives into its entries, all or nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from watui.errors import ContactsError, InvalidPhone
from watui.rules import SuppressionReason, SuppressionScope
from watui.service.exports import write_whole
from watui.storage.database import Database
from watui.storage.phones import PhoneNormaliser
from watui.storage.rows import iso_utc
from watui.storage.suppressions import (
    BadLine,
    NewSuppression,
    Suppression,
    SuppressResult,
    iter_suppressions,
    read_phone_list,
    suppress,
    unsuppress,
)

#: The columns of an export, which ``watui suppress import`` reads back (its phone column).
EXPORT_COLUMNS = ("phone", "scope", "reason", "detail", "user_id", "created_at")


@dataclass
class FileImport:
    """What ``suppress import`` did: the good rows' result, and the bad rows by line."""

    result: SuppressResult
    bad: list[BadLine]


def normalised_phones(raw: Sequence[str], default_region: str | None = None) -> list[str]:
    """The numbers as E.164, or InvalidPhone naming the first bad one (nothing is changed)."""
    normaliser = PhoneNormaliser(default_region)
    phones = []
    for value in raw:
        try:
            phones.append(normaliser.to_e164(value.strip()))
        except InvalidPhone as error:
            raise InvalidPhone(f"{error}: nothing was changed") from None
    return phones


def entries_for(
    phones: Sequence[str], *, reason: SuppressionReason, marketing_only: bool, note: str | None
) -> list[NewSuppression]:
    scope = SuppressionScope.MARKETING if marketing_only else SuppressionScope.ALL
    return [NewSuppression(phone, reason, scope, (note or "").strip() or None) for phone in phones]


async def add_numbers(
    db: Database, raw: Sequence[str], *, marketing_only: bool = False, note: str | None = None,
    default_region: str | None = None,
) -> SuppressResult:  # fmt: skip
    """Numbers a person typed: all valid, or InvalidPhone and nothing added."""
    phones = normalised_phones(raw, default_region)
    entries = entries_for(phones, reason=SuppressionReason.MANUAL, marketing_only=marketing_only, note=note)
    return await suppress(db, entries)


async def remove_numbers(db: Database, raw: Sequence[str], default_region: str | None = None) -> int:
    return await unsuppress(db, normalised_phones(raw, default_region))


async def import_file(
    db: Database, path: Path, *, phone_column: str = "phone", default_region: str | None = None,
    marketing_only: bool = False, note: str | None = None,
) -> FileImport:  # fmt: skip
    """A CSV's numbers (normalised as contacts are) in one transaction; bad rows are returned by
    line, not imported. Raises ContactsError for a file that cannot be read at all."""
    found = read_phone_list(path, phone_column=phone_column, default_region=default_region)
    if not found.phones and not found.bad:
        raise ContactsError(f"{path} has no numbers under its header: nothing was imported")
    entries = entries_for(found.phones, reason=SuppressionReason.IMPORTED,
                          marketing_only=marketing_only, note=note)  # fmt: skip
    return FileImport(await suppress(db, entries), found.bad)


def export_cells(entry: Suppression) -> list[str]:
    return [entry.phone, entry.scope, entry.reason, entry.detail or "", entry.user_id or "",
            iso_utc(entry.created_at) or ""]  # fmt: skip


async def write_csv(db: Database, handle: TextIO) -> int:
    """Every entry as CSV (EXPORT_COLUMNS), streamed; returns how many."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    async for entry in iter_suppressions(db):
        writer.writerow(export_cells(entry))
        written += 1
    return written


async def export_to_file(db: Database, path: Path) -> int:
    """The export written whole or not at all."""
    return await write_whole(path, lambda handle: write_csv(db, handle))
