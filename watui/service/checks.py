"""A campaign's dry run for front ends: storage's figures with the finish time and the cost.

The cost prices every message still to send by its number's calling code and its template's
category from a rate card; MARKETING templates to +1 numbers are left out (Meta does not deliver,
so does not bill, them). Marketing is billed per delivered message, so the sum is what the run
costs if every message is delivered: an upper bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from watui.rules import UNDELIVERED_TO_US_CATEGORY, US_CALLING_CODE
from watui.service.models import CampaignCheck, CostLine, ReasonCount, StepCheck
from watui.settings import Settings
from watui.storage.database import Database
from watui.storage.dry_run import StepDryRun, dry_run
from watui.storage.phones import calling_code
from watui.storage.rate_card import RateCard, load_rate_card
from watui.storage.rows import iso_utc
from watui.storage.skip_rules import Effect

UNKNOWN_CATEGORY = "unknown"  # a template not synced: no category, no price


async def check_campaign(
    db: Database, settings: Settings, name: str, rate_card: Path | None, now: float
) -> CampaignCheck:
    """The dry run of ``name``; the rate card is read first, so a bad one fails before any query."""
    card = None if rate_card is None else load_rate_card(rate_card)
    found = await dry_run(db, name, settings.whatsapp, now)
    rate = found.campaign.rate or settings.send.rate
    step_checks = tuple(_step_check(step) for step in found.steps)
    will_send = sum(step.will_send for step in step_checks)
    send_seconds = will_send / rate
    finishes_at = None if not will_send else max(now + send_seconds, found.limit_clears_at or 0.0)
    check = CampaignCheck(
        name=found.campaign.name, at=now, steps=step_checks, rate=rate,
        send_seconds=send_seconds, finishes_at=finishes_at,
        messaging_limit=found.limit.limit if found.limit else None,
        limit_used=found.limit.used if found.limit else 0, limit_clears_at=found.limit_clears_at,
    )
    return check if card is None else _with_cost(check, card, found.steps)


def _step_check(step: StepDryRun) -> StepCheck:
    def of(effect: Effect) -> tuple[ReasonCount, ...]:
        return tuple(ReasonCount(reason, n) for reason, (e, n) in step.reasons.items() if e is effect)

    return StepCheck(
        position=step.position + 1, template=step.template, language=step.language,
        category=step.category, will_send=step.will_send, rejected=of(Effect.REJECTED),
        skipped=of(Effect.SKIPPED), delayed=of(Effect.DELAYED), us_marketing=_us_marketing(step),
    )


def _undelivered(category: str | None, code: int | None) -> bool:
    return code == US_CALLING_CODE and (category or "").upper() == UNDELIVERED_TO_US_CATEGORY


def _us_marketing(step: StepDryRun) -> int:
    return sum(n for head, n in step.pending_by_prefix.items()
               if _undelivered(step.category, calling_code(head)))


def _with_cost(check: CampaignCheck, card: RateCard, found: Iterable[StepDryRun]) -> CampaignCheck:
    messages: Counter[tuple[int | None, str]] = Counter()
    for step in found:
        category = (step.category or UNKNOWN_CATEGORY).lower()
        for head, count in step.pending_by_prefix.items():
            code = calling_code(head)
            if not _undelivered(step.category, code):
                messages[(code, category)] += count
    lines = tuple(_cost_line(card, code, category, n) for (code, category), n in sorted(
        messages.items(), key=lambda item: (-item[1], item[0][0] or 0, item[0][1])))
    priced = [line.cost for line in lines if line.cost is not None]
    unpriced = sum(line.messages for line in lines if line.cost is None)
    return replace(check, currency=card.currency, cost_lines=lines,
                   total_cost=sum(priced, Decimal(0)), unpriced=unpriced)


def _cost_line(card: RateCard, code: int | None, category: str, messages: int) -> CostLine:
    price = card.price(code, category)
    return CostLine(code, category, messages, price, None if price is None else price * messages)


def check_as_json(check: CampaignCheck) -> dict[str, Any]:
    """``watui campaign check --json``: amounts as decimal strings, times as ISO 8601 UTC."""
    return {
        "campaign": check.name,
        "checked_at": iso_utc(check.at),
        "rate": check.rate,
        "will_send": check.will_send,
        "send_seconds": round(check.send_seconds, 1),
        "finishes_at": iso_utc(check.finishes_at),
        "messaging_limit": None if check.messaging_limit is None else {
            "limit": check.messaging_limit, "used": check.limit_used,
            "clears_at": iso_utc(check.limit_clears_at),
        },
        "steps": [_step_json(step) for step in check.steps],
        "cost": None if check.currency is None else {
            "currency": check.currency,
            "total": str(check.total_cost),
            "unpriced_messages": check.unpriced,
            "lines": [
                {"calling_code": line.calling_code, "category": line.category,
                 "messages": line.messages,
                 "price": None if line.unit_price is None else str(line.unit_price),
                 "cost": None if line.cost is None else str(line.cost)}
                for line in check.cost_lines
            ],
        },
    }


def _step_json(step: StepCheck) -> dict[str, Any]:
    return {
        "step": step.position, "template": step.template, "language": step.language,
        "category": step.category, "will_send": step.will_send,
        "rejected": {r.reason: r.count for r in step.rejected},
        "skipped": {r.reason: r.count for r in step.skipped},
        "delayed": {r.reason: r.count for r in step.delayed},
        "us_marketing_undelivered": step.us_marketing,
    }
