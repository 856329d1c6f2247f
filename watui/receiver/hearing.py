"""The applier's memory of which numbers it heard statuses for, written to the database at
most once a second per number (storage/hearing.py keeps it for every process and restart)."""

from __future__ import annotations

from watui.storage import hearing
from watui.storage.database import Database

#: Seconds of received statuses a number's row may lag: one write per number per second at
#: most, whatever the rate of statuses; far below the grace period it serves (minutes).
WRITE_EVERY_S = 1.0
#: Two rows written one after the other may be this much further apart than the statuses
#: behind them (a write skipped just short of the second, then a pass later): a silence
#: breaks the run of statuses only when longer than the grace period plus this.
WRITE_SLACK_S = 2 * WRITE_EVERY_S


class HeardNumbers:
    """``heard(number, at)`` for each status applied; ``write()`` after each pass."""

    def __init__(self, db: Database, *, gap: float) -> None:
        self._db = db
        self._gap = gap + WRITE_SLACK_S
        self._unwritten: dict[str, float] = {}
        self._written: dict[str, float] = {}

    def heard(self, number: str, at: float) -> None:
        if at > self._unwritten.get(number, float("-inf")):
            self._unwritten[number] = at

    async def write(self, *, all_heard: bool = False) -> None:
        """Store the numbers whose latest status is a second newer than the one stored (or
        every one heard); the rest wait for a later pass (a failed write too: they are kept)."""
        due = {
            number: at for number, at in self._unwritten.items()
            if all_heard or at - self._written.get(number, float("-inf")) >= WRITE_EVERY_S
        }  # fmt: skip
        if not due:
            return
        await hearing.record_heard(self._db, due, gap=self._gap)
        self._written.update(due)
        for number in due:
            del self._unwritten[number]

    async def unconfirmed_before(self, number: str | None, now: float, grace: float) -> float | None:
        """See ``storage.hearing.unconfirmed_before`` (what this process and others heard)."""
        await self.write(all_heard=True)  # every five passes: the latest, not a second behind
        return await hearing.unconfirmed_before(self._db, number, now=now, grace=grace, gap=self._gap)
