"""Phone numbers as people type them, turned into E.164 (or refused with the reason).

Apart from the CSV reading because the rules are phonenumbers' and change with its metadata,
not with the file format; and because the fast path for numbers already in E.164 is most of a
large import's speed, which is easier to keep when it stands alone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberDesc,
    PhoneNumberFormat,
)
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from watui.errors import ContactsError, InvalidPhone


class PhoneNormaliser:
    """Turns the phone numbers people type into E.164, fast for numbers already in E.164.

    Most contact exports already hold ``+<digits>``; for those the country code is split off by
    hand and validity is checked with precompiled rules (``_CountryRules``): phonenumbers' own
    parse and check would otherwise be most of a large import's time. Anything else, and any
    number the fast path cannot vouch for, goes through phonenumbers' full parser.
    """

    def __init__(self, default_region: str | None = None) -> None:
        self.default_region = check_region(default_region)

    def to_e164(self, raw: str) -> str:
        if raw[:1] == "+" and raw[1:2] != "0" and raw[1:].isdigit() and raw.isascii():
            fast = self._e164_fast(raw)
            if fast is not None:
                return fast
        return self._e164_full(raw)

    @staticmethod
    def _e164_fast(raw: str) -> str | None:
        """The number itself when it is valid E.164; None when the full parser must decide."""
        digits = raw[1:]
        for length in (1, 2, 3):
            code = int(digits[:length])
            if code in COUNTRY_CODE_TO_REGION_CODE:
                national = digits[length:]
                # Leading zeros (Italy and others) need the parser's special handling.
                if not national or national[0] == "0" or len(digits) > 15:
                    return None
                rules = _country_rules(code)
                if rules.parser_would_rewrite(national):
                    return None
                return raw if rules.is_valid(code, national) else None
        return None

    def _e164_full(self, raw: str) -> str:
        try:
            number = phonenumbers.parse(raw, self.default_region)
        except NumberParseException as error:
            if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
                if self.default_region is None and not raw.startswith(("+", "00")):
                    raise InvalidPhone(
                        f"phone {raw!r} has no country code: write it as +<country code><number> "
                        "or give the contacts a default region"
                    ) from None
                raise InvalidPhone(f"phone {raw!r} has an unknown country code") from None
            raise InvalidPhone(f"phone {raw!r} is not a phone number") from None
        if not phonenumbers.is_valid_number(number):
            where = f" (default region {self.default_region})" if self.default_region else ""
            raise InvalidPhone(f"phone {raw!r} is not a valid phone number{where}")
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@dataclass(frozen=True)
class _CountryRules:
    """phonenumbers' validity rules for one country calling code, compiled once.

    phonenumbers calls a number valid when it matches the general description and at least one
    type (fixed line, mobile, toll free...), each with its own allowed lengths. Here the type
    patterns allowed at each length are joined into one regex, so a check is two regex calls
    instead of up to ten lookups and matches; a test compares the answers with
    ``phonenumbers.is_valid_number``. Codes shared by several regions (+1, +7, +44...) defer
    to phonenumbers itself.
    """

    general_lengths: frozenset[int]
    general: re.Pattern[str] | None
    types_by_length: dict[int, re.Pattern[str]]
    national_prefix: re.Pattern[str] | None
    single_region: bool

    def parser_would_rewrite(self, national: str) -> bool:
        """True when phonenumbers.parse might strip a national prefix from these digits."""
        if self.national_prefix is None:
            return False
        match = self.national_prefix.match(national)
        return match is not None and (match.end() > 0 or any(match.groups()))

    def is_valid(self, code: int, national: str) -> bool:
        if not self.single_region:
            number = PhoneNumber(country_code=code, national_number=int(national))
            return bool(phonenumbers.is_valid_number(number))
        length = len(national)
        if self.general is None or (self.general_lengths and length not in self.general_lengths):
            return False
        types = self.types_by_length.get(length)
        return (
            types is not None
            and self.general.fullmatch(national) is not None
            and types.fullmatch(national) is not None
        )


#: National significant numbers are at most 17 digits (phonenumbers' MAX_LENGTH_FOR_NSN).
_MAX_NSN_LENGTH = 17


@functools.cache
def _country_rules(code: int) -> _CountryRules:
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if metadata is None:
        return _CountryRules(frozenset(), None, {}, None, single_region=False)
    kinds = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(metadata.mobile)
    general = metadata.general_desc
    prefix = metadata.national_prefix_for_parsing
    return _CountryRules(
        general_lengths=frozenset(general.possible_length or ()) if general else frozenset(),
        general=_pattern_of(general),
        types_by_length=_types_by_length(kinds),
        national_prefix=re.compile(prefix) if prefix else None,
        single_region=len(regions) == 1 and regions[0] != "001",
    )


def _pattern_of(desc: PhoneNumberDesc | None) -> re.Pattern[str] | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return re.compile(desc.national_number_pattern)


def _types_by_length(kinds: Sequence[PhoneNumberDesc | None]) -> dict[int, re.Pattern[str]]:
    """For each length, one regex matching exactly the numbers some type allows at it."""
    by_length: dict[int, list[str]] = {}
    for desc in kinds:
        if desc is None or not desc.national_number_pattern:
            continue
        # No lengths listed means "as the general description", checked before.
        lengths = desc.possible_length or range(1, _MAX_NSN_LENGTH + 1)
        for length in lengths:
            by_length.setdefault(length, []).append(desc.national_number_pattern)
    return {
        length: re.compile("|".join(f"(?:{pattern})" for pattern in patterns))
        for length, patterns in by_length.items()
    }


def check_region(region: str | None) -> str | None:
    """The region code in upper case, or ContactsError saying what a region code looks like."""
    if region is None or region == "":
        return None
    upper = region.strip().upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ContactsError(
            f"default region {region!r} is not a known region code: use two letters such as "
            "ES, US, GB or BR"
        )
    return upper


#: "+" and three digits: enough of an E.164 number for every country calling code, so that SQL
#: may group numbers by it (a few hundred groups) and Python name the code once per group.
CALLING_CODE_PREFIX_CHARS = 4


def calling_code(e164_prefix: str) -> int | None:
    """The country calling code an E.164 number (or its first digits) starts with."""
    digits = e164_prefix.lstrip("+")
    for length in (1, 2, 3):
        if len(digits) >= length and int(digits[:length]) in COUNTRY_CODE_TO_REGION_CODE:
            return int(digits[:length])
    return None
