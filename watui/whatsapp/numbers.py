"""The business account's phone numbers, as the Graph API describes them.

``GET /{version}/{waba_id}/phone_numbers`` (../shared/docs/cloud-api.md, Phone numbers) tells
each number's quality rating and throughput level: what Meta throttles and restricts on, and
what the engine paces and pauses by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

#: The fields asked for. ``whatsapp_business_manager_messaging_limit`` replaces the deprecated
#: ``messaging_limit_tier``, which is still read when an older API version answers with it.
NUMBER_FIELDS = (
    "id,display_phone_number,verified_name,quality_rating,throughput,"
    "whatsapp_business_manager_messaging_limit"
)
NUMBERS_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """One of the account's numbers; None where the API did not say."""

    id: str
    display_phone_number: str
    verified_name: str | None
    quality_rating: str | None  # GREEN / YELLOW / RED / UNKNOWN
    throughput_level: str | None  # STANDARD / HIGH / NOT_APPLICABLE
    messaging_limit: str | None  # TIER_2K / TIER_10K / ... / TIER_UNLIMITED


class AccountReader(Protocol):
    """What listing needs of the client (``WhatsAppClient.get_account``)."""

    async def get_account(self, edge: str, params: dict[str, Any]) -> dict[str, Any]: ...


async def list_phone_numbers(client: AccountReader) -> list[PhoneNumber]:
    """Every number of the business account, following the pages.

    Raises TokenRefused, AccountNotFound or ApiUnavailable (one line each)."""
    numbers: list[PhoneNumber] = []
    params: dict[str, Any] = {"fields": NUMBER_FIELDS, "limit": NUMBERS_PAGE_SIZE}
    while True:
        page = await client.get_account("phone_numbers", params)
        numbers.extend(_number(item) for item in page.get("data") or [] if _is_number(item))
        paging = page.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after")
        if not after or not paging.get("next"):
            return numbers
        params = {**params, "after": after}


def _is_number(item: object) -> bool:
    return isinstance(item, dict) and isinstance(item.get("id"), str) and bool(item["id"])


def _number(item: dict[str, Any]) -> PhoneNumber:
    throughput = item.get("throughput")
    limit = item.get("whatsapp_business_manager_messaging_limit") or item.get("messaging_limit_tier")
    return PhoneNumber(
        id=item["id"],
        display_phone_number=_text(item.get("display_phone_number")) or item["id"],
        verified_name=_text(item.get("verified_name")),
        quality_rating=_text(item.get("quality_rating")),
        throughput_level=_text(throughput.get("level")) if isinstance(throughput, dict) else None,
        messaging_limit=_text(limit),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
