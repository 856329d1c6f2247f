"""Every recipient of a campaign to CSV or JSON Lines (``watui export``, the report screen's
``e``), streamed: rows come from storage in chunks and go straight to the file.

A file is written beside its target under a temporary name and renamed only once complete, so
an error (a full disk, the database gone) never leaves half an export where the whole is
expected.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO

import orjson

from watui.errors import BackendError
from watui.rules import RecipientStatus
from watui.storage.database import Database
from watui.storage.reports import ExportRow, iter_export_rows
from watui.storage.rows import iso_utc

EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_COLUMNS = (
    "phone", "step", "template", "status", "wamid", "attempts", "error_code", "error_title",
    "error_details", "accepted_at", "sent_at", "delivered_at", "read_at", "failed_at",
    "pricing_category",
)


def export_status(text: str) -> RecipientStatus:
    """The recipient status named ``text``; BackendError naming the valid ones otherwise."""
    try:
        return RecipientStatus(text)
    except ValueError:
        names = ", ".join(status.value for status in RecipientStatus)
        raise BackendError(f"unknown status {text!r}: give one of {names}") from None


def export_format(text: str) -> str:
    if text not in EXPORT_FORMATS:
        raise BackendError(f"unknown format {text!r}: give csv or jsonl")
    return text


def _cells(row: ExportRow) -> tuple[object, ...]:
    """The row's values in EXPORT_COLUMNS order, times as ISO 8601 UTC (None stays None:
    an empty CSV cell, a JSON null)."""
    return (
        row.phone, row.step, row.template, row.status, row.wamid, row.attempts, row.error_code,
        row.error_title, row.error_details, _iso(row.accepted_at), _iso(row.sent_at),
        _iso(row.delivered_at), _iso(row.read_at), _iso(row.failed_at), row.pricing_category,
    )


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else _iso_second(int(timestamp))


@functools.lru_cache(maxsize=65_536)
def _iso_second(second: int) -> str | None:
    """Formatting a time costs more than the rest of a row; a campaign's rows share seconds."""
    return iso_utc(second)


async def write_export(
    db: Database, campaign_id: int, handle: TextIO, file_format: str,
    statuses: Sequence[RecipientStatus] | None = None,
) -> int:
    """Write the rows to an open text handle; returns how many were written."""
    written = 0
    if file_format == "csv":
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        async for row in iter_export_rows(db, campaign_id, statuses):
            writer.writerow(_cells(row))  # csv writes None as an empty cell
            written += 1
    else:
        async for row in iter_export_rows(db, campaign_id, statuses):
            line = orjson.dumps(dict(zip(EXPORT_COLUMNS, _cells(row), strict=True)),
                                option=orjson.OPT_APPEND_NEWLINE)
            handle.write(line.decode())
            written += 1
    return written


async def export_to_file(
    db: Database, campaign_id: int, path: Path, file_format: str,
    statuses: Sequence[RecipientStatus] | None = None,
) -> int:
    """Write the export to ``path`` whole or not at all (a temporary file renamed into place)."""
    return await write_whole(
        path, lambda handle: write_export(db, campaign_id, handle, file_format, statuses)
    )


async def write_whole(path: Path, write: Callable[[TextIO], Awaitable[int]]) -> int:
    """Run ``write`` into a temporary file beside ``path`` and rename it into place once it is
    complete: an error leaves no partial file. Returns what ``write`` returns (rows)."""
    target = Path(path).expanduser()
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise BackendError(f"cannot write {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            written = await write(handle)
        os.replace(temporary, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise BackendError(f"cannot write {target}: {error.strerror or error}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return written
