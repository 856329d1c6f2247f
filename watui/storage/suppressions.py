"""The suppression list: numbers that must not be messaged, one list per database.

Honoured in three places, each with one indexed look-up by phone: at import (a suppressed
number is rejected, not queued), when a number is suppressed (its queued and retrying rows in
every campaign are skipped in the same transaction), and at each claim (rows suppressed while
they were being claimed are skipped before they are sent). Marketing-only entries stop only
steps whose template is MARKETING by the templates cache (``rules.suppression_applies``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.contracts import RecipientParams
from watui.errors import ContactsError
from watui.rules import (
    LIFTED_BY_RESUME,
    MARKETING_CATEGORY,
    SUPPRESSED,
    RecipientStatus,
    SuppressionReason,
    SuppressionScope,
)
from watui.storage.contacts import ContactsReader, ContactsSource, ImportCounts, judge_rows
from watui.storage.counters import bump_counters
from watui.storage.database import Database
from watui.storage.rows import iso_utc
from watui.storage.schema import recipients, rejects, steps, suppressions, templates
from watui.storage.sending.outcomes import ClaimedRecipient

#: Numbers per statement: well under SQLite's and asyncpg's parameter limits.
CHUNK = 500
_SKIPPABLE = (RecipientStatus.QUEUED.value, RecipientStatus.RETRY.value)
_SKIPPED = RecipientStatus.SKIPPED.value
_SENDING = RecipientStatus.SENDING.value


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry of the list, as storage hands it out."""

    phone: str
    user_id: str | None
    scope: str
    reason: str
    detail: str | None
    created_at: float

    def as_json(self) -> dict[str, Any]:
        return {"phone": self.phone, "user_id": self.user_id, "scope": self.scope,
                "reason": self.reason, "detail": self.detail,
                "created_at": iso_utc(self.created_at)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewSuppression:
    """A number to suppress (E.164), why, and how widely."""

    phone: str
    reason: SuppressionReason
    scope: SuppressionScope = SuppressionScope.ALL
    detail: str | None = None
    user_id: str | None = None


@dataclass
class SuppressResult:
    added: int = 0  # new entries, or marketing-only entries widened to all templates
    already: int = 0  # numbers already suppressed at least as widely: left as they were
    skipped: int = 0  # queued or retrying recipients skipped in every campaign because of them


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    phone_raw: str | None
    reason: str


@dataclass
class PhoneList:
    """The numbers of a file of phone numbers, normalised as contacts are, and its bad rows."""

    phones: list[str] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


# ----- reading a file of numbers (``suppress import``, a campaign's exclusion file) -----


class _PhoneCollector:
    """A contacts row sink (contacts.RowSink) that keeps only the numbers: the same reading and
    normalising as a campaign's contacts, so a number is written alike in both."""

    def __init__(self) -> None:
        self.counts = ImportCounts()
        self.seen: set[int] = set()
        self.found = PhoneList()

    def queue(self, line: int, phone: str, params: RecipientParams, tz: str | None) -> None:
        self.found.phones.append(phone)

    def reject(self, line: int, phone_raw: str | None, reason: str, *, duplicate: bool = False) -> None:
        self.found.bad.append(BadLine(line, phone_raw, reason))

    def reject_duplicate(self, line: int, phone_raw: str, phone: str) -> None:
        """A number twice in one list is no error: it is listed once."""


def read_phone_list(
    path: Path, *, phone_column: str = "phone", default_region: str | None = None,
    called: str = "file",
) -> PhoneList:  # fmt: skip
    """Every number of a CSV file with a header row. Raises ContactsError for a file that cannot
    be read at all (missing, binary, no such column), naming it as ``called`` ("exclusion
    file"); bad rows are returned with their lines."""
    collector = _PhoneCollector()
    try:
        with ContactsReader(ContactsSource(path, phone_column, default_region=default_region)) as reader:
            for _ in judge_rows(reader, collector):
                pass
    except ContactsError as error:
        raise ContactsError(str(error).replace("contacts file", called, 1), error.field) from None
    return collector.found


def phone_list_error(path: Path, bad: Sequence[BadLine]) -> ContactsError:
    """The one line that refuses a file with bad rows: the first one, and how many."""
    first = bad[0]
    more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
    return ContactsError(f"{path} line {first.line}: {first.reason}{more}: fix or remove the row")


# ----- the rules as SQL -----


def _marketing_step() -> ColumnElement[bool]:
    """The template of ``steps``' row (the enclosing query's) is MARKETING by the cache."""
    return exists(
        select(templates.c.id).where(
            templates.c.name == steps.c.template_name,
            templates.c.language == steps.c.language,
            func.upper(templates.c.category) == MARKETING_CATEGORY,
        )
    )


def _applies_to_step(step_id: Any) -> ColumnElement[bool]:
    """An entry stops this step: every entry does for all templates, marketing-only ones for a
    MARKETING template (rules.suppression_applies, as SQL)."""
    marketing = exists(select(steps.c.id).where(steps.c.id == step_id, _marketing_step()))
    return or_(suppressions.c.scope == SuppressionScope.ALL.value, marketing)


def skipped_reason(reason: str) -> str:
    """What a recipient row skipped because of the list says (its last error title)."""
    return f"{SUPPRESSED}: {reason}"


# ----- changing the list -----


async def suppress(
    db: Database, entries: Sequence[NewSuppression], *, now: float | None = None
) -> SuppressResult:
    """Add the numbers (or widen a marketing-only entry to all templates), and skip their
    queued and retrying rows in every campaign, in one transaction."""
    async with db.begin() as conn:
        return await suppress_in(conn, entries, now=time.time() if now is None else now)


async def suppress_in(
    conn: AsyncConnection, entries: Sequence[NewSuppression], *, now: float
) -> SuppressResult:
    """``suppress`` in the caller's transaction (the webhook applier's, for a 131050)."""
    result = SuppressResult()
    unique = list({entry.phone: entry for entry in entries}.values())
    for start in range(0, len(unique), CHUNK):
        await _suppress_chunk(conn, unique[start : start + CHUNK], now, result)
    return result


async def _suppress_chunk(
    conn: AsyncConnection, chunk: Sequence[NewSuppression], now: float, result: SuppressResult
) -> None:
    found = await conn.execute(
        select(suppressions.c.phone, suppressions.c.scope)
        .where(suppressions.c.phone.in_([entry.phone for entry in chunk]))
    )
    existing = {phone: scope for phone, scope in found}
    fresh = [entry for entry in chunk if entry.phone not in existing]
    widened = [
        entry for entry in chunk
        if existing.get(entry.phone) == SuppressionScope.MARKETING and entry.scope == SuppressionScope.ALL
    ]  # fmt: skip
    if fresh:
        await conn.execute(insert(suppressions), [_row(entry, now) for entry in fresh])
    for entry in widened:
        await conn.execute(
            update(suppressions).where(suppressions.c.phone == entry.phone).values(_row(entry, now))
        )
    changed = fresh + widened
    result.added += len(changed)
    result.already += len(chunk) - len(changed)
    for (reason, scope), group in _grouped(changed).items():
        result.skipped += await _skip_pending(conn, group, reason, scope, now)


def _row(entry: NewSuppression, now: float) -> dict[str, Any]:
    return {"phone": entry.phone, "user_id": entry.user_id, "scope": entry.scope.value,
            "reason": entry.reason.value, "detail": entry.detail, "created_at": now}  # fmt: skip


def _grouped(entries: Iterable[NewSuppression]) -> dict[tuple[str, str], list[str]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        groups.setdefault((entry.reason.value, entry.scope.value), []).append(entry.phone)
    return groups


async def _skip_pending(
    conn: AsyncConnection, phones: Sequence[str], reason: str, scope: str, now: float
) -> int:
    """Skip the numbers' queued and retrying rows in every campaign (marketing-only: in steps
    of MARKETING templates only), counted in each campaign's ``skipped``. Rows being sent are
    the claim-time check's (``skip_suppressed_claims``)."""
    stopped_steps = select(steps.c.id)
    if scope == SuppressionScope.MARKETING:
        stopped_steps = stopped_steps.where(_marketing_step())
    skipped = await conn.execute(
        update(recipients)
        .where(
            recipients.c.step_id.in_(stopped_steps),
            recipients.c.phone.in_(phones),
            recipients.c.status.in_(_SKIPPABLE),
        )
        .values(status=_SKIPPED, last_error_title=skipped_reason(reason), updated_at=now)
        .returning(recipients.c.campaign_id)
    )
    per_campaign: dict[int, int] = {}
    for campaign_id in skipped.scalars():
        per_campaign[campaign_id] = per_campaign.get(campaign_id, 0) + 1
    for campaign_id, count in per_campaign.items():
        await bump_counters(conn, campaign_id, {"skipped": count}, now)
    return sum(per_campaign.values())


async def unsuppress(db: Database, phones: Sequence[str]) -> int:
    """Take the numbers off the list; returns how many were on it. Rows already skipped stay
    skipped (requeue them from the retry queue or a new campaign)."""
    removed = 0
    async with db.begin() as conn:
        for start in range(0, len(phones), CHUNK):
            result = await conn.execute(
                delete(suppressions).where(suppressions.c.phone.in_(phones[start : start + CHUNK]))
            )
            removed += int(result.rowcount or 0)
    return removed


async def lift_resumed_in(conn: AsyncConnection, phones: Sequence[str], user_ids: Sequence[str]) -> int:
    """A ``user_preferences`` resume: lift the marketing-only entries the person's own stop made
    (``rules.LIFTED_BY_RESUME``), matched by number or business-scoped user id; never one a
    person added."""
    who = [suppressions.c.phone.in_(phones)] if phones else []
    if user_ids:
        who.append(suppressions.c.user_id.in_(user_ids))
    if not who:
        return 0
    result = await conn.execute(
        delete(suppressions).where(
            or_(*who),
            suppressions.c.scope == SuppressionScope.MARKETING.value,
            suppressions.c.reason.in_([reason.value for reason in LIFTED_BY_RESUME]),
        )
    )
    return int(result.rowcount or 0)


# ----- reading the list -----


async def list_suppressions(
    db: Database, *, containing: str = "", limit: int | None = None
) -> list[Suppression]:
    """Entries, newest first (by id: the primary key, no sort of the whole list); ``containing``:
    only numbers (or user ids, reasons, details) with that text."""
    query = select(suppressions).order_by(suppressions.c.id.desc())
    if containing:
        pattern = f"%{containing.strip()}%"
        query = query.where(or_(
            suppressions.c.phone.like(pattern), suppressions.c.user_id.like(pattern),
            suppressions.c.reason.like(pattern), suppressions.c.detail.like(pattern),
        ))  # fmt: skip
    if limit is not None:
        query = query.limit(limit)
    async with db.engine.connect() as conn:
        return [_entry(row) for row in await conn.execute(query)]


async def iter_suppressions(db: Database) -> AsyncIterator[Suppression]:
    """Every entry in phone order, streamed (an export of a million stays small in memory)."""
    async with db.engine.connect() as conn:
        result = await conn.stream(select(suppressions).order_by(suppressions.c.phone))
        async for row in result:
            yield _entry(row)


async def count_suppressions(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(suppressions))).scalar_one())


def _entry(row: Any) -> Suppression:
    return Suppression(row.phone, row.user_id, row.scope, row.reason, row.detail, row.created_at)


# ----- honouring the list -----


async def reject_suppressed(conn: AsyncConnection, campaign_id: int, step_id: int) -> int:
    """At import, after the step's rows are written: rows whose number the list stops become
    rejects ("suppressed", with their line) instead of recipients. Returns how many."""
    stopped = select(suppressions.c.phone).where(_applies_to_step(step_id))
    chosen = and_(recipients.c.step_id == step_id, recipients.c.phone.in_(stopped))
    as_rejects = select(
        recipients.c.campaign_id, recipients.c.step_id, recipients.c.line_no, recipients.c.phone,
        literal(SUPPRESSED),
    ).where(chosen)
    moved = await conn.execute(
        insert(rejects).from_select(
            ["campaign_id", "step_id", "line_no", "phone_raw", "reason"], as_rejects
        )
    )
    count = int(moved.rowcount or 0)
    if count:
        await conn.execute(delete(recipients).where(chosen))
    return count


async def skip_suppressed_claims(
    db: Database, step_id: int, owner: str, claimed: list[ClaimedRecipient], *, now: float
) -> list[ClaimedRecipient]:
    """The claim-time check: one indexed query over the batch's numbers. Rows whose number the
    list stops (suppressed after they were queued, while they were claimed) are skipped with
    the reason, never sent; the others are returned to be sent."""
    if not claimed:
        return claimed
    query = select(suppressions.c.phone, suppressions.c.reason).where(
        suppressions.c.phone.in_([row.phone for row in claimed]), _applies_to_step(step_id)
    )
    async with db.engine.connect() as conn:
        stopped = {phone: reason for phone, reason in await conn.execute(query)}
    if not stopped:
        return claimed
    await _skip_claimed(db, owner, [row for row in claimed if row.phone in stopped], stopped, now)
    return [row for row in claimed if row.phone not in stopped]


async def _skip_claimed(
    db: Database, owner: str, rows: Sequence[ClaimedRecipient], reasons: dict[str, str], now: float
) -> None:
    async with db.begin() as conn:
        for row in rows:
            result = await conn.execute(
                update(recipients)
                .where(recipients.c.id == row.id, recipients.c.status == _SENDING,
                       recipients.c.lease_owner == owner)
                .values(status=_SKIPPED, lease_owner=None, lease_expires_at=None, updated_at=now,
                        last_error_title=skipped_reason(reasons[row.phone]))
                .returning(recipients.c.campaign_id)
            )  # fmt: skip
            campaign_id = result.scalar()
            if campaign_id is not None:
                await bump_counters(conn, campaign_id, {"skipped": 1}, now)

