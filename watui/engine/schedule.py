"""When a campaign may send now: its start time, each recipient's send window, its deadline.

Pure: every answer takes ``now`` (a clock the caller reads), so tests move time without
sleeping. The rules of a window (its hours, DST, a key of several zones) are watui.rules';
here they are turned into what the sender does next: claim from these zones, wait until then
(and why, in words for people), or pause at the deadline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from watui.rules import (
    Schedule,
    key_is_open,
    next_opening,
    next_window_change,
    parse_send_window,
)
from watui.storage.rows import CampaignRecord

#: However far off the next change is, look again this often: the wall clock can be set.
MAX_WAIT = 60.0


class GateKind(StrEnum):
    OPEN = "open"  # claim now (from ``zones`` when a window applies)
    NOT_STARTED = "not_started"
    OUTSIDE_WINDOWS = "outside_windows"  # every recipient's window is closed
    PAST_DEADLINE = "past_deadline"


@dataclass(frozen=True, slots=True)
class Gate:
    """What the schedule allows at one moment."""

    kind: GateKind
    #: The zone keys whose window is open (claim only these); None: no window, claim any.
    zones: tuple[str, ...] | None = None
    #: When the answer may change next (start, next opening or closing); None: not by time.
    until: float | None = None
    reason: str = ""

    def wait_seconds(self, now: float) -> float:
        """How long to wait before asking again (at most MAX_WAIT)."""
        return MAX_WAIT if self.until is None else min(MAX_WAIT, max(0.0, self.until - now))


class SendSchedule:
    """A campaign's schedule over the zone keys of its recipients still to send."""

    def __init__(self, schedule: Schedule, zone_keys: Sequence[str]) -> None:
        self.schedule = schedule
        self.zone_keys = tuple(zone_keys)
        self._open: tuple[str, ...] = ()
        self._recheck_at = float("-inf")  # the open keys hold until a window edge passes

    @classmethod
    def of(cls, campaign: CampaignRecord, zone_keys: Sequence[str]) -> SendSchedule:
        window = parse_send_window(campaign.send_window) if campaign.send_window else None
        return cls(Schedule(campaign.start_at, window, campaign.deadline), zone_keys)

    def set_zone_keys(self, zone_keys: Sequence[str]) -> None:
        """The zone keys of the rows still to send, read again (a person may have requeued
        rows of a zone that was done); the open ones are worked out afresh."""
        self.zone_keys = tuple(zone_keys)
        self._recheck_at = float("-inf")

    @property
    def deadline(self) -> float | None:
        return self.schedule.deadline

    def gate(self, now: float) -> Gate:
        start, deadline = self.schedule.start_at, self.schedule.deadline
        if deadline is not None and now >= deadline:
            return Gate(GateKind.PAST_DEADLINE, reason=deadline_reason(deadline))
        if start is not None and now < start:
            return Gate(GateKind.NOT_STARTED, until=start, reason=f"starts at {local_time(start)}")
        window = self.schedule.window
        if window is None or not self.zone_keys:
            return Gate(GateKind.OPEN)
        if now >= self._recheck_at:
            self._open = tuple(key for key in self.zone_keys if key_is_open(window, key, now))
            self._recheck_at = next_window_change(window, self.zone_keys, now) or now + MAX_WAIT
        if self._open:
            return Gate(GateKind.OPEN, self._open, self._recheck_at)
        return self.closed(now)

    def closed(self, now: float) -> Gate:
        """Nothing may be sent until the next opening of some recipient's window."""
        window = self.schedule.window
        opening = None if window is None else next_opening(window, self.zone_keys, now)
        if opening is None:
            return Gate(GateKind.OUTSIDE_WINDOWS, reason="no recipient's send window opens in "
                        "the next days (zones too far apart for the window)")
        return Gate(
            GateKind.OUTSIDE_WINDOWS, until=opening,
            reason=f"outside every recipient's window until {utc_time(opening, now)}",
        )


class SendableUntil:
    """Until when the claimed rows waiting for the pacer may still be sent: the earliest window
    change after any of their claims, when some recipient's window may have closed.

    Rows are claimed ahead of their release (a quarter second's worth, or as long as an API
    outage lasts), so a claim-time check alone let sends go after a window closed. The
    dispatcher compares the clock with ``until`` at each release (one float comparison); past
    it, the waiting rows go back to the queue and are claimed again from the zones open then."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = math.inf

    def claimed(self, gate: Gate) -> None:
        """Rows were claimed under ``gate``: only a gate with zones (a send window) has edges."""
        if gate.zones is not None and gate.until is not None:
            self.until = min(self.until, gate.until)

    def reset(self) -> None:
        """No claimed row is waiting any more."""
        self.until = math.inf


def deadline_reason(deadline: float) -> str:
    return f"deadline {local_time(deadline)} reached: paused rather than send late"


def local_time(moment: float) -> str:
    """``2026-12-07 09:00 +01:00`` in this machine's zone."""
    local = datetime.fromtimestamp(moment).astimezone()
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def utc_time(moment: float, now: float) -> str:
    """``08:00 UTC`` within a day of ``now``, else with its date."""
    utc = datetime.fromtimestamp(moment, UTC)
    return f"{utc:%H:%M} UTC" if moment - now < 86_400 else f"{utc:%Y-%m-%d %H:%M} UTC"
