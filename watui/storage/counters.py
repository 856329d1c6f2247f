"""The campaign counters and the statuses that move them, for every module that moves rows.

Apart because the flush, crash recovery and the retry-queue review all change recipient rows,
and each must move the counters in the same transaction by the same table: one copy of it.
"""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.rules import RecipientStatus
from watui.storage.schema import campaigns

SENDING = RecipientStatus.SENDING.value
#: Counter columns moved by a recipient entering each status.
COUNTED = {
    RecipientStatus.SENT.value: "sent",
    RecipientStatus.FAILED.value: "failed",
    RecipientStatus.IN_DOUBT.value: "in_doubt",
    RecipientStatus.SKIPPED.value: "skipped",
    RecipientStatus.UNCONFIRMED.value: "unconfirmed",
}
#: Counters of what status webhooks told (storage/deliveries.py moves them with its rows).
DELIVERY_COUNTERS = ("delivered", "read", "failed_after")
_ALL_COUNTERS = (*COUNTED.values(), *DELIVERY_COUNTERS)
_COUNTER_COLUMNS = frozenset(_ALL_COUNTERS)
_BUMP_COUNTERS = (
    update(campaigns)
    .where(campaigns.c.id == bindparam("cid"))
    .values(
        {
            **{column: campaigns.c[column] + bindparam(f"d_{column}") for column in _ALL_COUNTERS},
            "updated_at": bindparam("now"),
        }
    )
)


async def bump_counters(
    conn: AsyncConnection, campaign_id: int, deltas: dict[str, int], now: float
) -> None:
    """Move the campaign's counters by ``deltas`` ({counter column: change})."""
    unknown = deltas.keys() - _COUNTER_COLUMNS
    if unknown:
        raise ValueError(f"not a counter column: {sorted(unknown)}")
    params = {f"d_{column}": deltas.get(column, 0) for column in _ALL_COUNTERS}
    await conn.execute(_BUMP_COUNTERS, {"cid": campaign_id, "now": now, **params})
