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

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import DUPLICATE_REJECT_PREFIX, MESSAGING_LIMIT_WINDOW_S, RecipientStatus
from watui.storage.messaging_limit import LimitUsage
from watui.storage.schema import messaged_phones, recipients, rejects

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


async def _rejects_by_step(conn: AsyncConnection, campaign_id: int, duplicates: bool) -> PerStep:
    is_duplicate = rejects.c.reason.startswith(DUPLICATE_REJECT_PREFIX, autoescape=True)
    query = (
        select(rejects.c.step_id, func.count())
        .where(rejects.c.campaign_id == campaign_id, is_duplicate if duplicates else ~is_duplicate)
        .group_by(rejects.c.step_id)
    )
    return {int(step): int(count) for step, count in await conn.execute(query)}


@skip_rule("invalid", Effect.REJECTED)
async def invalid_rows(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Rows the import refused: a phone that is not a number, a wrong field count, an empty
    value."""
    return await _rejects_by_step(conn, context.campaign_id, duplicates=False)


@skip_rule("duplicate", Effect.REJECTED)
async def duplicate_rows(conn: AsyncConnection, context: CheckContext) -> PerStep:
    """Rows whose number an earlier row of the same step has."""
    return await _rejects_by_step(conn, context.campaign_id, duplicates=True)


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
