"""Run one campaign headless: open everything, send to the end, close everything.

Shared by ``watui run`` and the TUI's host so both start and stop a campaign the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from watui.engine.numbers import NumbersSender, campaign_sender
from watui.engine.sender import CampaignSender, Client, RunOutcome, RunStatus
from watui.errors import CampaignNotRunnable
from watui.rules import CampaignStatus
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage.database import Database


class ClosingClient(Client, Protocol):
    """The client a run opens, and closes when the run ends."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    campaign_id: int
    name: str
    resumed_from: str | None  # the pause reason when a paused campaign is resumed


def check_send_settings(settings: Settings, own_senders: Sequence[str] | None = None) -> None:
    """Refuse to start sending without what every request needs (one line saying what to set):
    the token, and the configured number unless the campaign names its own numbers
    (``own_senders``; None: the campaign is not read yet, only the token is checked)."""
    needed = [("whatsapp.access_token", "WATUI_WHATSAPP__ACCESS_TOKEN",
               settings.whatsapp.access_token.get_secret_value())]
    if own_senders is not None and not own_senders:
        needed.append(("whatsapp.phone_number_id", "WATUI_WHATSAPP__PHONE_NUMBER_ID",
                       settings.whatsapp.phone_number_id))
    missing = [(name, variable) for name, variable, value in needed if not value]
    if missing:
        name, variable = missing[0]
        raise CampaignNotRunnable(
            f"{name} is not set: set {variable} or add it to watui.toml before sending"
        )


async def prepare(db: Database, name: str) -> Prepared:
    """Check the campaign can run; a paused one is resumed (and says why it had paused)."""
    row = await campaign_store.campaign_by_name(db, name)
    if row is None:
        raise CampaignNotRunnable(f"no campaign named {name!r} (see 'watui campaign list')")
    if row.status == CampaignStatus.COMPLETED.value:
        raise CampaignNotRunnable(
            f"campaign {name!r} is already completed; requeue recipients with 'watui retry {name}'"
        )
    if row.status == CampaignStatus.CANCELLED.value:
        raise CampaignNotRunnable(f"campaign {name!r} was cancelled and cannot run again")
    resumed = row.pause_reason if row.status == CampaignStatus.PAUSED.value else None
    return Prepared(row.id, row.name, resumed)


def install_stop_signals(request_stop: Callable[[], None]) -> Callable[[], None]:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal or SSH session) all stop cleanly, by
    calling ``request_stop``; returns what removes the handlers."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, request_stop)
            installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove


async def run_campaign(
    settings: Settings,
    name: str,
    *,
    rate: float | None = None,
    client_factory: Callable[[Settings], ClosingClient] | None = None,
    on_start: Callable[[CampaignSender | NumbersSender, Prepared], Awaitable[None] | None]
    | None = None,
    leave_outside_windows: bool = False,
) -> tuple[RunOutcome, Prepared]:
    """Open the database and the client, run the campaign, close both (whatever happens).
    ``leave_outside_windows``: pause when every recipient's window is closed, not wait."""
    check_send_settings(settings)
    db = await Database(settings.database_url).open()
    try:
        prepared = await prepare(db, name)
        campaign = await campaign_store.campaign_row(db, prepared.campaign_id)
        check_send_settings(settings, campaign.sender_ids())
        client = (client_factory or _default_client)(settings)
        try:
            sender = campaign_sender(db, client, settings, campaign, rate=rate or campaign.rate)
            if isinstance(sender, CampaignSender):
                sender.leave_when_outside_windows = leave_outside_windows
            remove_signals = install_stop_signals(sender.request_stop)
            try:
                if on_start is not None:
                    started = on_start(sender, prepared)
                    if asyncio.iscoroutine(started):
                        await started
                outcome = await sender.run()
            finally:
                remove_signals()
        finally:
            await client.aclose()
        return outcome, prepared
    finally:
        await db.close()


def _default_client(settings: Settings) -> ClosingClient:
    from watui.whatsapp.client import WhatsAppClient

    return WhatsAppClient(settings.whatsapp, settings.http)


__all__ = ["CampaignNotRunnable", "Prepared", "RunStatus", "prepare", "run_campaign"]
