"""The webhook endpoint on aiohttp.web: Meta's handshake, then signed POSTs stored before 200.

Every answer is one line of text: Meta reads only the status (200: stored; anything else: it
redelivers later, for up to 7 days), and a person testing with curl reads the line.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from operator import attrgetter

from aiohttp import web
from pydantic import SecretStr

from watui.errors import MalformedWebhook, ReceiverError
from watui.receiver.applier import DeliveryApplier
from watui.receiver.committer import GroupCommitter, ReceiverCounters, ReceiverStats
from watui.receiver.number_quality import store_quality_updates
from watui.settings import Settings
from watui.settings.model import WebhookSettings
from watui.storage.database import Database
from watui.storage.webhook_events import (
    MESSAGE_COLUMNS,
    PREFERENCE_COLUMNS,
    STATUS_COLUMNS,
    IngestCounts,
    WebhookRows,
    store_webhook_rows,
)
from watui.whatsapp.webhooks import Notification, parse_notification, verify_signature

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"

#: Seconds a stop waits for POSTs in flight (their commit included) before dropping them.
SHUTDOWN_TIMEOUT = 10.0

NO_APP_SECRET = (
    "the webhook receiver needs the app secret to check each POST's signature: set "
    "WATUI_WHATSAPP__APP_SECRET (setting whatsapp.app_secret)"
)

Submit = Callable[[Notification], Awaitable[bool]]


def require_app_secret(app_secret: SecretStr) -> None:
    """Without the app secret no signature can be checked: anyone could post statuses."""
    if not app_secret.get_secret_value():
        raise ReceiverError(NO_APP_SECRET)


def build_server(
    webhook: WebhookSettings, app_secret: SecretStr, submit: Submit, counters: ReceiverCounters
) -> web.Server:
    """aiohttp's low-level server: GET and POST on ``webhook.path``; every other path is 404.

    Not a ``web.Application``: one path needs no router, and its routing, middleware and
    request wrapping cost 12-24 µs a POST (a bare handler served both ways at 3,000 POSTs/s:
    89-98 against 110-113 µs), when Meta mostly posts one status at a time: 3,000 POSTs/s at
    1,000 msg/s."""
    require_app_secret(app_secret)
    handlers = _Handlers(webhook, app_secret, submit, counters)
    # No access log: the handshake's query string carries the verify token.
    return web.Server(handlers.dispatch, access_log=None)


def _answer(status: int, line: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=line.encode() + b"\n", headers=headers,
                        content_type="text/plain", charset="utf-8")  # fmt: skip


#: Allowed on ``webhook.path``: the handshake (GET, and HEAD as aiohttp's routes allow) and POST.
_ALLOWED = {"Allow": "GET, HEAD, POST"}


class _Handlers:
    def __init__(
        self, webhook: WebhookSettings, app_secret: SecretStr, submit: Submit,
        counters: ReceiverCounters,
    ) -> None:  # fmt: skip
        self._path = webhook.path
        self._verify_token = webhook.verify_token.get_secret_value().encode()
        self._app_secret = app_secret.get_secret_value()
        self._max_body = webhook.max_body_bytes
        self._submit = submit
        self._counters = counters

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Route by path and method; a bug answers one line (500), never a traceback."""
        try:
            if request.path != self._path:
                return _answer(404, "not found")
            if request.method == "POST":
                return await self.notification(request)
            if request.method in ("GET", "HEAD"):
                return self.handshake(request)
            return _answer(405, "method not allowed", _ALLOWED)
        except Exception as error:
            log.error("webhook receiver: unexpected %s on %s", type(error).__name__, request.path)
            return _answer(500, "internal error")

    def handshake(self, request: web.BaseRequest) -> web.Response:
        """Meta's subscription check: echo ``hub.challenge`` if the token is ours, else 403."""
        query = request.query
        given = query.get("hub.verify_token", "").encode()
        challenge = query.get("hub.challenge", "")
        token_ok = bool(self._verify_token) and hmac.compare_digest(given, self._verify_token)
        if query.get("hub.mode") != "subscribe" or not token_ok or not challenge:
            return _answer(403, "verification refused")
        return web.Response(text=challenge, content_type="text/plain")

    async def notification(self, request: web.BaseRequest) -> web.Response:
        """Size, then signature (before anything reads the JSON), then parse, then store."""
        self._counters.posts += 1
        try:
            raw = await self._read_body(request)
        except (asyncio.IncompleteReadError, ConnectionError):  # no one is left to answer
            self._counters.malformed += 1
            return _answer(400, "the body ended before its Content-Length")
        if raw is None:
            self._counters.too_large += 1
            return _answer(413, f"body too large: at most {self._max_body} bytes")
        if not verify_signature(raw, request.headers.get(SIGNATURE_HEADER), self._app_secret):
            self._counters.refused_signatures += 1
            return _answer(403, "signature refused")
        try:
            notification = parse_notification(raw)
        except MalformedWebhook as error:
            self._counters.malformed += 1
            return _answer(400, str(error))
        if not await self._submit(notification):
            self._counters.unavailable += 1
            return _answer(503, "cannot store the updates now: send them again later")
        return _stored()

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        """The body, or None once it is over the limit (reading no more than limit + 1)."""
        if request.headers.get("Expect", "").lower() == "100-continue":  # curl's, for big bodies
            # Before any check, as the Application's router did (a 413 is then read after the body).
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = request.content_length
        if length is not None:  # Meta's case: one read of exactly that many bytes
            return await request.content.readexactly(length) if length <= self._max_body else None
        body = bytearray()
        while len(body) <= self._max_body:
            chunk = await request.content.read(self._max_body + 1 - len(body))
            if not chunk:
                return bytes(body)
            body += chunk
        return None


def _stored() -> web.Response:
    """The answer to almost every POST: its bytes made once, not encoded per POST."""
    return web.Response(body=_STORED, content_type="text/plain", charset="utf-8")


_STORED = b"stored\n"


class WebhookReceiver:
    """The receiver as a service of the running event loop: ``start()``, ``stats()``, ``stop()``.

    ``watui webhook`` runs it alone; the UI and ``watui run`` start it beside the sender. With
    an ``applier`` (``applying_receiver``) it also applies what it stores."""

    def __init__(
        self, db: Database, webhook: WebhookSettings, app_secret: SecretStr, *,
        clock: Callable[[], float] = time.time, applier: DeliveryApplier | None = None,
    ) -> None:  # fmt: skip
        require_app_secret(app_secret)
        self.applier = applier
        self._db = db
        self._webhook = webhook
        self._app_secret = app_secret
        self._clock = clock
        self._counters = ReceiverCounters()
        self._committer = GroupCommitter(
            self._store, self._counters, interval=webhook.commit_interval_ms / 1000,
            on_error=_log_store_error, on_stored=applier.stored if applier else lambda _count: None,
        )  # fmt: skip
        self._runner: web.ServerRunner | None = None
        self.url = ""

    async def start(self, host: str | None = None, port: int | None = None) -> str:
        """Listen (on the settings' host and port unless given); the URL Meta should post to.

        Raises ReceiverError (one line) when the address cannot be used."""
        host = host or self._webhook.host
        port = self._webhook.port if port is None else port
        server = build_server(self._webhook, self._app_secret, self._committer.submit, self._counters)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            await runner.cleanup()
            raise ReceiverError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        self._committer.start()
        if self.applier is not None:
            self.applier.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown_host}:{bound_port}{self._webhook.path}"
        return self.url

    async def stop(self) -> None:
        """Stop listening, let POSTs in flight finish (their commit too), then stop committing."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        await runner.cleanup()
        await self._committer.close()
        if self.applier is not None:
            await self.applier.close()

    def stats(self) -> ReceiverStats:
        return self._counters.snapshot()

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _store(self, notifications: Sequence[Notification]) -> IngestCounts:
        rows = webhook_rows(notifications)
        received_at = self._clock()
        counts = await store_webhook_rows(self._db, rows, received_at=received_at)
        quality = [update for notification in notifications for update in notification.quality]
        if quality:
            stored = await store_quality_updates(self._db, quality, received_at=received_at)
            counts = IngestCounts(counts.stored + stored, counts.duplicates)
        return counts


def applying_receiver(db: Database, settings: Settings) -> WebhookReceiver:
    """The receiver as every command runs it: storing, then applying to recipients and counters.

    Raises ReceiverError (one line) without the app secret."""
    applier = DeliveryApplier(
        db, settings.webhook, settings.retry, phone_number_id=settings.whatsapp.phone_number_id,
        stop_words=settings.audience.stop_words,
    )
    return WebhookReceiver(db, settings.webhook, settings.whatsapp.app_secret, applier=applier)


# The parser's fields are named as the columns, but for an inbound message's id (message_id).
_STATUS_ROW = attrgetter(*(name for name, _ in STATUS_COLUMNS))
_MESSAGE_ROW = attrgetter("id", *(name for name, _ in MESSAGE_COLUMNS[1:]))
_PREFERENCE_ROW = attrgetter(*(name for name, _ in PREFERENCE_COLUMNS))


def webhook_rows(notifications: Sequence[Notification]) -> WebhookRows:
    """The updates of several POSTs as the storage's rows (tuples in its column order)."""
    return WebhookRows(
        [_STATUS_ROW(status) for notification in notifications for status in notification.statuses],
        [_MESSAGE_ROW(message) for notification in notifications for message in notification.messages],
        [_PREFERENCE_ROW(update) for notification in notifications for update in notification.preferences],
    )


def _log_store_error(error: BaseException) -> None:
    """One line: the driver's own message (``orig``), not SQLAlchemy's, which adds the SQL."""
    cause = str(getattr(error, "orig", None) or error).strip().partition("\n")[0]
    log.warning("webhook receiver: cannot store updates, answering 503: %s %s",
                type(error).__name__, cause)
