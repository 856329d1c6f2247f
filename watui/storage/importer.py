"""The import: a contacts file's judged rows written as queued recipients and rejects.

The file is read row by row and written in large batches, so memory stays flat whatever the
file size; only the set of phone numbers already seen (for duplicates) grows. Every row that
is not queued becomes a reject with its line number and reason: nothing is dropped silently.
The caller owns the transaction, so a file that fails half-way leaves nothing. The rules that
judge a row are contacts.py's, shared with validation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.contracts import RecipientParams
from watui.rules import EXCLUDED, RecipientStatus, duplicate_reject_reason, sender_for
from watui.storage.contacts import ContactsReader, ImportCounts, guess_header_format, judge_rows
from watui.storage.dialects import BatchInsert, Dialect
from watui.storage.schema import recipients, rejects
from watui.storage.suppressions import reject_suppressed

#: Rows per executemany: large enough to amortise the round trip, small enough to stay light.
BATCH_ROWS = 5_000
#: The reject keeps this much of a raw phone value, for people to recognise it.
MAX_RAW_PHONE_CHARS = 64


#: Every recipient column the import writes, in table order (as its tuples are); the rest
#: (lease, wamid, errors, sent_at) stay NULL.
_RECIPIENT_COLUMNS = (
    "campaign_id", "step_id", "line_no", "phone", "params", "status",
    "attempts", "next_attempt_at", "possibly_sent", "updated_at", "sender", "tz",
)  # fmt: skip
_QUEUED = RecipientStatus.QUEUED.value
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

class _StepImport:
    """Holds the state of one step's import: the batches, the phones seen, the counts."""

    def __init__(
        self, conn: AsyncConnection, kind: Dialect, campaign_id: int, step_id: int, now: float,
        senders: Sequence[str] | None = None,
        excluded: AbstractSet[int] = frozenset(),
    ) -> None:
        self.conn = conn
        self.senders = tuple(senders) if senders else None
        self.kind = kind
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
        self.excluded = excluded  # the campaign's exclusion file: E.164 digits as ints
        self._insert_recipients: BatchInsert | None = None

    def queue(self, line: int, phone: str, params: RecipientParams, tz: str | None) -> None:
        if self._excluded(line, phone, phone):
            return
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
                None if self.senders is None else sender_for(phone, self.senders),
                tz,
            )
        )
        self.counts.queued += 1
        if self.first_header is None:
            self.first_header = params.get("header")

    def reject(
        self, line: int, phone_raw: str | None, reason: str, *, duplicate: bool = False
    ) -> None:
        self._add_reject(line, phone_raw, reason)
        if duplicate:
            self.counts.duplicates += 1
        else:
            self.counts.invalid += 1

    def _excluded(self, line: int, phone_raw: str, phone: str) -> bool:
        """Reject the row when the campaign's exclusion file names its number."""
        if not self.excluded or int(phone[1:]) not in self.excluded:
            return False
        self._add_reject(line, phone_raw, EXCLUDED)
        self.counts.excluded += 1
        return True

    def _add_reject(self, line: int, phone_raw: str | None, reason: str) -> None:
        self.reject_batch.append(
            {
                "campaign_id": self.campaign_id,
                "step_id": self.step_id,
                "line_no": line,
                "phone_raw": phone_raw[:MAX_RAW_PHONE_CHARS] if phone_raw else phone_raw,
                "reason": reason,
            }
        )

    def reject_duplicate(self, line: int, phone_raw: str, phone: str) -> None:
        """A number already queued for this step; the reason gets its line at flush time. An
        excluded number is excluded again (its first line is no recipient to name)."""
        if self._excluded(line, phone_raw, phone):
            return
        self.reject(line, phone_raw, "duplicate", duplicate=True)
        self.unresolved_duplicates.append((self.reject_batch[-1], phone))

    @property
    def batch_full(self) -> bool:
        return len(self.queued_batch) >= BATCH_ROWS or len(self.reject_batch) >= BATCH_ROWS

    async def flush(self) -> None:
        if self.queued_batch:
            if self._insert_recipients is None:
                self._insert_recipients = await self.kind.bulk_inserter(self.conn, _RECIPIENT_COLUMNS)
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
            reject_row["reason"] = duplicate_reject_reason(first_lines[phone])
        self.unresolved_duplicates = []


async def import_contacts(
    conn: AsyncConnection,
    reader: ContactsReader,
    *,
    kind: Dialect,
    campaign_id: int,
    step_id: int,
    now: float,
    senders: Sequence[str] | None = None,
    excluded: AbstractSet[int] = frozenset(),
) -> ImportCounts:
    """Queue every valid, first-seen row of ``reader`` for the step; reject the others.

    With ``senders``, each recipient is pinned to the one ``rules.sender_for`` picks (None:
    left NULL, the campaign's first sender). Numbers in ``excluded`` (E.164 digits as ints)
    and numbers the suppression list stops are rejects too ("excluded", "suppressed"), counted
    apart. Runs inside the caller's transaction. Raises
    ContactsError when the file turns out to be unreadable part-way (the caller's rollback then
    removes what was written).
    """
    job = _StepImport(conn, kind, campaign_id, step_id, now, senders, excluded)
    for _ in judge_rows(reader, job):
        if job.batch_full:
            await job.flush()
    await job.flush()
    suppressed = await reject_suppressed(conn, campaign_id, step_id)
    job.counts.queued -= suppressed
    job.counts.suppressed = suppressed
    if job.first_header is not None:
        job.counts.header_format = guess_header_format(job.first_header)
    return job.counts
