"""The numbers screen's figures: the account's numbers as last heard, and asking the API again.

Apart from live.py so that the Backend stays a list of thin methods; the polling and recording
are the engine's (``engine.number_health.refresh_numbers``), shared with ``watui numbers`` and
the watcher of a run.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from watui.engine.number_health import refresh_numbers
from watui.errors import WatuiError
from watui.rules import throughput_rate
from watui.service.models import NumberRow
from watui.settings import Settings
from watui.storage.database import DATABASE_UNAVAILABLE, Database
from watui.storage.number_health import list_number_health
from watui.whatsapp.numbers import list_phone_numbers


async def refresh(db: Database, settings: Settings, client: Any) -> str | None:
    """Poll the account's numbers and record them; what stood in the way, as one line (None:
    done)."""
    if not settings.whatsapp.waba_id:
        return "whatsapp.waba_id is not set: the numbers cannot be asked for"
    try:
        await refresh_numbers(db, partial(list_phone_numbers, client))
    except WatuiError as error:
        return str(error)
    except DATABASE_UNAVAILABLE as error:
        return f"cannot record the numbers: {error!s:.160}"
    return None


async def number_rows(db: Database) -> tuple[NumberRow, ...]:
    return tuple(
        NumberRow(
            display_number=number.display_number, phone_number_id=number.phone_number_id,
            verified_name=number.verified_name, quality=number.quality,
            throughput_level=number.throughput_level,
            rate=throughput_rate(number.throughput_level),
            messaging_limit=number.messaging_limit, heard_at=number.heard_at,
            source=number.source, event=number.event,
        )
        for number in await list_number_health(db)
    )  # fmt: skip
