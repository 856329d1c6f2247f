"""When to send, with a clock the test controls: start time, send windows in each recipient's
zone (across midnight, across a DST change, a number with several zones), deadline."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType
from phonenumbers.timezone import time_zones_for_number

from watui.engine.schedule import GateKind, SendSchedule
from watui.errors import InvalidPhone
from watui.rules import (
    Field,
    Schedule,
    key_is_open,
    next_opening,
    parse_moment,
    parse_send_window,
    schedule_from_text,
)
from watui.storage.zones import number_zones, recipient_zone_key

MADRID = ZoneInfo("Europe/Madrid")
NINE_TO_EIGHT = parse_send_window("09:00-20:00")


def at(text: str, zone: ZoneInfo = MADRID) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_a_time_needs_an_offset_or_a_zone_name() -> None:
    assert parse_moment("2026-12-07T09:00+01:00", "start time") == at("2026-12-07T09:00")
    assert parse_moment("2026-12-07T09:00 Europe/Madrid", "start time") == at("2026-12-07T09:00")
    assert parse_moment("2026-12-07T09:00[Europe/Madrid]", "x") == at("2026-12-07T09:00")
    with pytest.raises(ValueError, match="has no offset or time zone: add one"):
        parse_moment("2026-12-07T09:00", "start time")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        parse_moment("2026-12-07T09:00 Mars/Olympus", "start time")
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_moment("next monday", "deadline")


@pytest.mark.parametrize("text", ["9-20", "09:00-09:00", "25:00-06:00", "09:60-10:00", ""])
def test_a_bad_window_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="09:00-20:00"):
        parse_send_window(text)


def test_schedule_problems_are_named_by_field_all_at_once() -> None:
    now = at("2026-12-06T12:00")
    _, problems = schedule_from_text("2026-12-07T09:00", "9-20", "2026-12-01T00:00Z", now=now)
    assert [p.field for p in problems] == [Field.START_AT, Field.SEND_WINDOW, Field.DEADLINE]
    _, problems = schedule_from_text(
        "2026-12-08T09:00+01:00", None, "2026-12-07T09:00+01:00", now=now
    )
    assert [p.message for p in problems] == [
        "deadline '2026-12-07T09:00+01:00' is not after the start time: give a later one"
    ]
    schedule, problems = schedule_from_text("", " ", None, now=now)
    assert schedule == Schedule() and problems == []


def test_a_window_across_midnight_is_open_late_and_early() -> None:
    night = parse_send_window("22:00-06:00")
    assert key_is_open(night, "Europe/Madrid", at("2026-12-06T23:30"))
    assert key_is_open(night, "Europe/Madrid", at("2026-12-07T05:59"))
    assert not key_is_open(night, "Europe/Madrid", at("2026-12-07T06:00"))
    assert next_opening(night, ["Europe/Madrid"], at("2026-12-07T12:00")) == at("2026-12-07T22:00")


def test_windows_follow_each_zones_daylight_saving() -> None:
    """Madrid moves to summer time on 29 March 2026: 09:00 local is 08:00 UTC before, 07:00
    UTC after."""
    before = next_opening(NINE_TO_EIGHT, ["Europe/Madrid"], at("2026-03-28T21:00"))
    after = next_opening(NINE_TO_EIGHT, ["Europe/Madrid"], at("2026-03-29T21:00"))
    assert before == datetime.fromisoformat("2026-03-29T07:00+00:00").timestamp()
    assert after == datetime.fromisoformat("2026-03-30T07:00+00:00").timestamp()


def test_a_number_with_several_zones_is_open_only_when_open_in_all() -> None:
    key = recipient_zone_key("+34612345678", None)  # a Spanish mobile: mainland or Canaries
    assert key == "Atlantic/Canary|Europe/Madrid"
    nine_madrid = at("2026-12-07T09:00")  # 08:00 in the Canaries
    assert key_is_open(NINE_TO_EIGHT, "Europe/Madrid", nine_madrid)
    assert not key_is_open(NINE_TO_EIGHT, key, nine_madrid)
    assert next_opening(NINE_TO_EIGHT, [key], nine_madrid) == at("2026-12-07T10:00")
    assert not key_is_open(NINE_TO_EIGHT, key, at("2026-12-07T20:30"))  # Madrid has closed
    assert set(number_zones("+12085551234")) == {"America/Boise", "America/Los_Angeles"}


def test_a_tz_column_overrides_the_numbers_zones_and_must_be_known() -> None:
    assert recipient_zone_key("+34612345678", "America/Chicago") == "America/Chicago"
    with pytest.raises(InvalidPhone, match="unknown time zone 'Europe/Atlantis'"):
        recipient_zone_key("+34612345678", "Europe/Atlantis")


def schedule(start: str | None = None, window: str | None = None, deadline: str | None = None,
             keys: tuple[str, ...] = ("Europe/Madrid",)) -> SendSchedule:
    return SendSchedule(
        Schedule(
            None if start is None else at(start),
            None if window is None else parse_send_window(window),
            None if deadline is None else at(deadline),
        ),
        keys,
    )


def test_the_gate_waits_for_the_start_then_opens_then_pauses_at_the_deadline() -> None:
    plan = schedule(start="2026-12-07T09:00", deadline="2026-12-07T18:00")
    before = plan.gate(at("2026-12-07T08:59"))
    assert before.kind is GateKind.NOT_STARTED and before.until == at("2026-12-07T09:00")
    assert before.reason.startswith("starts at 2026-12-07 ")
    assert before.wait_seconds(at("2026-12-07T08:59")) == 60
    assert plan.gate(at("2026-12-07T09:00")).kind is GateKind.OPEN
    assert plan.gate(at("2026-12-07T17:59:59")).zones is None  # no window: any recipient
    late = plan.gate(at("2026-12-07T18:00"))
    assert late.kind is GateKind.PAST_DEADLINE and "paused rather than send late" in late.reason


def test_the_gate_names_the_open_zones_and_when_they_change() -> None:
    keys = ("Europe/Madrid", "America/Chicago", "Asia/Tokyo", "Atlantic/Canary|Europe/Madrid")
    plan = schedule(window="09:00-20:00", keys=keys)
    morning = plan.gate(at("2026-12-07T09:30"))  # Tokyo 17:30, Chicago 02:30, Canary 08:30
    assert morning.zones == ("Europe/Madrid", "Asia/Tokyo")
    assert morning.until == at("2026-12-07T10:00")  # the Canaries open
    assert plan.gate(at("2026-12-07T10:00")).zones == (
        "Europe/Madrid", "Asia/Tokyo", "Atlantic/Canary|Europe/Madrid"
    )
    night = plan.gate(at("2026-12-08T00:30"))  # Madrid 00:30, Tokyo 08:30, Chicago 17:30
    assert night.zones == ("America/Chicago",)


def test_outside_every_window_the_gate_says_until_when_in_utc() -> None:
    plan = schedule(window="09:00-20:00", keys=("Europe/Madrid",), deadline="2026-12-09T12:00")
    closed = plan.gate(at("2026-12-07T21:00"))
    assert closed.kind is GateKind.OUTSIDE_WINDOWS
    assert closed.until == at("2026-12-08T09:00")
    assert closed.reason == "outside every recipient's window until 08:00 UTC"
    assert closed.wait_seconds(at("2026-12-07T21:00")) == 60  # looks again at least each minute


def test_number_zones_are_phonenumbers_own_for_every_regions_example_numbers() -> None:
    """The shortcut for countries of one set of zones, and numbers with a leading zero (Italy),
    give what time_zones_for_number gives."""
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            wanted = tuple(zone for zone in time_zones_for_number(example) if zone != "Etc/Unknown")
            assert number_zones(e164) == wanted, (region, kind, e164)
            checked += 1
    assert checked > 500


def test_zone_keys_read_again_take_effect_at_once() -> None:
    """Rows requeued in a zone that was done: the next gate names that zone, without waiting
    for a window edge."""
    plan = schedule(window="09:00-20:00", keys=("Europe/Madrid",))
    assert plan.gate(at("2026-12-07T12:00")).zones == ("Europe/Madrid",)
    plan.set_zone_keys(["Europe/Madrid", "Europe/Paris"])
    assert plan.gate(at("2026-12-07T12:00:01")).zones == ("Europe/Madrid", "Europe/Paris")
