"""The failure-rate rule: when too many recipients fail, something is wrong with the campaign
(a bad list, a broken template), and sending on would burn the number's reputation.

Pure (no I/O, no clock) and cheap: the sender records every sent, retried or failed recipient
(an answer in doubt or a refused account is not the recipient's doing and is not counted).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from watui.settings import SafetySettings


class FailureRateRule:
    """Pause when the share of failures over the last ``safety.window`` outcomes exceeds
    ``safety.max_failure_rate``, once at least ``safety.min_outcomes`` were seen."""

    __slots__ = ("_counted", "_failures", "_limit", "_min_outcomes", "_recent")

    def __init__(self, safety: SafetySettings, *, counted: str = "sends") -> None:
        self._counted = counted  # what an outcome is, in the pause reason
        self._recent: deque[bool] = deque(maxlen=safety.window)
        self._failures = 0
        self._limit = safety.max_failure_rate
        self._min_outcomes = max(safety.min_outcomes, 1)

    def record(self, failed: bool) -> float | None:
        """Count one outcome; the failure rate when it is now over the limit, else None."""
        recent = self._recent
        if len(recent) == recent.maxlen and recent[0]:
            self._failures -= 1
        recent.append(failed)
        self._failures += failed
        seen = len(recent)
        # A success never raises the rate, so once the rule has been checked it needs checking
        # again only after a failure: no division per message on the sender's hot path.
        if seen < self._min_outcomes or (not failed and seen != self._min_outcomes):
            return None
        rate = self._failures / seen
        return rate if rate > self._limit else None

    def reason(self, rate: float, most_common: str | None) -> str:
        """The pause reason a person reads; ``most_common`` is the error seen most often."""
        cause = f" (most common: {most_common})" if most_common else ""
        return (
            f"failure rate {rate:.0%} over the last {len(self._recent)} {self._counted} is above "
            f"{self._limit:.0%}{cause}"
        )


def interleaved(failed: int, succeeded: int, most: int) -> Iterator[bool]:
    """``failed`` failures spread evenly among ``succeeded`` successes, at most ``most`` in all
    (the share kept): outcomes that arrive as counts in a bunch, such as the statuses Meta
    redelivers after a receiver outage, then weigh in the rule as they happened, not as a run
    of failures at the window's end."""
    total = failed + succeeded
    kept = min(total, most)
    failures = round(failed * kept / total) if total else 0
    for index in range(kept):
        yield (index + 1) * failures // kept > index * failures // kept
