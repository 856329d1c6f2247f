"""Small text formatters shared by the screens (numbers, durations, bars)."""

from __future__ import annotations

import time

_BAR_EIGHTHS = " ▏▎▍▌▋▊▉"


def count(value: int) -> str:
    """12345 -> '12,345'."""
    return f"{value:,}"


def rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}/s" if value >= 10 else f"{value:,.1f}/s"


def duration(seconds: float | None) -> str:
    """A short human duration: '45s', '3m 05s', '2h 07m'; '—' when unknown."""
    if seconds is None or seconds < 0:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def milliseconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.0f} ms"


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction * 100:.1f}%"


def bar(fraction: float, width: int) -> str:
    """A text progress bar with eighth-cell resolution, exactly ``width`` cells wide."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (_BAR_EIGHTHS[rest] if rest and full < width else "")
    return text.ljust(width, "·")


def day_time(at: float, now: float) -> str:
    """Local 'HH:MM' on the day of ``now``, else 'MM-DD HH:MM' (a start time, a deadline)."""
    same_day = time.localtime(at)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M" if same_day else "%m-%d %H:%M", time.localtime(at))


def clock_time(at: float) -> str:
    """Local wall-clock time of day, 'HH:MM:SS'."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def utc_minute(at: float) -> str:
    """A date and time to the minute, in UTC: '2026-12-06 10:43'."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))
