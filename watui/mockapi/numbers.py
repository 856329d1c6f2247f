"""The mock's phone numbers: what ``GET /{version}/{waba_id}/phone_numbers`` lists, and what
``POST /_mock/numbers`` changes while it runs (quality, throughput level, messaging limit).

A change that Meta would announce is also posted as a ``phone_number_quality_update`` webhook
when a webhook target is configured: falling to RED is FLAGGED, rising from RED is UNFLAGGED, a
move to HIGH is THROUGHPUT_UPGRADE, a messaging limit change UPGRADE or DOWNGRADE. Only numbers
configured here are listed: the mock knows nothing of the ids its senders use until told.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from watui.whatsapp.webhooks import DOWNGRADE, FLAGGED, THROUGHPUT_UPGRADE, UNFLAGGED, UPGRADE

QUALITIES = ("GREEN", "YELLOW", "RED", "UNKNOWN")
THROUGHPUT_LEVELS = ("STANDARD", "HIGH", "NOT_APPLICABLE")
#: Messaging limit tiers, lowest first (an UPGRADE moves right).
LIMIT_TIERS = ("TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED")
_CHANGEABLE = ("display_phone_number", "verified_name", "quality_rating", "throughput",
               "messaging_limit")  # fmt: skip


@dataclass(frozen=True, slots=True)
class MockNumber:
    id: str
    display_phone_number: str
    verified_name: str = "Mock Business"
    quality_rating: str = "GREEN"
    throughput: str = "STANDARD"  # throughput.level
    messaging_limit: str = "TIER_2K"

    def listed(self) -> dict[str, Any]:
        """As the Graph API lists it."""
        return {
            "id": self.id,
            "display_phone_number": self.display_phone_number,
            "verified_name": self.verified_name,
            "quality_rating": self.quality_rating,
            "throughput": {"level": self.throughput},
            "whatsapp_business_manager_messaging_limit": self.messaging_limit,
        }


def default_display(phone_number_id: str) -> str:
    """A display number for an id nobody named: +1 555 and the id's last seven digits."""
    digits = phone_number_id[-7:].rjust(7, "0")
    return f"+1 555-{digits[:3]}-{digits[3:]}"


class MockNumbers:
    """The configured numbers, by id, in the order they were added."""

    def __init__(self) -> None:
        self.by_id: dict[str, MockNumber] = {}

    def listed(self) -> list[dict[str, Any]]:
        return [number.listed() for number in self.by_id.values()]

    def change(self, body: Any) -> tuple[MockNumber, list[dict[str, Any]]]:
        """Add or change the number ``body["id"]`` names; the number as it is now, and the
        ``phone_number_quality_update`` values Meta would post for the change.

        ValueError says what is wrong with the body (nothing changes then)."""
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"].isdigit():
            raise ValueError("POST /_mock/numbers: give a JSON object with id (digits)")
        unknown = sorted(set(body) - {"id", *_CHANGEABLE})
        if unknown:
            raise ValueError(f"POST /_mock/numbers: unknown key {unknown[0]!r}; "
                             f"allowed: id, {', '.join(_CHANGEABLE)}")
        _check(body, "quality_rating", QUALITIES)
        _check(body, "throughput", THROUGHPUT_LEVELS)
        _check(body, "messaging_limit", LIMIT_TIERS)
        old = self.by_id.get(body["id"]) or MockNumber(body["id"], default_display(body["id"]))
        new = replace(old, **{key: str(value) for key, value in body.items() if key != "id"})
        self.by_id[new.id] = new
        return new, _announcements(old, new)

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(number) for number in self.by_id.values()]


def _check(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    if key in body and body[key] not in allowed:
        raise ValueError(f"POST /_mock/numbers: {key} must be one of {', '.join(allowed)}")


def _announcements(old: MockNumber, new: MockNumber) -> list[dict[str, Any]]:
    """The webhook values for what changed from ``old`` to ``new``, as Meta words them."""
    display = "".join(char for char in new.display_phone_number if char.isdigit())
    events: list[tuple[str, str]] = []
    if new.quality_rating == "RED" and old.quality_rating != "RED":
        events.append((FLAGGED, new.messaging_limit))
    elif old.quality_rating == "RED" and new.quality_rating != "RED":
        events.append((UNFLAGGED, new.messaging_limit))
    if new.throughput == "HIGH" and old.throughput != "HIGH":
        events.append((THROUGHPUT_UPGRADE, "TIER_UNLIMITED"))
    if new.messaging_limit != old.messaging_limit:
        rising = LIMIT_TIERS.index(new.messaging_limit) > LIMIT_TIERS.index(old.messaging_limit)
        events.append((UPGRADE if rising else DOWNGRADE, new.messaging_limit))
    return [
        {"display_phone_number": display, "event": event, "current_limit": limit,
         "max_daily_conversations_per_business": new.messaging_limit}
        for event, limit in events
    ]  # fmt: skip
