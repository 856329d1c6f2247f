"""Each recipient's time zones, for a campaign with a send window: from the number, or from the
contacts' ``tz`` column when the row gives one.

Apart from phones.py because it runs only for campaigns with a window (it costs about as much
as the full parse of a number), and because its facts are phonenumbers' time-zone data, which
change apart from its numbering plans.
"""

from __future__ import annotations

import functools

from phonenumbers import PhoneNumber
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.timezone import time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA

from watui.errors import InvalidPhone
from watui.rules import unknown_zone_reason, zone_key

#: What phonenumbers answers when it knows no zone for a number.
_UNKNOWN_ZONE = "Etc/Unknown"


def recipient_zone_key(e164: str, given: str | None) -> str:
    """The row's zone key: the zone it gives, else every zone the number may be in (the window
    must then be open in all of them). InvalidPhone (the row's reject reason) when neither
    names a zone."""
    if given:
        if reason := unknown_zone_reason(given):
            raise InvalidPhone(f"{reason} (tz column)")
        return given
    zones = number_zones(e164)
    if not zones:
        raise InvalidPhone(
            f"no time zone is known for {e164}: give it one in a tz column (e.g. Europe/Madrid)"
        )
    return zone_key(zones)


def number_zones(e164: str) -> tuple[str, ...]:
    """The IANA zones phonenumbers' data gives for an E.164 number; empty when unknown."""
    digits = e164[1:]
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return _zones(code, digits[length:])
    return ()


def _zones(code: int, national: str) -> tuple[str, ...]:
    """phonenumbers' answer; at once for a country whose numbers all share one set of zones
    (its data has no prefix longer than the country code), where time_zones_for_number would
    spend most of its time telling the number's type apart for the same answer."""
    found = _country_zones(code)
    if found is None:
        zeros = len(national) - len(national.lstrip("0"))  # Italy's numbers keep theirs
        found = time_zones_for_number(PhoneNumber(
            country_code=code, national_number=int(national), italian_leading_zero=zeros > 0 or None,
            number_of_leading_zeros=zeros if zeros > 1 else None,
        ))
    return tuple(zone for zone in found if zone != _UNKNOWN_ZONE)


@functools.cache
def _country_zones(code: int) -> tuple[str, ...] | None:
    """The zones of every number of the country code, when its data does not split it."""
    prefix = str(code)
    if any(key.startswith(prefix) and key != prefix for key in TIMEZONE_DATA):
        return None
    return TIMEZONE_DATA.get(prefix)
