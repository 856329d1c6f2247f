"""Watching the sender numbers' health: their throughput level and quality rating.

Meta throttles a number above its throughput level (130429) and restricts one whose quality
falls to RED; a campaign that goes on regardless burns the number. So before a run and every
``send.health_poll_s`` during it, the watcher asks the Graph API how each sender number is, and
each control interval it reads what was heard (the ``number_health`` table, which the webhook
receiver also fills from ``phone_number_quality_update``):

- a rate above the number's level is lowered to the level, with a warning;
- a number rated RED is paused, with the reason.

What lowering and pausing mean is the sender's (plain callables), so that a sender with one
pacer per number can act on that number alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from watui.errors import WatuiError
from watui.rules import quality_pauses, throughput_rate
from watui.storage.database import DATABASE_UNAVAILABLE, Database
from watui.storage.number_health import POLL, HeardNumber, NumberHealth, list_number_health, record_heard
from watui.whatsapp.numbers import PhoneNumber

Poll = Callable[[], Awaitable[list[PhoneNumber]]]
#: How often the table is read (as often as the control loop ticks).
CHECK_INTERVAL = 1.0
#: A poll that takes longer is given up (and tried again at the next due time): a run must not
#: wait the HTTP timeout for it to start.
POLL_TIMEOUT = 5.0


class NumberHealthWatcher:
    """One run's watcher. ``prepare()`` before sending; ``run(stopping)`` while it sends."""

    def __init__(
        self,
        db: Database,
        senders: Sequence[str],
        *,
        poll: Poll | None,
        poll_every: float,
        rate_of: Callable[[str], float],
        lower_rate: Callable[[str, float, str], None],
        pause_number: Callable[[str, str], None],
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.senders = tuple(senders)
        self._poll = poll if poll_every > 0 else None
        self._poll_every = poll_every
        self._rate_of = rate_of
        self._lower_rate = lower_rate
        self._pause_number = pause_number
        self._warn = warn
        self._clock = clock
        self._next_poll = 0.0
        self._paused: set[str] = set()
        self._told: set[str] = set()  # warnings given once per run

    async def prepare(self) -> None:
        """Before the first send: poll now, and act on what is known."""
        await self.check()

    async def run(self, stopping: asyncio.Event) -> None:
        """Check every CHECK_INTERVAL until ``stopping`` is set. Not cancelled: it writes."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), CHECK_INTERVAL)
            if not stopping.is_set():
                try:
                    await self.check()
                except Exception as error:  # sending goes on without the watcher: say so
                    self._warn(f"number health: {error!s:.160}")

    async def check(self) -> None:
        """Poll when due, then act on what the table says of each sender."""
        if self._poll is not None and self._clock() >= self._next_poll:
            self._next_poll = self._clock() + self._poll_every
            await self._poll_numbers()
        try:
            heard = await list_number_health(self.db, self.senders)
        except DATABASE_UNAVAILABLE as error:
            self._warn(f"number health: cannot read it now: {error!s:.120}")
            return
        for number in heard:
            self._act_on(number)

    async def _poll_numbers(self) -> None:
        assert self._poll is not None
        try:
            listed = await asyncio.wait_for(refresh_numbers(self.db, self._poll), POLL_TIMEOUT)
        except (WatuiError, TimeoutError, *DATABASE_UNAVAILABLE) as error:
            self._warn(f"number health: cannot poll the account's numbers: {error!s:.160}")
            return
        listed_ids = {number.id for number in listed}
        for sender in self.senders:
            if listed and sender not in listed_ids:
                self._warn_once(
                    f"unlisted:{sender}",
                    f"number {sender} is not among the business account's numbers: its "
                    "throughput level and quality are not known",
                )

    def _act_on(self, number: NumberHealth) -> None:
        sender = number.phone_number_id
        if sender is None or sender in self._paused:
            return
        if quality_pauses(number.quality):
            self._paused.add(sender)
            self._pause_number(
                sender,
                f"number {number.display_number} ({sender}) has quality rating "
                f"{number.quality} (from a {number.source}): sending more would get it restricted",
            )
            return
        tier = throughput_rate(number.throughput_level)
        rate = self._rate_of(sender)
        if tier is not None and rate > tier:
            self._lower_rate(
                sender, tier,
                f"number {number.display_number} ({sender}) is at the {number.throughput_level} "
                f"throughput level: sending at {tier:g} msg/s instead of {rate:g}",
            )

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._told:
            self._told.add(key)
            self._warn(text)


async def refresh_numbers(db: Database, poll: Poll) -> list[PhoneNumber]:
    """Ask the API for the account's numbers and record what it said (``source = poll``).

    Raises what ``poll`` raises (TokenRefused, AccountNotFound, ApiUnavailable) and what the
    database raises when it is unavailable."""
    listed = await poll()
    await record_heard(db, [_heard(number) for number in listed], source=POLL, now=time.time())
    return listed


def _heard(number: PhoneNumber) -> HeardNumber:
    return HeardNumber(
        display_number=number.display_phone_number,
        phone_number_id=number.id,
        verified_name=number.verified_name,
        quality=number.quality_rating,
        throughput_level=number.throughput_level,
        messaging_limit=number.messaging_limit,
    )
