"""The one way a front end gets the live backend: from settings, database checked first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watui.service.live import LiveBackend
from watui.settings import Settings
from watui.storage.database import Database
from watui.whatsapp.client import WhatsAppClient

#: Makes the backend's Cloud API client, on the first call that needs one.
ClientFactory = Callable[[], Any]


async def open_live_backend(
    settings: Settings, client_factory: ClientFactory | None = None
) -> LiveBackend:
    """The live backend over the settings' database and account.

    The schema is brought up to date first, on connections that are closed again, so that a
    database that cannot be opened is one StorageError before any UI starts. The backend's own
    Database connects on first use: a front end may call this under ``asyncio.run`` and hand the
    backend to an app that runs another event loop (a driver's connections belong to the loop
    that made them). By default the client is made from the backend's settings as they are when
    it is first needed, so a caller may still point them elsewhere (the demo, at its mock API).
    """
    async with Database(settings.database_url):
        pass
    backend = LiveBackend(
        settings,
        Database(settings.database_url),
        client_factory or (lambda: WhatsAppClient(backend.settings.whatsapp, backend.settings.http)),
    )
    return backend
