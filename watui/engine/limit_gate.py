"""The sender's claims, passed through the 24-hour messaging limit.

Apart from the sender so that its claim stays one call: unlimited, this is the plain claim and
nothing more; limited, each claim's numbers are reserved (storage.messaging_limit.admit) and the
rows that would pass the limit go back to the queue until the next slot frees. Once a claim is
refused, the gate says why the campaign waits and claims only every PROBE_EVERY seconds until
that slot: each such claim sends the numbers already in the window (they cost nothing) and puts
the new ones off, so it walks the queue without taking the same rows again and again.
"""

from __future__ import annotations

from collections.abc import Sequence

from watui.engine.metrics import EngineMetrics
from watui.settings import Settings
from watui.storage import claims, messaging_limit
from watui.storage.database import Database
from watui.storage.messaging_limit import Admission
from watui.storage.sending.outcomes import ClaimedRecipient

#: While the limit is reached, how often a claim looks for numbers already in the window.
PROBE_EVERY = 5.0


class MessagingLimitGate:
    """Claims for one sender; ``waiting_reason`` is set while the limit holds the campaign."""

    def __init__(self, db: Database, settings: Settings, metrics: EngineMetrics) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._full_until = 0.0
        self._next_probe = 0.0
        self._seeded = False
        self.waiting_reason: str | None = None

    async def claim(
        self, step_id: int, owner: str, limit: int, *, lease_seconds: float, now: float,
        zones: Sequence[str] | None = None, sender: str | None = None,
    ) -> list[ClaimedRecipient]:
        """Like ``claims.claim`` (the same filters), but never past the 24-hour messaging
        limit."""
        tier = await messaging_limit.current_limit(self._db, self._settings.whatsapp)
        if tier is not None and now < self._full_until and now < self._next_probe:
            return []
        rows = await claims.claim(
            self._db, step_id, owner, limit, lease_seconds=lease_seconds, now=now, zones=zones,
            sender=sender,
        )
        if tier is None:
            return rows
        if not rows:
            return rows
        admission = await messaging_limit.admit(
            self._db, rows, tier, owner, now, seed=not self._seeded
        )
        self._seeded = True
        self._note(admission, now)
        return admission.admitted

    def _note(self, admission: Admission, now: float) -> None:
        if not admission.refused:
            if now >= self._full_until:
                self.waiting_reason = None
            return
        self._full_until = admission.usage.next_free_at or 0.0
        self._next_probe = now + PROBE_EVERY
        reason = admission.usage.wait_reason
        if reason != self.waiting_reason:
            self._metrics.event("waiting", reason)
        self.waiting_reason = reason
