"""The mock's webhooks, posted the way Meta posts them, warts included.

For each accepted send: ``sent`` at once, then ``delivered`` after a random delay and ``read`` for
a share, or ``failed`` after acceptance for configured shares of codes (with Meta's wording). The
updates are batched into signed POSTs (up to ``webhook_batch_max`` per POST, one flush every
``webhook_flush_ms``), a share of updates is posted twice and a share of POSTs is held back and
sent late, and a POST the receiver refuses (non-2xx, timeout, down) is sent again, with the same
bytes, after a growing delay until ``webhook_give_up_s`` has passed since its first try.
Everything waiting is bounded by ``webhook_queue_max`` updates; what is refused or given up is
counted as dropped. Receivers are tested against this, so it must be as rude as Meta is.

One timer task and at most ``webhook_concurrency`` POST tasks, whatever the volume: updates wait
in a heap by due time, not in a task or timer each (~3,000 updates/s at 1,000 msg/s).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import aiohttp
import orjson

from watui.mockapi.templates import SAMPLE_TEMPLATES
from watui.whatsapp.webhooks import (
    DELIVERED,
    FAILED,
    OBJECT,
    READ,
    RESUME,
    SENT,
    SIGNATURE_HEADER,
    STOP,
    signature,
)

MOCK_WABA_ID = "102290129340398"
DISPLAY_PHONE_NUMBER = "15550000000"
ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

#: code -> (title, details) of a ``failed`` status as Meta words them; the title is also its message.
FAILURE_TEXTS: dict[int, tuple[str, str]] = {
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131026: ("Message undeliverable", "Message Undeliverable."),
    131047: ("Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the customer "
             "last replied to this number."),
    131049: ("This message was not delivered to maintain healthy ecosystem engagement.",
             "In order to maintain a healthy ecosystem engagement, the message failed to be "
             "delivered."),
    131050: ("Unable to deliver the message. This recipient has chosen to stop receiving "
             "marketing messages on WhatsApp from your business.",
             "Unable to deliver the message. This recipient has chosen to stop receiving "
             "marketing messages on WhatsApp from your business."),
}

#: A template's pricing category, as statuses report it ("marketing", "utility", ...).
CATEGORY_BY_TEMPLATE = {template["name"]: template["category"].lower() for template in SAMPLE_TEMPLATES}
DEFAULT_CATEGORY = "marketing"
#: Meta's failure, after acceptance, of a marketing message to a person who stopped them.
MARKETING_STOPPED = 131050


class WebhookKnobs(Protocol):
    """The MockConfig fields this module reads; read at each use, so changes apply at once."""

    webhook_url: str | None
    app_secret: str
    webhook_delivered_delay: tuple[float, float]
    webhook_read_share: float
    webhook_read_delay: tuple[float, float]
    webhook_failures: dict[int, float]
    webhook_duplicate_share: float
    webhook_late_share: float
    webhook_late_delay: tuple[float, float]
    webhook_flush_ms: float
    webhook_batch_max: int
    webhook_queue_max: int
    webhook_retry_delay: tuple[float, float]
    webhook_give_up_s: float
    webhook_concurrency: int
    webhook_timeout_s: float


class _Update(NamedTuple):
    """One status to post, in the least memory: tens of thousands wait for their time."""

    phone_number_id: str
    wamid: str
    status: str
    at: float  # Unix time of the event: a copy or a late POST still says when it happened
    recipient: str
    callback: str | None
    category: str
    error_code: int | None
    is_copy: bool = False


@dataclass(eq=False, slots=True)
class _Post:
    """A body, sent again with the same bytes until the receiver takes it (as Meta does)."""

    body: bytes
    updates: int
    first_try: float  # when it was made, then when it was first tried (a held-back one waits)
    attempts: int = 0


@dataclass(slots=True)
class _Heap:
    """Things by due time (monotonic seconds); ties keep their order."""

    items: list[tuple[float, int, Any]] = field(default_factory=list)
    order: itertools.count[int] = field(default_factory=itertools.count)

    def push(self, due: float, item: Any) -> None:
        heapq.heappush(self.items, (due, next(self.order), item))

    def pop_due(self, now: float, limit: int | None = None) -> list[Any]:
        due: list[Any] = []
        while self.items and self.items[0][0] <= now and (limit is None or len(due) < limit):
            due.append(heapq.heappop(self.items)[2])
        return due


class WebhookPoster:
    """Schedules and posts the webhooks of one mock. ``close()`` stops its tasks."""

    def __init__(self, knobs: WebhookKnobs, seed: int | None = None) -> None:
        self.knobs = knobs
        self.counters: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._updates = _Heap()
        self._posts = _Heap()
        self._waiting = 0  # updates queued, held back, in flight or waiting for a retry
        self._work = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        #: Each accepted message's last planned status (read, delivered or failed): what a
        #: receiver's figures must come to once every webhook is in.
        self.final_status: dict[str, str] = {}
        #: wa_ids whose last user_preferences said stop: their marketing messages fail with
        #: 131050 after acceptance, as Meta's do.
        self.stopped_marketing: set[str] = set()

    def stats(self) -> dict[str, int]:
        names = ("posted", "updates", "retried", "failed_posts", "dropped", "duplicates", "held_back")
        return {name: self.counters[name] for name in names} | {"waiting": self._waiting}

    # ----- what to post -----

    def message_accepted(self, phone_number_id: str, to: str, wamid: str, template: str,
                         callback: str | None) -> None:
        """Plan the statuses of a message the mock has just accepted."""
        knobs, rng, now = self.knobs, self._rng, time.monotonic()
        to_unix = time.time() - now
        recipient = to.lstrip("+")
        category = CATEGORY_BY_TEMPLATE.get(template, DEFAULT_CATEGORY)
        low, high = knobs.webhook_delivered_delay
        reached = now + rng.uniform(low, high)
        stopped = category == "marketing" and recipient in self.stopped_marketing
        failure = MARKETING_STOPPED if stopped else self._failure_code()
        planned = [(now, SENT, None), (reached, FAILED if failure else DELIVERED, failure)]
        if failure is None and rng.random() < knobs.webhook_read_share:
            low, high = knobs.webhook_read_delay
            planned.append((reached + rng.uniform(low, high), READ, None))
        if not self._admit(len(planned)):
            return
        self.final_status[wamid] = planned[-1][1]
        for due, status, code in planned:
            self._updates.push(due, _Update(
                phone_number_id, wamid, status, due + to_unix, recipient, callback, category, code))
        self._wake()

    def inbound_text(self, phone_number_id: str, sender: str, text: str) -> None:
        """A person's text message to the business, posted on its own like Meta's."""
        message = {"from": sender, "id": self._inbound_wamid(), "timestamp": _unix_now(),
                   "type": "text", "text": {"body": text}}
        value = {"messaging_product": "whatsapp", "metadata": _metadata(phone_number_id),
                 "contacts": [{"profile": {"name": "Mock User"}, "wa_id": sender}],
                 "messages": [message]}
        self._post_now("messages", value)

    def preference(self, phone_number_id: str, wa_id: str, value: str) -> None:
        """A person stopped (or resumed) marketing messages: a ``user_preferences`` webhook."""
        detail = ("User requested to stop marketing messages" if value == STOP
                  else "User requested to resume marketing messages")
        change = {"messaging_product": "whatsapp", "metadata": _metadata(phone_number_id),
                  "contacts": [{"wa_id": wa_id, "profile": {"name": "Mock User"}}],
                  "user_preferences": [{"wa_id": wa_id, "detail": detail,
                                        "category": "marketing_messages", "value": value,
                                        "timestamp": int(time.time())}]}
        if value == STOP:
            self.stopped_marketing.add(wa_id)
        else:
            self.stopped_marketing.discard(wa_id)
        self._post_now("user_preferences", change)

    def quality_update(self, value: dict[str, Any]) -> None:
        """A number's quality or limits changed: a ``phone_number_quality_update`` webhook."""
        self._post_now("phone_number_quality_update", value)

    def _failure_code(self) -> int | None:
        roll = self._rng.random()
        for code, share in self.knobs.webhook_failures.items():
            if roll < share:
                return code
            roll -= share
        return None

    def _inbound_wamid(self) -> str:
        return f"wamid.IN{self._rng.getrandbits(64):016X}"

    def _admit(self, updates: int) -> bool:
        if self._waiting + updates > self.knobs.webhook_queue_max:
            self.counters["dropped"] += updates
            return False
        self._waiting += updates
        return True

    def _post_now(self, kind: str, value: dict[str, Any]) -> None:
        if self._admit(1):
            now = time.monotonic()
            self._posts.push(now, _Post(_encoded(_envelope([(kind, value)])), 1, now))
            self._wake()

    # ----- the timer: batch what is due, start what may be posted -----

    def _wake(self) -> None:
        if self._closed:
            return
        self._work.set()
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                if not self._updates.items and not self._posts.items:
                    self._work.clear()
                    await self._work.wait()
                await asyncio.sleep(self.knobs.webhook_flush_ms / 1000)
                now = time.monotonic()
                self._batch(self._updates.pop_due(now), now)
                self._start_posts(now)
        finally:
            await self._stop_posts()

    def _batch(self, due: list[_Update], now: float) -> None:
        if not due:
            return
        knobs, rng = self.knobs, self._rng
        for update in due:
            if not update.is_copy and rng.random() < knobs.webhook_duplicate_share \
                    and self._admit(1):
                self.counters["duplicates"] += 1
                low, high = knobs.webhook_late_delay
                self._updates.push(now + rng.uniform(low, high), update._replace(is_copy=True))
        size = max(1, knobs.webhook_batch_max)
        for start in range(0, len(due), size):
            chunk = due[start:start + size]
            post = _Post(_encoded(_statuses_body(chunk)), len(chunk), now)
            held = rng.random() < knobs.webhook_late_share
            if held:
                self.counters["held_back"] += 1
            self._posts.push(now + rng.uniform(*knobs.webhook_late_delay) if held else now, post)

    def _start_posts(self, now: float) -> None:
        room = self.knobs.webhook_concurrency - len(self._in_flight)
        if room <= 0:
            return
        for post in self._posts.pop_due(now, room):
            task = asyncio.get_running_loop().create_task(self._post(post))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _post(self, post: _Post) -> None:
        url = self.knobs.webhook_url
        if url is None:  # switched off while it waited
            self._drop(post)
            return
        if post.attempts == 0:
            post.first_try = time.monotonic()
        post.attempts += 1
        if await self._delivered(url, post):
            self.counters["posted"] += 1
            self.counters["updates"] += post.updates
            self._waiting -= post.updates
        else:
            self._retry_or_drop(post)
        self._wake()

    async def _delivered(self, url: str, post: _Post) -> bool:
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.knobs.webhook_timeout_s))
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: self._signature_of(post)}
        try:
            async with session.post(url, data=post.body, headers=headers) as response:
                await response.read()
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    def _retry_or_drop(self, post: _Post) -> None:
        self.counters["failed_posts"] += 1
        first, cap = self.knobs.webhook_retry_delay
        delay = min(first * 2 ** (post.attempts - 1), cap)
        now = time.monotonic()
        if now + delay - post.first_try > self.knobs.webhook_give_up_s:
            self._drop(post)
            return
        self.counters["retried"] += 1
        self._posts.push(now + delay, post)

    def _drop(self, post: _Post) -> None:
        self.counters["dropped"] += post.updates
        self._waiting -= post.updates

    def _signature_of(self, post: _Post) -> str:
        """Signed when sent: a receiver given a new app secret checks redeliveries with it too."""
        return signature(post.body, self.knobs.app_secret)

    # ----- stopping -----

    async def close(self) -> None:
        """Stop posting; what was still waiting is given up (a stopped mock owes nothing)."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await self._stop_posts()

    async def _stop_posts(self) -> None:
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


# ----- bodies, shaped like Meta's -----


def status_update(wamid: str, to: str, status: str, *, callback: str | None = None,
                  category: str = DEFAULT_CATEGORY, error_code: int | None = None,
                  timestamp: str | None = None) -> dict[str, Any]:
    """One entry of ``statuses[]``: pricing on what is billed, Meta's error text on a failure."""
    update: dict[str, Any] = {"id": wamid, "status": status,
                              "timestamp": timestamp or _unix_now(), "recipient_id": to.lstrip("+")}
    if callback is not None:
        update["biz_opaque_callback_data"] = callback
    if status == FAILED:
        code = error_code if error_code is not None else 131000
        title, details = FAILURE_TEXTS.get(code, (f"Error {code}", ""))
        update["errors"] = [{"code": code, "title": title, "message": title,
                             "error_data": {"details": details}, "href": ERROR_CODES_HREF}]
    else:
        update["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category,
                             "type": "regular"}
    return update


def _statuses_body(updates: Iterable[_Update]) -> dict[str, Any]:
    """One POST's body: a change per phone number, as Meta groups them."""
    by_number: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for update in updates:
        by_number[update.phone_number_id].append(status_update(
            update.wamid, update.recipient, update.status, callback=update.callback,
            category=update.category, error_code=update.error_code,
            timestamp=str(int(update.at))))
    return _envelope(
        ("messages", {"messaging_product": "whatsapp", "metadata": _metadata(number),
                      "statuses": statuses})
        for number, statuses in by_number.items())


def _encoded(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


def _envelope(changes: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {"object": OBJECT, "entry": [{"id": MOCK_WABA_ID, "changes": [
        {"field": kind, "value": value} for kind, value in changes]}]}


def _metadata(phone_number_id: str) -> dict[str, str]:
    return {"display_phone_number": DISPLAY_PHONE_NUMBER, "phone_number_id": phone_number_id}


def _unix_now() -> str:
    return str(int(time.time()))


# ----- the control endpoints' input -----


def inbound_request(body: Any) -> tuple[str, str, str]:
    """(phone_number_id, from, text) of a POST /_mock/inbound body; ValueError says what is wrong."""
    fields = _strings(body, ("from", "text"), "POST /_mock/inbound")
    return _phone_number_id(body), fields[0], fields[1]


def preference_request(body: Any) -> tuple[str, str, str]:
    """(phone_number_id, wa_id, stop|resume) of a POST /_mock/preferences body."""
    wa_id, value = _strings(body, ("wa_id", "value"), "POST /_mock/preferences")
    if value not in (STOP, RESUME):
        raise ValueError(f"POST /_mock/preferences: value must be {STOP!r} or {RESUME!r}")
    return _phone_number_id(body), wa_id, value


def _strings(body: Any, names: tuple[str, ...], what: str) -> list[str]:
    if not isinstance(body, dict):
        raise ValueError(f"{what}: give a JSON object with {', '.join(names)}")
    missing = [name for name in names if not isinstance(body.get(name), str) or not body[name]]
    if missing:
        raise ValueError(f"{what}: {', '.join(missing)} must be a non-empty string")
    return [body[name].lstrip("+") if name in ("from", "wa_id") else body[name] for name in names]


def _phone_number_id(body: dict[str, Any]) -> str:
    value = body.get("phone_number_id", "PHONE_ID")
    if not isinstance(value, str) or not value:
        raise ValueError("phone_number_id must be a non-empty string")
    return value
