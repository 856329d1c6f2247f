"""Python's cyclic garbage collector, run where its pauses cannot make a request late.

A request in flight holds ~70 container objects for the 0.1-0.3 s it waits for its answer. At
1,000 msg/s the young generations then hold up to 14,000 of them, and an automatic collection
stops the loop for 3-9 ms (measured: gen0 p50 0.8 ms, 81 of 296 over 2 ms; gen1 p50 4 ms).
Falling between the pacer's slot and the request's write, such a pause makes that request reach
the API late while the ones after it do not, and a one-second window at the API then holds more
than the rate: the tightest 1,001 arrivals came within 1.0018 s, a pause away from a 130429.

So while a campaign sends, automatic collection is off and the dispatcher asks for a collection
after each release. It runs once QUIET_TURNS loop turns have passed with no release: a released
request starts, and writes its body (whatsapp.transport), in the first turn after it. It
collects the generation the interpreter would pick, though less often (YOUNG_THRESHOLD). While
the dispatcher waits for rows, the control task's tick collects instead. (The pacer now also
counts a send from its write, so a pause that still falls in between costs a held slot, not a
130429.)
"""

from __future__ import annotations

import asyncio
import gc
from types import TracebackType

#: Loop turns with no release before a due collection runs: two for the request to be written
#: (its task's first step; a second for aiohttp's writer task, which a body not in memory still
#: takes before Python 3.12), and two more because our callback may run before or after the
#: dispatcher within a turn, and before or after the writer.
QUIET_TURNS = 4
#: Net new objects (allocated minus freed, as the interpreter counts) before a young collection;
#: the interpreter's own is 700. Requests in flight are freed by their reference counts, but the
#: count never goes below zero after a collection, so bursts (a claim's rows, a flush's batch)
#: pushed it past 700 every ~70 ms, and each collection walked every young request in flight. At
#: 10,000 (measured at 1,000 msg/s on PostgreSQL): collections over 2 ms fell from 110 to 1 per
#: 20,000 messages, and generation-1 ones from 19 to none.
YOUNG_THRESHOLD = 10_000
#: Releases that may postpone a due collection: unthrottled, a release happens on nearly every
#: turn, and the collection must still run (a pause there delays nothing that is paced).
MAX_POSTPONED = 64

#: Senders holding automatic collection off in this process; the last one out turns it back on.
_holders = 0
_enabled_before = True


def freeze_long_lived_objects() -> None:
    """Move everything alive so far (modules, the UI, the ORM's caches) out of the collector's
    reach, so that a full collection during the run does not walk them (a pause of tens of ms)."""
    gc.collect()
    gc.freeze()


class CollectorBetweenSends:
    """Use as a context manager around sending; call ``released()`` after each release."""

    def __init__(self) -> None:
        self._threshold = YOUNG_THRESHOLD
        self._scheduled = False
        self._turns = 0  # loop turns counted while a collection is scheduled
        self._release_turn = 0  # the turn count at the latest release
        self._postponed = 0
        self._idle = False
        self.collections = 0  # run by us: tests and the benchmark read it

    def __enter__(self) -> CollectorBetweenSends:
        global _holders, _enabled_before
        if _holders == 0:
            _enabled_before = gc.isenabled()
        _holders += 1
        gc.disable()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        global _holders
        _holders -= 1
        if _holders == 0 and _enabled_before:
            gc.enable()

    def released(self, loop: asyncio.AbstractEventLoop) -> None:
        """A request was just released: collect once it is written, if a collection is due."""
        self._idle = False
        self._release_turn = self._turns
        if self._scheduled:
            self._postponed += 1
        elif gc.get_count()[0] > self._threshold:
            self._scheduled = True
            self._postponed = 0
            loop.call_soon(self._turn, loop)

    def idle(self) -> None:
        """The dispatcher waits for rows: ``collect_if_idle`` may collect until the next release."""
        self._idle = True

    def collect_if_idle(self) -> None:
        """Called now and then (the control tick): no release is waiting for its write, so a due
        collection may run at once."""
        if self._idle and not self._scheduled and gc.get_count()[0] > self._threshold:
            self._collect()

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._turns += 1
        if self._turns - self._release_turn < QUIET_TURNS and self._postponed < MAX_POSTPONED:
            loop.call_soon(self._turn, loop)
            return
        self._scheduled = False
        self._collect()

    def _collect(self) -> None:
        """The generation CPython's own trigger would pick: the oldest whose count is over."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        generation = next((g for g in (2, 1) if thresholds[g] and counts[g] > thresholds[g]), 0)
        gc.collect(generation)
        self.collections += 1
