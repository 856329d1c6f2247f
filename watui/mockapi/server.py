"""A fake of the WhatsApp Cloud API on aiohttp.web: same paths, same JSON, configurable trouble.

Every test, benchmark and ``watui demo`` talks to this instead of Meta. The send handler is kept
lean (one dict lookup per check, no per-request allocation beyond the answer) so that it serves
well over 3,000 requests/s on one core and is never the bottleneck it is meant to measure.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from watui.mockapi.config import FAILURE_CLASSES, MockConfig
from watui.mockapi.samples import SAMPLE_TEMPLATES
from watui.whatsapp.errors import describe_code

_JSON = "application/json"
_HTTP_STATUS_OF_CODE = {190: 401, 131000: 500, 131016: 503}


@dataclass
class MockStats:
    """Counters readable in-process and at GET /_mock/stats."""

    requests: int = 0
    accepted: int = 0
    rate_limited: int = 0
    by_code: dict[int, int] = field(default_factory=dict)
    resets: int = 0
    slow: int = 0
    webhooks_sent: int = 0
    webhook_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "rate_limited": self.rate_limited,
            "by_code": {str(code): count for code, count in self.by_code.items()},
            "resets": self.resets,
            "slow": self.slow,
            "webhooks_sent": self.webhooks_sent,
            "webhook_failures": self.webhook_failures,
        }


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One accepted message."""

    wamid: str
    to: str
    template: str
    at: float


def error_body(code: int, details: str = "", subcode: int | None = None) -> dict[str, Any]:
    """The Graph API error object exactly as the Cloud API shapes it."""
    error: dict[str, Any] = {
        "message": f"(#{code}) {describe_code(code)}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or describe_code(code)},
        "fbtrace_id": f"Amock{code}",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def signature_of(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta puts on webhook POSTs."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MockCloudApi:
    """The mock server. ``await start()`` returns its base URL; ``config`` may change any time."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.stats = MockStats()
        self.ledger: list[LedgerEntry] = []
        self._config = config or MockConfig()
        self._random = random.Random(self._config.seed)
        self._recent_by_number: dict[str, deque[float]] = {}
        self._last_by_recipient: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self._webhook_session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.base_url = ""

    @property
    def config(self) -> MockConfig:
        return self._config

    @config.setter
    def config(self, config: MockConfig) -> None:
        if config.seed != self._config.seed:
            self._random = random.Random(config.seed)
        self._config = config

    def reconfigure(self, **changes: Any) -> MockConfig:
        """Change some settings at runtime (e.g. start or stop a failure storm)."""
        self.config = self._config.updated(changes)
        return self._config

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._send)
        app.router.add_get("/{version}/{waba_id}/message_templates", self._templates)
        app.router.add_get("/_mock/stats", self._stats)
        app.router.add_get("/_mock/ledger", self._ledger)
        app.router.add_post("/_mock/config", self._set_config)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{bound[1]}"
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._webhook_session is not None:
            await self._webhook_session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockCloudApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- POST /{version}/{phone_number_id}/messages ------------------------------------------

    async def _send(self, request: web.Request) -> web.StreamResponse:
        stats, config = self.stats, self._config
        stats.requests += 1
        if request.headers.get("Authorization") != f"Bearer {config.access_token}":
            return self._error(190, "Invalid OAuth access token.")
        try:
            message = json.loads(await request.read())
            to, template = _validated_message(message)
        except (ValueError, KeyError, TypeError) as error:
            return self._error(100, f"Invalid parameter: {error}")
        now = time.monotonic()
        code = self._refusal(request.match_info["phone_number_id"], to, now)
        failure = self._injected_failure() if code is None else None
        if config.latency_max > 0:
            await asyncio.sleep(self._random.uniform(config.latency_min, config.latency_max))
        if failure is not None:
            return await self._inject(request, failure)
        if code is not None:
            return self._error(code, subcode=2494055 if code == 130429 else None)
        return self._accept(to, template)

    def _refusal(self, phone_number_id: str, to: str, now: float) -> int | None:
        """The code the real API would refuse this message with, if any (limits, patterns)."""
        config = self._config
        if config.rate_limit > 0:
            window = self._recent_by_number.get(phone_number_id)
            if window is None:
                window = self._recent_by_number[phone_number_id] = deque()
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= config.rate_limit:
                self.stats.rate_limited += 1
                return 130429
            window.append(now)
        for suffix, code in config.failures_by_suffix.items():
            if to.endswith(suffix):
                return code
        if config.pair_limit_seconds > 0:
            last = self._last_by_recipient.get(to)
            if last is not None and now - last < config.pair_limit_seconds:
                return 131056
            self._last_by_recipient[to] = now
        if config.spam_after is not None and self.stats.accepted + 1 >= config.spam_after:
            return 131048
        return None

    def _injected_failure(self) -> str | None:
        rates = self._config.failure_rates
        if not rates:
            return None
        draw = self._random.random()
        for name in FAILURE_CLASSES:
            draw -= rates.get(name, 0.0)
            if draw < 0:
                return name
        return None

    async def _inject(self, request: web.Request, failure: str) -> web.StreamResponse:
        if failure == "permanent":
            return self._error(131026, "Message undeliverable.")
        if failure == "transient":
            return self._error(131000, "Something went wrong.")
        if failure == "http500":
            self.stats.by_code[500] = self.stats.by_code.get(500, 0) + 1
            return web.Response(status=500, text="Internal Server Error")
        if failure == "reset":
            self.stats.resets += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more to write: the client sees a reset
        self.stats.slow += 1
        await asyncio.sleep(self._config.slow_seconds)
        return self._error(131000, "Answered too late.")

    def _error(self, code: int, details: str = "", subcode: int | None = None) -> web.Response:
        self.stats.by_code[code] = self.stats.by_code.get(code, 0) + 1
        body = json.dumps(error_body(code, details, subcode)).encode()
        return web.Response(
            status=_HTTP_STATUS_OF_CODE.get(code, 400), body=body, content_type=_JSON
        )

    def _accept(self, to: str, template: str) -> web.Response:
        self.stats.accepted += 1
        wamid = f"wamid.MOCK{self.stats.accepted:010d}{self._random.getrandbits(32):08x}"
        self.ledger.append(LedgerEntry(wamid, to, template, time.time()))
        if self._config.webhook_url:
            self._spawn(self._post_statuses(wamid, to))
        wa_id = to.lstrip("+")
        body = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }
        return web.Response(body=json.dumps(body).encode(), content_type=_JSON)

    # -- webhooks -----------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_statuses(self, wamid: str, to: str) -> None:
        for status in ("sent", "delivered", "read"):
            await self.post_status(wamid, to, status)

    async def post_status(
        self, wamid: str, to: str, status: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        """POST one status update to the webhook URL, signed like Meta signs it."""
        config = self._config
        if not config.webhook_url:
            return
        entry: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": to.lstrip("+"),
        }
        if errors:
            entry["errors"] = errors
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "mock-waba",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {"messaging_product": "whatsapp", "statuses": [entry]},
                            }
                        ],
                    }
                ],
            }
        ).encode()
        headers = {
            "Content-Type": _JSON,
            "X-Hub-Signature-256": signature_of(body, config.app_secret),
        }
        if self._webhook_session is None:
            self._webhook_session = aiohttp.ClientSession()
        try:
            async with self._webhook_session.post(
                config.webhook_url, data=body, headers=headers
            ) as answer:
                await answer.read()
            self.stats.webhooks_sent += 1
        except (aiohttp.ClientError, OSError):
            self.stats.webhook_failures += 1

    # -- GET /{version}/{waba_id}/message_templates -------------------------------------------

    async def _templates(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self._config.access_token}":
            return self._error(190, "Invalid OAuth access token.")
        try:
            limit = max(1, int(request.query.get("limit", self._config.page_size)))
            start = int(request.query.get("after", "0") or 0)
        except ValueError:
            return self._error(100, "limit and after must be integers")
        limit = min(limit, self._config.page_size)
        page = SAMPLE_TEMPLATES[start : start + limit]
        answer: dict[str, Any] = {
            "data": page,
            "paging": {"cursors": {"before": str(start), "after": str(start + len(page))}},
        }
        if start + limit < len(SAMPLE_TEMPLATES):
            query = {**request.query, "after": str(start + limit)}
            answer["paging"]["next"] = str(request.url.with_query(query))
        return web.json_response(answer)

    # -- /_mock ---------------------------------------------------------------------------------

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response({**self.stats.as_dict(), "config": self._config.to_public_dict()})

    async def _ledger(self, _request: web.Request) -> web.Response:
        entries = [
            {"wamid": e.wamid, "to": e.to, "template": e.template, "at": e.at} for e in self.ledger
        ]
        return web.json_response(entries)

    async def _set_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of settings")
            self.reconfigure(**changes)
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self._config.to_public_dict())


def _validated_message(message: Any) -> tuple[str, str]:
    """(to, template name) of a template message, or ValueError like Meta's code 100 answers."""
    if not isinstance(message, dict):
        raise ValueError("the body must be a JSON object")
    if message.get("messaging_product") != "whatsapp":
        raise ValueError("messaging_product must be 'whatsapp'")
    to = message["to"]
    if not isinstance(to, str) or not to.lstrip("+").isdigit():
        raise ValueError("to must be a phone number")
    if message.get("type") != "template":
        raise ValueError("only template messages are supported by the mock")
    template = message["template"]
    language = template["language"]
    if (
        not template.get("name")
        or not language.get("code")
        or language.get("policy") != "deterministic"
    ):
        raise ValueError("template needs a name and language {policy: deterministic, code}")
    return to, template["name"]
