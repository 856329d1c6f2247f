"""Why a dry run says a recipient will not be sent now: one function per reason, in a registry.

Each rule counts, per step, the recipients it keeps from being sent, in SQL aggregates over
the whole campaign (never per row in Python). Parts that add a reason (suppression, exclusion
files, send windows and deadlines) register a function here with ``skip_rule`` and the dry run
reports it; its effect says how it counts:

- ``REJECTED``: rows never queued (the import's rejects); they are not among the pending rows.
- ``SKIPPED``: pending rows the run will skip; the dry run takes them off what will be sent.
- ``DELAYED``: pending rows that will be sent, only later (the 24-hour limit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import (
    DUPLICATE_REJECT_PREFIX,
    EXCLUDED,
    MARKETING_CATEGORY,
    MESSAGING_LIMIT_WINDOW_S,
    SUPPRESSED,
    RecipientStatus,
    SuppressionScope,
    key_is_open,
    next_opening,
    parse_send_window,
)
from watui.storage.messaging_limit import LimitUsage
from watui.storage.schema import campaigns, messaged_phones, recipients, rejects, suppressions

#: The rows a run still claims: what a dry run counts as to be sent.
TO_SEND = (RecipientStatus.QUEUED.value, RecipientStatus.RETRY.value)


class Effect(StrEnum):
    REJECTED = "rejected"
    SKIPPED = "skipped"
    DELAYED = "delayed"


@dataclass(frozen=True, slots=True)
class StepRef:
    id: int
    position: int
    category: str | None = None  # the synced template's (MARKETING, ...); None: not synced


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What every rule may look at: the campaign, its steps in order, the limit's window now."""

    campaign_id: int
    steps: tuple[StepRef, ...]
    limit: LimitUsage | None
    now: float


PerStep = dict[int, int]  # step id -> recipients
RuleCounter = Callable[[AsyncConnection, CheckContext], Awaitable[PerStep]]


@dataclass(frozen=True, slots=True)
class SkipRule:
    reason: str
    effect: Effect
    count: RuleCounter


SKIP_RULES: list[SkipRule] = []


def skip_rule(reason: str, effect: Effect) -> Callable[[RuleCounter], RuleCounter]:
    """Register a rule's counting function under its reason (in the order the report lists)."""

    def register(count: RuleCounter) -> RuleCounter:
        SKIP_RULES.append(SkipRule(reason, effect, count))
        return count

    return register


OVER_LIMIT = "over the 24-hour messaging limit"


#: The reject reasons each rejects rule counts (by prefix); "invalid" counts every other one.
_REJECT_PREFIXES = {"duplicate": DUPLICATE_REJECT_PREFIX, SUPPRESSED: SUPPRESSED, EXCLUDED: EXCLUDED}


def _reason_is(kind: str) -> ColumnElement[bool]:
    if kind in _REJECT_PREFIXES:
        return rejects.c.reason.startswith(_REJECT_PREFIXES[kind], autoescape=True)
    return ~or_(*(rejects.c.reason.startswith(p, autoescape=True) for p in _REJECT_PREFIXES.values()))


async def _rejects_by_step(conn: AsyncConnection, campaign_id: int, kind: str) -> PerStep:
    query = (
        select(rejects.c.step_id, func.count())
        .where(rejects.c.campaign_id == campaign_id, _reason_is(kind))
        .group_by(rejects.c.step_id)
    )
    return {int(step): int(count) for step, count in await conn.execute(query)}


@skip_rule("invalid", Effect.REJECTED)
async def invalid_rows(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Rows the import refused: a phone that is not a number, a wrong field count, an empty
    value."""
    return await _rejects_by_step(conn, context.campaign_id, "invalid")


@skip_rule("duplicate", Effect.REJECTED)
async def duplicate_rows(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Rows whose number an earlier row of the same step has."""
    return await _rejects_by_step(conn, context.campaign_id, "duplicate")


@skip_rule(SUPPRESSED, Effect.REJECTED)
async def suppressed_at_import(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Rows whose number was on the suppression list when the campaign was created."""
    return await _rejects_by_step(conn, context.campaign_id, SUPPRESSED)


@skip_rule(EXCLUDED, Effect.REJECTED)
async def excluded_rows(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Rows whose number the campaign's exclusion file names."""
    return await _rejects_by_step(conn, context.campaign_id, EXCLUDED)


@skip_rule("suppressed since", Effect.SKIPPED)
async def suppressed_since_import(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Pending rows whose number went on the list after the import: the claim skips them
    (marketing-only entries for MARKETING templates only, as rules.suppression_applies)."""
    counts: PerStep = {}
    for step in context.steps:
        scopes = [SuppressionScope.ALL.value]
        if (step.category or "").upper() == MARKETING_CATEGORY:
            scopes.append(SuppressionScope.MARKETING.value)
        listed = exists().where(
            suppressions.c.phone == recipients.c.phone, suppressions.c.scope.in_(scopes)
        )
        query = select(func.count()).where(
            recipients.c.step_id == step.id, recipients.c.status.in_(TO_SEND), listed
        )
        counts[step.id] = int((await conn.execute(query)).scalar_one())
    return counts


@skip_rule("outside every send window before the deadline", Effect.SKIPPED)
async def outside_windows(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Pending rows whose zones' window does not open before the deadline: the campaign
    pauses at the deadline with them unsent. Counted per zone key (a campaign has few)."""
    found = (await conn.execute(
        select(campaigns.c.send_window, campaigns.c.deadline)
        .where(campaigns.c.id == context.campaign_id)
    )).first()
    if found is None or found.send_window is None or found.deadline is None:
        return {}
    window, deadline = parse_send_window(found.send_window), float(found.deadline)
    by_zone = await conn.execute(
        select(recipients.c.step_id, recipients.c.tz, func.count())
        .where(recipients.c.campaign_id == context.campaign_id,
               recipients.c.status.in_(TO_SEND), recipients.c.tz.is_not(None))
        .group_by(recipients.c.step_id, recipients.c.tz)
    )
    counts: PerStep = {}
    for step_id, key, count in by_zone:
        if key_is_open(window, key, context.now):
            continue
        opens = next_opening(window, [key], context.now)
        if opens is None or opens >= deadline:
            counts[int(step_id)] = counts.get(int(step_id), 0) + int(count)
    return counts


@skip_rule(OVER_LIMIT, Effect.DELAYED)
async def over_messaging_limit(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """New numbers past the room the limit has now, steps taking it in order. A number is new
    when it is not in the window and no earlier step of the campaign still has it to send."""
    if context.limit is None:
        return {}
    room = context.limit.available
    over: PerStep = {}
    for index, step in enumerate(context.steps):
        new = await _new_numbers(conn, context, step, context.steps[:index])
        over[step.id] = max(0, new - room)
        room = max(0, room - new)
    return over


async def _new_numbers(
    conn: AsyncConnection, context: CheckContext, step: StepRef, earlier: tuple[StepRef, ...]
) -> int:
    cutoff = context.now - MESSAGING_LIMIT_WINDOW_S
    in_window = exists().where(
        messaged_phones.c.phone == recipients.c.phone, messaged_phones.c.last_at > cutoff
    )
    query = select(func.count()).where(
        recipients.c.step_id == step.id, recipients.c.status.in_(TO_SEND), ~in_window
    )
    if earlier:
        before = recipients.alias("before")
        query = query.where(~exists().where(
            before.c.step_id.in_([s.id for s in earlier]),
            before.c.phone == recipients.c.phone,
            before.c.status.in_(TO_SEND),
        ))
    return int((await conn.execute(query)).scalar_one())
