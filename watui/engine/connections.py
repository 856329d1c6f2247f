"""How many requests may be in flight at once: the connection pool a run needs.

With HTTP/1.1 a request holds its connection until its answer, so sending ``rate`` messages a
second whose answers take ``latency`` seconds needs ``rate × latency`` connections (Little's
law). A fixed pool of 100 capped 1,000 msg/s at ~500 when answers took 100-300 ms, so by default
(``http.max_connections = "auto"``) the limit follows the rate and the observed p95 latency like
the window does: grown at once when answers slow down, shrunk slowly when they speed up (a lull
must not leave the next slow spell short), never above ``rules.MAX_AUTO_CONNECTIONS``. A number
in ``http.max_connections`` fixes it.
"""

from __future__ import annotations

import math

from watui.engine.window import DEFAULT_LATENCY
from watui.rules import MAX_AUTO_CONNECTIONS
from watui.settings import HttpSettings

HEADROOM = 1.5  # over the p95 latency: latencies vary between control ticks
FLOOR = 8
SHRINK_PER_RESIZE = 0.05  # at most this share is given up per resize (once a second)


def connections_needed(rate: float, p95_latency: float | None) -> int:
    """Connections that keep ``rate`` sends/s going when answers take ``p95_latency`` seconds
    (an assumed 0.3 s before any answer came back), within the floor and the ceiling."""
    wanted = math.ceil(rate * (p95_latency or DEFAULT_LATENCY) * HEADROOM)
    return max(FLOOR, min(MAX_AUTO_CONNECTIONS, wanted))


def connections_to_open_first(rate: float, limit: int) -> int:
    """Connections opened before a run's first send: those ``rate`` keeps busy once answers
    come back at the assumed latency (no headroom: the pool grows by itself), within ``limit``."""
    return max(1, min(limit, math.ceil(rate * DEFAULT_LATENCY)))


class ConnectionLimit:
    """The current limit on requests in flight, and the highest it reached in this run."""

    def __init__(self, http: HttpSettings, rate: float, share: int = 1) -> None:
        """``share``: this sender is one of that many numbers sharing a fixed pool."""
        fixed = http.max_connections
        self.fixed: int | None = None if fixed == "auto" else max(1, fixed // share)
        self.limit = self.fixed or connections_needed(rate, None)
        self.peak = self.limit

    def resize(self, rate: float, p95_latency: float | None) -> int:
        """The limit for the current rate and answer times: up at once, down by at most
        SHRINK_PER_RESIZE of it; a fixed limit never moves."""
        if self.fixed is not None:
            return self.limit
        wanted = connections_needed(rate, p95_latency)
        if wanted < self.limit:
            wanted = max(wanted, math.floor(self.limit * (1 - SHRINK_PER_RESIZE)))
        self.limit = wanted
        self.peak = max(self.peak, wanted)
        return wanted
