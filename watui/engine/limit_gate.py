"""The sender's claims, passed through the 24-hour messaging limit.

Apart from the sender so that its claim stays one call: unlimited, this is the plain claim and
nothing more; limited, each claim's numbers are reserved (storage.messaging_limit.admit) and the
rows that would pass the limit go back to the queue. Once a claim is refused, the gate claims
nothing until the next slot frees (rather than claiming and giving back the same rows over and
over), and says why the campaign waits.
"""

from __future__ import annotations

from watui.engine.metrics import EngineMetrics
from watui.settings import Settings
from watui.storage import claims, messaging_limit
from watui.storage.database import Database
from watui.storage.messaging_limit import Admission
from watui.storage.sending.outcomes import ClaimedRecipient


class MessagingLimitGate:
    """Claims for one sender; ``waiting_reason`` is set while the limit holds the campaign."""

    def __init__(self, db: Database, settings: Settings, metrics: EngineMetrics) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._full_until = 0.0
        self._seeded = False
        self.waiting_reason: str | None = None

    async def claim(
        self, step_id: int, owner: str, limit: int, *, lease_seconds: float, now: float
    ) -> list[ClaimedRecipient]:
        """Like ``claims.claim``, but never past the 24-hour messaging limit."""
        tier = await messaging_limit.current_limit(self._db, self._settings.whatsapp)
        if tier is None:
            return await claims.claim(
                self._db, step_id, owner, limit, lease_seconds=lease_seconds, now=now
            )
        if now < self._full_until:
            return []
        rows = await claims.claim(self._db, step_id, owner, limit, lease_seconds=lease_seconds, now=now)
        if not rows:
            return rows
        admission = await messaging_limit.admit(
            self._db, rows, tier, owner, now, seed=not self._seeded
        )
        self._seeded = True
        self._note(admission)
        return admission.admitted

    def _note(self, admission: Admission) -> None:
        if not admission.refused:
            self.waiting_reason = None
            return
        self._full_until = admission.usage.next_free_at or 0.0
        reason = admission.usage.wait_reason
        if reason != self.waiting_reason:
            self._metrics.event("waiting", reason)
        self.waiting_reason = reason
