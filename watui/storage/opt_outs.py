"""A person who stopped marketing messages, as a 131050 tells: the one way it is recorded,
whether the API refused the send with it or a ``failed`` status reported it after acceptance.

Before, only the webhook's 131050 reached the suppression list: the same code in the send's
own answer failed the recipient and left the number free for the next marketing campaign.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import SuppressionReason, SuppressionScope
from watui.storage.sending.outcomes import OptOut
from watui.storage.suppressions import NewSuppression, suppress_in
from watui.storage.webhook_events import insert_preference_rows


async def record_opt_outs(conn: AsyncConnection, opt_outs: Sequence[OptOut], *, now: float) -> None:
    """In the caller's transaction: each number suppressed for marketing templates (its queued
    and retrying marketing recipients skipped in every campaign), and kept as the
    ``user_preferences`` stop Meta would have sent, so that the audience has one record of it
    and a later resume lifts it."""
    if not opt_outs:
        return
    await insert_preference_rows(conn, [_preference_row(o) for o in opt_outs], received_at=now)
    await suppress_in(conn, [_suppression(o) for o in opt_outs], now=now)


def _suppression(opt_out: OptOut) -> NewSuppression:
    detail = f"{opt_out.code}: {opt_out.title or 'opted out'}"[:500]
    return NewSuppression(opt_out.phone, SuppressionReason.OPTED_OUT, SuppressionScope.MARKETING,
                          detail, opt_out.user_id or None)  # fmt: skip


def _preference_row(opt_out: OptOut) -> tuple[object, ...]:
    """A ``user_preferences`` stop, in webhook_events.PREFERENCE_COLUMNS order."""
    when = "after acceptance" if opt_out.after_acceptance else "at the send"
    detail = f"{opt_out.code} {when}: {opt_out.title or 'opted out'}"
    return (opt_out.phone.lstrip("+"), "", "marketing_messages", "stop", detail[:500], opt_out.at,
            opt_out.phone_number_id)  # fmt: skip


__all__ = ["OptOut", "record_opt_outs"]
