"""A campaign's dry run: per step, what will be sent, what will not and why, by country.

Read in a handful of aggregate queries, whatever the campaign's size: one pass over its pending
rows grouped by step and calling-code prefix, and one query per skip rule (storage.skip_rules).
Nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import MESSAGING_LIMIT_WINDOW_S
from watui.settings.model import WhatsAppSettings
from watui.storage import messaging_limit
from watui.storage.campaigns import get_campaign
from watui.storage.database import Database
from watui.storage.messaging_limit import LimitUsage
from watui.storage.phones import CALLING_CODE_PREFIX_CHARS
from watui.storage.rows import CampaignRecord
from watui.storage.schema import recipients, steps, templates
from watui.storage.skip_rules import OVER_LIMIT, SKIP_RULES, TO_SEND, CheckContext, Effect, StepRef


@dataclass(frozen=True, slots=True)
class StepDryRun:
    id: int
    position: int  # from 0
    template: str
    language: str
    category: str | None  # the synced template's (MARKETING, UTILITY, ...); None: not synced
    pending_by_prefix: dict[str, int]  # rows still to send, by their calling-code prefix
    reasons: dict[str, tuple[Effect, int]]  # every registered rule's count, zero included

    @property
    def pending(self) -> int:
        return sum(self.pending_by_prefix.values())

    @property
    def will_send(self) -> int:
        skipped = sum(n for effect, n in self.reasons.values() if effect is Effect.SKIPPED)
        return self.pending - skipped


@dataclass(frozen=True, slots=True)
class DryRun:
    campaign: CampaignRecord
    steps: tuple[StepDryRun, ...]
    limit: LimitUsage | None
    #: When the limit lets the last new number go (an estimate); None when nothing waits for it.
    limit_clears_at: float | None


async def dry_run(db: Database, name: str, whatsapp: WhatsAppSettings, now: float) -> DryRun:
    campaign = await get_campaign(db, name)
    tier = await messaging_limit.current_limit(db, whatsapp)
    usage = None if tier is None else await messaging_limit.usage(db, tier, now)
    async with db.engine.connect() as conn:
        step_rows = (await conn.execute(_STEPS.where(steps.c.campaign_id == campaign.id))).all()
        pending = await _pending_by_prefix(conn, campaign.id)
        refs = tuple(StepRef(r.id, r.position, r.category) for r in step_rows)
        context = CheckContext(campaign.id, refs, usage, now)
        counted = [(rule, await rule.count(conn, context)) for rule in SKIP_RULES]
    found = tuple(
        StepDryRun(
            row.id, row.position, row.template_name, row.language, row.category,
            pending.get(row.id, {}),
            {rule.reason: (rule.effect, counts.get(row.id, 0)) for rule, counts in counted},
        )
        for row in step_rows
    )
    over = sum(step.reasons.get(OVER_LIMIT, (Effect.DELAYED, 0))[1] for step in found)
    clears = None if usage is None or not over else await _limit_clears_at(db, usage, over, now)
    return DryRun(campaign, found, usage, clears)


_STEPS = (
    select(steps.c.id, steps.c.position, steps.c.template_name, steps.c.language, templates.c.category)
    .select_from(steps.outerjoin(templates, and_(
        templates.c.name == steps.c.template_name, templates.c.language == steps.c.language
    )))
    .order_by(steps.c.position)
)


async def _pending_by_prefix(conn: AsyncConnection, campaign_id: int) -> dict[int, dict[str, int]]:
    prefix = func.substr(recipients.c.phone, 1, CALLING_CODE_PREFIX_CHARS)
    query = (
        select(recipients.c.step_id, prefix, func.count())
        .where(recipients.c.campaign_id == campaign_id, recipients.c.status.in_(TO_SEND))
        .group_by(recipients.c.step_id, prefix)
    )
    found: dict[int, dict[str, int]] = {}
    for step_id, head, count in await conn.execute(query):
        found.setdefault(int(step_id), {})[str(head)] = int(count)
    return found


async def _limit_clears_at(db: Database, usage: LimitUsage, over: int, now: float) -> float | None:
    """The numbers in the window leave it one by one, and each lets one new number go; past
    them, each 24 h lets ``limit`` more go."""
    if over <= usage.used:
        return await messaging_limit.nth_free_slot(db, over, now)
    return now + MESSAGING_LIMIT_WINDOW_S * math.ceil((over - usage.used) / usage.limit)

