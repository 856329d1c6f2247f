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

from watui.errors import InvalidPhone
from watui.rules import unknown_zone_problem, zone_key

#: What phonenumbers answers when it knows no zone for a number.
_UNKNOWN_ZONE = "Etc/Unknown"


def recipient_zone_key(e164: str, given: str | None) -> str:
    """The row's zone key: the zone it gives, else every zone the number may be in (the window
    must then be open in all of them). InvalidPhone (the row's reject reason) when neither
    names a zone."""
    if given:
        if problem := unknown_zone_problem(given):
            raise InvalidPhone(f"{problem} (tz column)")
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
            return _zones(code, int(digits[length:]))
    return ()


@functools.lru_cache(maxsize=65_536)
def _zones(code: int, national: int) -> tuple[str, ...]:
    found = time_zones_for_number(PhoneNumber(country_code=code, national_number=national))
    return tuple(zone for zone in found if zone != _UNKNOWN_ZONE)
