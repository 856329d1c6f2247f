"""``watui webhook``: run the webhook receiver alone until Ctrl-C or SIGTERM (a service)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from watui.cli.errors import EXIT_OK, CliError
from watui.errors import ReceiverError
from watui.receiver import (
    ReceiverStats,
    WebhookReceiver,
    applying_receiver,
    quiet_garbage_collector,
    require_app_secret,
)
from watui.settings import Settings
from watui.storage.database import Database

#: Seconds between two refreshes of the live counter line.
COUNTER_INTERVAL = 0.5


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "webhook", help="receive Meta's webhooks (statuses, messages, opt-outs) into the database"
    )
    parser.add_argument("--host", help="address to listen on (default: webhook.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: webhook.port, 8788; 0 picks one)")
    parser.set_defaults(handler=_webhook_command)


def _webhook_command(args: argparse.Namespace) -> int:
    from watui.cli.main import settings_from_args

    given = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    settings = settings_from_args(args, {"webhook": given} if given else None)
    try:
        require_app_secret(settings.whatsapp.app_secret)  # before the database is touched
        asyncio.run(_serve(settings))
    except ReceiverError as error:
        raise CliError(str(error)) from None
    return EXIT_OK


async def _serve(settings: Settings) -> None:
    async with Database(settings.database_url) as db:
        receiver = applying_receiver(db, settings)
        url = await receiver.start()
        quiet_garbage_collector()  # a process of its own: its collector is ours to tune
        print(f"listening on {url}; Ctrl-C stops", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        live = asyncio.create_task(_show_counters(receiver)) if sys.stderr.isatty() else None
        await stop.wait()
        if live is not None:
            live.cancel()
            print(file=sys.stderr)
        await receiver.stop()
        print(f"stopped: {counter_line(receiver.stats(), receiver)}", file=sys.stderr, flush=True)


async def _show_counters(receiver: WebhookReceiver) -> None:
    while True:
        await asyncio.sleep(COUNTER_INTERVAL)
        print(f"\r{counter_line(receiver.stats(), receiver)}\x1b[K", end="", file=sys.stderr, flush=True)


def counter_line(stats: ReceiverStats, receiver: WebhookReceiver | None = None) -> str:
    """One line: what came in, what was stored, what was refused and how long commits take;
    and what the applier did with the statuses."""
    p99 = "-" if stats.commit_p99_ms is None else f"{stats.commit_p99_ms:.0f} ms"
    line = (
        f"{stats.posts} posts, {stats.updates_stored} stored, {stats.duplicates} duplicates; "
        f"refused: {stats.refused_signatures} signature, {stats.too_large} too large, "
        f"{stats.malformed} malformed, {stats.unavailable} database unavailable; "
        f"commit p99 {p99}"
    )
    applier = receiver.applier.stats() if receiver is not None and receiver.applier else None
    if applier is not None:
        line += (
            f"; applied {applier.applied}, not ours {applier.not_ours}, "
            f"unconfirmed {applier.unconfirmed}"
        )
    return line
