"""After ``watui run`` has sent a campaign, its receiver keeps listening for the statuses.

Delivered and read statuses come seconds to hours after a send: a run that stopped receiving
at its last send would show most of them missing. It listens until every accepted message has
its final status (``rules.awaiting_final_status``) and no POST came for ``QUIET_S`` (reads
arriving right after their delivered are taken too), or until ``webhook.linger_s`` has passed,
or until Ctrl-C or SIGTERM, whichever is first. What was stored stays stored either way, and
what comes later is not lost: Meta posts it again to the next receiver (for up to 7 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from watui.engine.runner import install_stop_signals
from watui.receiver import WebhookReceiver
from watui.rules import awaiting_final_status
from watui.storage import campaigns as campaign_store
from watui.storage.database import DATABASE_UNAVAILABLE, Database

#: Seconds between two looks at the campaign's counters (the applier updates them each second).
POLL_S = 0.5
#: Once every accepted message has its final status: stop after this long without a POST.
QUIET_S = 1.0


async def listen_for_statuses(
    db: Database, receiver: WebhookReceiver, campaign_id: int, seconds: float, *, show: bool
) -> None:
    """Keep ``receiver`` up until the campaign's statuses are in, ``seconds`` pass or a signal
    comes; ``show``: say so on stderr (one line, then a live count on a terminal)."""
    if seconds <= 0 or await _settled(db, campaign_id):
        return
    stop = asyncio.Event()
    live = show and sys.stderr.isatty()
    deadline = time.monotonic() + seconds
    # Before the line: a ctrl+c right after reading it must find the handlers in place.
    remove_signals = install_stop_signals(stop.set)
    try:
        if show:
            print(f"sending done; listening for statuses up to {seconds:g} s (ctrl+c stops)",
                  file=sys.stderr, flush=True)  # fmt: skip
        await _until_settled(db, receiver, campaign_id, deadline, stop, live)
    finally:
        remove_signals()
    if live:
        print(file=sys.stderr)


async def _until_settled(
    db: Database, receiver: WebhookReceiver, campaign_id: int, deadline: float,
    stop: asyncio.Event, live: bool,
) -> None:  # fmt: skip
    posts, last_post = receiver.stats().posts, time.monotonic()
    while not stop.is_set() and (now := time.monotonic()) < deadline:
        if (seen := receiver.stats().posts) != posts:
            posts, last_post = seen, now
        waiting = await _awaiting(db, campaign_id)
        if waiting == 0 and now - last_post >= QUIET_S:
            return
        if live and waiting is not None:
            print(f"\rstatuses: {waiting:,} accepted messages not delivered yet; "
                  f"{deadline - now:,.0f} s left\x1b[K", end="", file=sys.stderr, flush=True)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(POLL_S, max(0.0, deadline - now)))


async def _settled(db: Database, campaign_id: int) -> bool:
    return await _awaiting(db, campaign_id) == 0


async def _awaiting(db: Database, campaign_id: int) -> int | None:
    """Accepted messages without a final status; None while the database cannot say."""
    try:
        row = await campaign_store.campaign_row(db, campaign_id)
    except DATABASE_UNAVAILABLE:
        return None
    return awaiting_final_status(row.sent, row.delivered)
