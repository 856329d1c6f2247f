"""A fake of the WhatsApp Cloud API on loopback: same request and answer shapes, same limits.

It is what `watui demo`, every test and every benchmark talk to. Faithful where it matters to a
sender: ``/messages`` and the Marketing Messages API's ``/marketing_messages`` alike (one
per-number limit for both), per-number throughput over a sliding one-second window (130429), the
pair rate limit (131056), latency from a range, injected failures by rate or by recipient, a spam
switch (131048 from the Nth message on), an error for every message of one number, a gateway
refusing every send (``refuse_status``), an outage whose port refuses connections for a while
(``POST /_mock/outage``), a token check (190), and status webhooks signed like Meta's. A
ledger of accepted messages (each with the phone_number_id that sent it and the endpoint) and
counters are readable in-process and over HTTP (/_mock/...).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from bisect import bisect_right, insort
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NotRequired, TypedDict

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from watui.mockapi.numbers import MockNumbers
from watui.mockapi.templates import SAMPLE_TEMPLATES
from watui.mockapi.webhooks import WebhookPoster, inbound_request, preference_request


@dataclass
class MockConfig:
    """How the fake behaves; every field can be changed while it runs."""

    access_token: str = "mock-token"
    rate_limit: float = 80.0  # messages/s per phone number, sliding one-second window
    pair_limit_seconds: float = 6.0  # 0 turns the pair limit off
    pair_burst: int = 2  # messages to one recipient allowed within the pair window
    latency: tuple[float, float] = (0.10, 0.25)  # seconds, uniform
    transient_rate: float = 0.0  # 131000 "something went wrong"
    permanent_rate: float = 0.0  # 131026 "message undeliverable"
    http500_rate: float = 0.0  # HTTP 500 without an error object
    reset_rate: float = 0.0  # connection closed without an answer (after accepting it)
    slow_rate: float = 0.0  # answer after `slow_seconds` (beyond the client's timeout)
    slow_seconds: float = 60.0
    fail_suffixes: dict[str, int] = field(default_factory=dict)  # phone suffix -> error code
    spam_after: int | None = None  # 131048 for every message after the Nth accepted
    # Every send answered with this bare HTTP status, unread (a gateway refusing: 502, 503).
    refuse_status: int | None = None
    number_faults: dict[str, int] = field(default_factory=dict)  # phone_number_id -> error code
    seed: int | None = None
    webhook_url: str | None = None  # POST status updates here when set
    app_secret: str = "mock-app-secret"
    # Webhooks (watui/mockapi/webhooks.py): delays in seconds as (min, max), uniform.
    webhook_delivered_delay: tuple[float, float] = (0.5, 3.0)  # after acceptance
    webhook_read_share: float = 0.6  # of delivered messages
    webhook_read_delay: tuple[float, float] = (2.0, 20.0)  # after delivered
    webhook_failures: dict[int, float] = field(default_factory=dict)  # code -> share, after a 200
    webhook_duplicate_share: float = 0.0  # updates posted twice
    webhook_late_share: float = 0.0  # POSTs held back ...
    webhook_late_delay: tuple[float, float] = (0.5, 2.0)  # ... this long (duplicates too)
    webhook_flush_ms: float = 25.0  # updates due are batched and posted this often
    webhook_batch_max: int = 1000  # updates per POST, as Meta
    webhook_queue_max: int = 200_000  # updates waiting (to be due, posted, retried); more: dropped
    webhook_retry_delay: tuple[float, float] = (0.25, 8.0)  # first retry, doubling up to the cap
    webhook_give_up_s: float = 120.0  # since a POST's first try (Meta: 7 days)
    webhook_concurrency: int = 8  # POSTs in flight
    webhook_timeout_s: float = 10.0  # for the receiver's answer
    page_size: int = 3  # templates per page


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    wamid: str
    to: str
    template: str
    at: float  # monotonic arrival time
    phone_number_id: str
    endpoint: str = "messages"  # or "marketing_messages": the path it was POSTed to


class MockStats(TypedDict):
    """What the mock has seen so far (also served at /_mock/stats)."""

    requests: int
    accepted: int
    errors: dict[str, int]  # by error code, or "http500"
    resets: int
    slow: int
    refused: int  # answered refuse_status
    peak_in_flight: int  # most send requests being handled at once (connections in use)
    webhooks: dict[str, int]  # what the webhook poster did (mockapi/webhooks.py)
    unique_recipients_24h: int  # numbers accepted in the last 24 h: Meta's messaging limit count


class ErrorData(TypedDict):
    messaging_product: str
    details: str


class ErrorObject(TypedDict):
    """The Cloud API's ``error`` object, the fields a sender reads."""

    message: str
    type: str
    code: int
    fbtrace_id: str
    error_subcode: NotRequired[int]
    error_data: NotRequired[ErrorData]


class ErrorBody(TypedDict):
    error: ErrorObject


_ERRORS: dict[int, tuple[int, str, str]] = {
    # code: (HTTP status, message, details)
    100: (400, "(#100) Invalid parameter", "Parameter value is not valid"),
    190: (401, "Error validating access token: The access token is invalid", ""),
    130429: (400, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
    131000: (500, "(#131000) Something went wrong", "Something went wrong"),
    131016: (503, "(#131016) Service unavailable", "A service is temporarily unavailable."),
    131026: (400, "(#131026) Message undeliverable", "Message Undeliverable."),
    131048: (400, "(#131048) Spam rate limit hit",
             "Message failed to send because there are restrictions on how many messages can be "
             "sent from this phone number."),
    131050: (400, "(#131050) Unable to deliver the message",
             "The user has stopped marketing messages."),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this phone "
             "number to the same phone number in a short period of time."),
    132000: (400, "(#132000) Number of parameters does not match the expected number of params",
             "body: number of localizable_params does not match the expected number of params"),
    132001: (404, "(#132001) Template name does not exist in the translation",
             "template name does not exist in the translation"),
}


def error_body(code: int) -> tuple[int, ErrorBody]:
    """The HTTP status and JSON body the Cloud API answers for ``code``."""
    status, message, details = _ERRORS.get(code, (400, f"(#{code}) Error", ""))
    error: ErrorObject = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AmockTrace" + format(random.getrandbits(32), "08x"),
    }
    if code == 130429:
        error["error_subcode"] = 2494055
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return status, {"error": error}


#: Seconds of arrivals kept per number: one for the window, one for a request handled late.
ARRIVALS_KEPT = 2.0

#: When each connection last received bytes, by id of its protocol (see _ArrivalStamping).
_LAST_DATA_AT: dict[int, float] = {}


class _ArrivalStampingHandler(RequestHandler):
    """aiohttp's connection protocol, noting when bytes arrive.

    The per-second limit counts a request when it arrives. Stamped when its handler started,
    a request waited first for its turn in the mock's loop: up to 8 ms (p99.9 3 ms) at 1,000
    msg/s on a shared 2-core machine, more than the margin a sender keeps, so the mock itself
    made rare 130429s that no sender caused. A client sends one request at a time on a
    connection, so the last bytes received before a request is handled are that request's."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        if data:
            _LAST_DATA_AT[id(self)] = time.monotonic()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        _LAST_DATA_AT.pop(id(self), None)
        super().connection_lost(exc)


class _ArrivalStampingServer(web.Server):
    __slots__ = ()

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = _ArrivalStampingHandler
        return handler


_DAY = 86_400.0
MAX_OUTAGE_S = 3_600.0  # the longest outage POST /_mock/outage plays


def _arrived_at(request: web.Request) -> float:
    return _LAST_DATA_AT.get(id(request.protocol)) or time.monotonic()


class MockCloudApi:
    """The fake API server. ``await start()`` returns its base URL; ``await stop()`` ends it."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.ledger: list[LedgerEntry] = []
        self.counters: Counter[str] = Counter()
        self.base_url = ""
        self._rng = random.Random(self.config.seed)
        self._arrivals: dict[str, deque[float]] = {}
        self._pairs: dict[tuple[str, str], deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._away: asyncio.Task[None] | None = None  # an outage under way (go_away)
        self.webhooks = WebhookPoster(self.config, self.config.seed)
        self.numbers = MockNumbers()  # what GET .../phone_numbers lists
        self._seq = 0
        self._in_flight = 0
        self.peak_in_flight = 0

    # ----- lifecycle -----

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        app.router.add_post(
            "/{version}/{phone_number_id}/marketing_messages", self._marketing_messages
        )
        app.router.add_get("/{version}/{waba_id}/message_templates", self._templates)
        app.router.add_get("/{version}/{waba_id}/phone_numbers", self._phone_numbers)
        app.router.add_post("/_mock/numbers", self._change_number)
        app.router.add_get("/_mock/stats", self._stats)
        app.router.add_get("/_mock/ledger", self._ledger)
        app.router.add_post("/_mock/config", self._configure)
        app.router.add_post("/_mock/inbound", self._inbound)
        app.router.add_post("/_mock/preferences", self._preferences)
        app.router.add_post("/_mock/outage", self._outage)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        # A short shutdown: a fake API owes no grace to requests it is deliberately holding.
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        if self._runner.server is not None:
            self._runner.server.__class__ = _ArrivalStampingServer
        site = self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server  # the bound port, when 0 asked for any free one
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._away is not None:
            self._away.cancel()
        await self.webhooks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def go_away(self, seconds: float, *, answering: object = None) -> None:
        """An outage as the network shows it: for ``seconds`` the port refuses connections
        and open ones are dropped (a request in flight gets no answer), then the API listens
        again as it was (ledger, settings). ``answering``: the protocol of the request that
        asked, closed only once it is answered."""
        runner, site = self._runner, self._site
        if runner is None or site is None:
            return
        await site.stop()
        for handler in list(runner.server.connections if runner.server else ()):
            if handler is answering:
                handler.close()
            else:
                handler.force_close()
        await asyncio.sleep(seconds)
        host, port = self.base_url.removeprefix("http://").rsplit(":", 1)
        self._site = web.TCPSite(runner, host, int(port), reuse_address=True)
        await self._site.start()

    # ----- introspection -----

    def stats(self) -> MockStats:
        errors = {key.removeprefix("error_"): count for key, count in self.counters.items()
                  if key.startswith("error_")}
        return {
            "requests": self.counters["requests"],
            "accepted": self.counters["accepted"],
            "errors": errors,
            "resets": self.counters["resets"],
            "slow": self.counters["slow"],
            "refused": self.counters["refused"],
            "peak_in_flight": self.peak_in_flight,
            "webhooks": self.webhooks.stats(),
            "unique_recipients_24h": self.unique_recipients(within=_DAY),
        }

    def unique_recipients(self, *, within: float) -> int:
        """Numbers accepted in the last ``within`` seconds, as Meta counts the messaging limit
        (the judge of watui's own count)."""
        since = time.monotonic() - within
        return len({entry.to for entry in self.ledger if entry.at > since})

    def update_config(self, changes: Mapping[str, Any]) -> None:
        known = {f.name for f in fields(MockConfig)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown mock setting {name!r}")
            setattr(self.config, name, _config_value(name, value))

    # ----- handlers -----

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._counted_send(request, "messages")

    async def _marketing_messages(self, request: web.Request) -> web.StreamResponse:
        """The Marketing Messages API: the same template payload, limits and answers."""
        return await self._counted_send(request, "marketing_messages")

    async def _counted_send(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return await self._send(request, endpoint)
        finally:
            self._in_flight -= 1

    async def _send(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        self.counters["requests"] += 1
        arrived = _arrived_at(request)
        config = self.config
        if config.refuse_status is not None:
            self.counters["refused"] += 1
            return web.Response(status=config.refuse_status, text="Service Unavailable")
        if request.headers.get("Authorization") != f"Bearer {config.access_token}":
            return self._error(190)
        try:
            body = orjson.loads(await request.read())
        except ValueError:
            return self._error(100)
        problem = _invalid_message(body)
        if problem:
            return self._error(100, details=problem)
        phone_id = request.match_info["phone_number_id"]
        to = body["to"]
        if not self._within_rate(phone_id, arrived):
            return self._error(130429)
        await self._delay()
        return await self._answer(request, phone_id, to, body, arrived, endpoint)

    async def _answer(
        self, request: web.Request, phone_id: str, to: str, body: dict[str, Any], arrived: float,
        endpoint: str,
    ) -> web.StreamResponse:
        config = self.config
        code = config.number_faults.get(phone_id) or self._injected_code(to)
        if code is not None:
            return self._error(code)
        if not self._within_pair_limit(phone_id, to, arrived):
            return self._error(131056)
        roll = self._rng.random()
        if roll < config.http500_rate:
            self.counters["error_http500"] += 1
            return web.Response(status=500, text="Internal Server Error")
        wamid = self._accept(phone_id, to, body, arrived, endpoint)
        roll = self._rng.random()
        if roll < config.reset_rate:
            self.counters["resets"] += 1
            if request.transport is not None:
                request.transport.abort()  # accepted, but the answer never arrives
            return web.Response(status=500)
        if roll < config.reset_rate + config.slow_rate:
            self.counters["slow"] += 1
            await asyncio.sleep(config.slow_seconds)
        return _json({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        })

    def _injected_code(self, to: str) -> int | None:
        config = self.config
        for suffix, code in config.fail_suffixes.items():
            if to.endswith(suffix):
                return code
        if config.spam_after is not None and self.counters["accepted"] >= config.spam_after:
            return 131048
        roll = self._rng.random()
        if roll < config.transient_rate:
            return 131000
        if roll < config.transient_rate + config.permanent_rate:
            return 131026
        return None

    def _accept(
        self, phone_id: str, to: str, body: dict[str, Any], arrived: float, endpoint: str
    ) -> str:
        self._seq += 1
        wamid = f"wamid.HBgM{self._seq:012d}{self._rng.getrandbits(40):010x}"
        self.ledger.append(
            LedgerEntry(wamid, to, body["template"]["name"], arrived, phone_id, endpoint)
        )
        self.counters["accepted"] += 1
        if self.config.webhook_url:
            self.webhooks.message_accepted(
                phone_id, to, wamid, body["template"]["name"], body.get("biz_opaque_callback_data"))
        return wamid

    def _within_rate(self, phone_id: str, now: float) -> bool:
        """At most ``rate_limit`` accepted-for-processing requests in any one-second window.

        ``now`` is when the request arrived, and handlers do not always run in arrival order: the
        arrivals are kept sorted, and only those in the second up to this one's count."""
        window = self._arrivals.setdefault(phone_id, deque())
        while window and window[0] <= window[-1] - ARRIVALS_KEPT:
            window.popleft()
        in_last_second = bisect_right(window, now) - bisect_right(window, now - 1.0)
        if in_last_second >= self.config.rate_limit:
            self.counters["error_130429"] += 1
            return False
        insort(window, now)
        return True

    def _within_pair_limit(self, phone_id: str, to: str, now: float) -> bool:
        seconds = self.config.pair_limit_seconds
        if seconds <= 0:
            return True
        recent = self._pairs.setdefault((phone_id, to), deque())
        while recent and recent[0] <= now - seconds:
            recent.popleft()
        if len(recent) >= self.config.pair_burst:
            return False
        recent.append(now)
        return True

    async def _delay(self) -> None:
        low, high = self.config.latency
        if high > 0:
            await asyncio.sleep(low + (high - low) * self._rng.random())

    def _error(self, code: int, details: str | None = None) -> web.Response:
        if code != 130429:
            self.counters[f"error_{code}"] += 1
        status, body = error_body(code)
        if details:
            body["error"]["error_data"] = {"messaging_product": "whatsapp", "details": details}
        return _json(body, status=status)

    async def _templates(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.config.access_token}":
            return self._error(190)
        size = self.config.page_size
        try:
            start = int(request.query.get("after", "0") or 0)
            size = max(1, min(int(request.query.get("limit", size)), size))
        except ValueError:
            return self._error(100, details="after and limit must be numbers")
        page = SAMPLE_TEMPLATES[start : start + size]
        body: dict[str, Any] = {"data": page, "paging": {"cursors": {"before": str(start)}}}
        if start + size < len(SAMPLE_TEMPLATES):
            body["paging"]["cursors"]["after"] = str(start + size)
            body["paging"]["next"] = f"{self.base_url}{request.path}?after={start + size}&limit={size}"
        return web.json_response(body)

    async def _phone_numbers(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.config.access_token}":
            return self._error(190)
        return _json({"data": self.numbers.listed(), "paging": {"cursors": {}}})

    async def _change_number(self, request: web.Request) -> web.Response:
        """Change a number's quality, throughput level or messaging limit (adding it if new);
        with a webhook target, post what Meta would announce of the change."""
        try:
            number, announcements = self.numbers.change(orjson.loads(await request.read()))
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        if self.config.webhook_url:
            for value in announcements:
                self.webhooks.quality_update(value)
        return _json({"number": number.listed(), "webhooks": len(announcements)})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _ledger(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(entry) for entry in self.ledger])

    async def _configure(self, request: web.Request) -> web.Response:
        try:
            self.update_config(await request.json())
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"ok": True})

    async def _outage(self, request: web.Request) -> web.Response:
        """``{"seconds": N}``: answered, then the API goes away for N seconds (``go_away``)."""
        try:
            seconds = float((await request.json())["seconds"])
        except (ValueError, TypeError, KeyError):
            seconds = math.nan
        if not 0 < seconds <= MAX_OUTAGE_S:
            return web.json_response(
                {"error": f'give {{"seconds": N}}, N from 0 to {MAX_OUTAGE_S:g}'}, status=400)
        if self._away is not None and not self._away.done():
            return web.json_response({"error": "already away"}, status=409)
        self._away = asyncio.create_task(self.go_away(seconds, answering=request.protocol))
        return web.json_response({"away_for": seconds})

    async def _inbound(self, request: web.Request) -> web.Response:
        return await self._inject(request, inbound_request, self.webhooks.inbound_text)

    async def _preferences(self, request: web.Request) -> web.Response:
        return await self._inject(request, preference_request, self.webhooks.preference)

    async def _inject(
        self, request: web.Request, read: Callable[[Any], tuple[str, str, str]],
        post: Callable[[str, str, str], None],
    ) -> web.Response:
        """Post what a person did (a message, a stop) to the webhook URL, as Meta would."""
        if not self.config.webhook_url:
            return web.json_response({"error": "set webhook_url first"}, status=409)
        try:
            post(*read(orjson.loads(await request.read())))
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"ok": True})


def _invalid_message(body: object) -> str | None:
    """What Meta would reject with (#100), checked cheaply; None when the body is acceptable."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be 'whatsapp'"
    if not isinstance(body.get("to"), str) or not body["to"]:
        return "to is required"
    if body.get("type") != "template":
        return "only template messages are supported by the mock"
    template = body.get("template")
    if not isinstance(template, dict) or not template.get("name"):
        return "template.name is required"
    language = template.get("language")
    if not isinstance(language, dict) or language.get("policy") != "deterministic" \
            or not language.get("code"):
        return "template.language needs policy 'deterministic' and a code"
    return None


def _config_value(name: str, value: object) -> object:
    """A setting as JSON gives it, in the type MockConfig holds (pairs, codes as numbers)."""
    if isinstance(getattr(MockConfig, name, None), tuple):
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise TypeError(f"{name}: give [low, high]")
        low, high = value
        return (float(low), float(high))
    if name == "webhook_failures":
        if not isinstance(value, dict):
            raise TypeError("webhook_failures: give {code: share}")
        return {int(code): float(share) for code, share in value.items()}
    return value


def _json(body: object, status: int = 200) -> web.Response:
    """A JSON answer, encoded by orjson: the mock answers every send on the same cores as the
    engine in the benchmarks, and the json module was ~7% of its CPU."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
