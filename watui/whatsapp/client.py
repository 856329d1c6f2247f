"""The Cloud API client: one shared keep-alive connection pool, results instead of exceptions.

The httpx API throughout; underneath, by ``http.transport``, either aiohttp's connection pool
(httpx-aiohttp: ~0.3 ms CPU per request at any pool depth) or httpx's own (0.75 ms at 1-4
connections, 2.2 ms at 64: too slow for 1,000 msg/s). ``send`` never raises for a network or API
problem: it returns Accepted, ApiError or TransportFailure with the request's latency.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import orjson

from watui.errors import AccountNotFound, ApiUnavailable, TokenRefused
from watui.rules import MAX_AUTO_CONNECTIONS, Endpoint
from watui.settings import HttpSettings, WhatsAppSettings
from watui.whatsapp.reachability import ApiReachability
from watui.whatsapp.results import (
    Accepted,
    ApiError,
    ConnectionStats,
    SendResult,
    TransportFailure,
    TransportReason,
)
from watui.whatsapp.transport import (
    ON_WRITTEN,
    CountingConnector,
    LeanAiohttpTransport,
    WrittenClockRequest,
)

TEMPLATE_FIELDS = "id,name,language,status,category,components"
TEMPLATE_PAGE_SIZE = 100
#: Seconds ``open_connections`` waits for the pool to open before sending starts anyway.
OPEN_CONNECTIONS_WITHIN = 2.0
#: What a request can fail with. httpx-aiohttp re-raises aiohttp errors it has no mapping for
#: (a garbled status line comes out as a raw aiohttp.ClientResponseError), so catch those too.
NETWORK_ERRORS = (httpx.HTTPError, aiohttp.ClientError, OSError)


class WhatsAppClient:
    """One per process, shared by every sender. Use as ``async with`` or call ``aclose()``."""

    def __init__(self, whatsapp: WhatsAppSettings, http: HttpSettings) -> None:
        self._settings = whatsapp
        self._reachability = ApiReachability(whatsapp.api_base_url)
        self._requests = 0
        self._new_connections = 0
        base = f"{whatsapp.api_base_url}/{whatsapp.api_version}"
        self._messages_url = endpoint_url(whatsapp)
        self._base = base
        #: Other numbers' /messages URLs (campaigns of several numbers), parsed once each.
        self._number_urls: dict[str, httpx.URL] = {}
        self._templates_url = f"{base}/{whatsapp.waba_id}/message_templates"
        token = whatsapp.access_token.get_secret_value()
        timeout = httpx.Timeout(http.timeout)
        self._transport = self._make_transport(http)
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=timeout,
            transport=self._transport,
            follow_redirects=False,
        )
        self._lean = self._transport if isinstance(self._transport, LeanAiohttpTransport) else None
        self._send_headers = (
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", "application/json"),
            # Answers are ~150 bytes: not worth compressing.
            ("Accept-Encoding", "identity"),
        )
        self._send_timeout = timeout.as_dict()

    def __repr__(self) -> str:  # the token never shows, even in a debugger or a log
        return f"WhatsAppClient(url={str(self._messages_url)!r})"

    def _make_transport(self, http: HttpSettings) -> httpx.AsyncBaseTransport:
        limits = httpx.Limits(
            max_connections=pool_limit(http),
            max_keepalive_connections=http.max_keepalive_connections,
            keepalive_expiry=http.keepalive_expiry,
        )
        if http.transport == "httpx":
            return _CountingTransport(
                httpx.AsyncHTTPTransport(limits=limits, http2=http.http2), self._count_connection
            )
        ssl_context = ssl.create_default_context()
        return LeanAiohttpTransport(limits=limits, client=lambda: self._aiohttp_session(http, ssl_context))

    def _aiohttp_session(self, http: HttpSettings, ssl_context: ssl.SSLContext) -> aiohttp.ClientSession:
        connector = CountingConnector(
            on_connect=self._count_connection,
            limit=pool_limit(http),
            keepalive_timeout=http.keepalive_expiry or None,
            ssl=ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, request_class=WrittenClockRequest)

    def _count_connection(self) -> None:
        self._new_connections += 1

    def connection_stats(self) -> ConnectionStats:
        return ConnectionStats(self._requests, self._new_connections)

    async def can_connect(self) -> bool:
        """Whether a TCP connection to the API opens now, nothing sent: the outage guard's check."""
        return await self._reachability.can_connect()

    async def open_connections(self, count: int) -> int:
        """Open up to ``count`` connections to the API before the first send, left idle in the
        pool; how many it then holds (0 on httpx's own pool, which cannot open ahead).

        A request on a new connection waits for its handshakes (TCP, TLS: round trips to
        Meta) after the pacer released it, and the API counts it late, in a bunch with
        later ones on warm connections: at 2,000 msg/s the mock counted up to 1,000 in one
        second of the 994 we wrote (130429s in 2 runs of 3); with the pool opened first, none
        in 4 (docs/performance.md). Bounded by OPEN_CONNECTIONS_WITHIN."""
        if self._lean is None:
            return 0
        return await self._lean.open_connections(
            self._messages_url, self._send_headers, count, OPEN_CONNECTIONS_WITHIN)

    async def send(
        self, payload: dict[str, Any], on_written: Callable[[float], None] | None = None,
        url: httpx.URL | None = None, *, phone_number_id: str | None = None,
    ) -> SendResult:
        """POST one message to ``url`` (``endpoint_url``; default: /messages); never raises
        for a network or API problem. ``on_written`` is called with the monotonic time at
        which the request's body is written to the socket (aiohttp transport only), which can
        be well after this call when the loop is busy.

        The request goes straight to the transport (``LeanAiohttpTransport.post``: the body
        and the URL in, the status and the answer out): AsyncClient's per-request layers
        (header merging, cookie jar, auth and redirect flows, event hooks) do nothing for this
        one fixed POST and cost ~0.15 ms of CPU per message, a third of the budget at 1,000
        msg/s (bench/http_bench.py).

        ``phone_number_id``: send from this number rather than whatsapp.phone_number_id."""
        self._requests += 1
        body = _dumps(payload)
        if url is None:
            url = self._messages_url if phone_number_id is None else self._url_for(phone_number_id)
        started = time.perf_counter()
        token = ON_WRITTEN.set(on_written)
        try:
            if self._lean is not None:
                status, content = await self._lean.post(url, self._send_headers, body, self._send_timeout)
            else:
                status, content = await self._post_through_httpx(url, body)
        except NETWORK_ERRORS as error:
            return TransportFailure(_reason(error), _describe(error), time.perf_counter() - started)
        finally:
            ON_WRITTEN.reset(token)
        return _parse_send(status, content, time.perf_counter() - started)

    async def _post_through_httpx(self, url: httpx.URL, body: bytes) -> tuple[int, bytes]:
        """The send for httpx's own pool (``http.transport = "httpx"``): straight to the
        transport, an httpx.Request in and an httpx.Response out."""
        request = httpx.Request(
            "POST", url,
            headers=httpx.Headers(
                [("Host", url.netloc.decode()), *self._send_headers, ("Content-Length", str(len(body)))]),
            stream=httpx.ByteStream(body),
            extensions={"timeout": self._send_timeout},
        )
        request.read()  # the body is in memory: the transport sends it as bytes, not chunked
        response = await self._transport.handle_async_request(request)
        try:
            # An async transport answers with an async stream.
            content = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        finally:
            await response.aclose()
        return response.status_code, content

    def _url_for(self, phone_number_id: str) -> httpx.URL:
        url = self._number_urls.get(phone_number_id)
        if url is None:
            url = self._number_urls[phone_number_id] = httpx.URL(
                f"{self._base}/{phone_number_id}/messages")
        return url

    async def list_templates(self) -> list[dict[str, Any]]:
        """Every template of the business account, following the pages."""
        templates: list[dict[str, Any]] = []
        params: dict[str, Any] = {"fields": TEMPLATE_FIELDS, "limit": TEMPLATE_PAGE_SIZE}
        while True:
            page = await self._get_json(self._templates_url, params)
            templates.extend(page.get("data") or [])
            after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (page.get("paging") or {}).get("next"):
                return templates
            params = {**params, "after": after}

    async def get_account(self, edge: str, params: dict[str, Any]) -> dict[str, Any]:
        """One page of an edge of the business account (``phone_numbers``, ...), as JSON.

        Raises TokenRefused, AccountNotFound or ApiUnavailable, each one line."""
        base = f"{self._settings.api_base_url}/{self._settings.api_version}"
        return await self._get_json(f"{base}/{self._settings.waba_id}/{edge}", params)

    async def _get_json(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.get(url, params=params)
        except NETWORK_ERRORS as error:
            raise ApiUnavailable(f"cannot reach {self._settings.api_base_url}: {_describe(error)}") from None
        body = _loads(response.content)
        if response.status_code == 200 and isinstance(body, dict):
            return body
        refusal = _api_error(response.status_code, body, 0.0)
        if refusal.code == 190 or response.status_code == 401:
            raise TokenRefused(f"the access token was refused ({refusal.title})")
        if response.status_code == 404 or (refusal.code == 100 and refusal.subcode == 33):
            raise AccountNotFound(
                f"the API knows no WhatsApp Business Account {self._settings.waba_id!r} that this "
                "token can see: check whatsapp.waba_id (and the token's permissions)"
            )
        raise ApiUnavailable(f"the API answered HTTP {response.status_code}: {refusal.title}")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> WhatsAppClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def endpoint_url(
    whatsapp: WhatsAppSettings, endpoint: Endpoint = Endpoint.MESSAGES,
    phone_number_id: str | None = None,
) -> httpx.URL:
    """Where a number (the configured one by default) POSTs a template message for
    ``endpoint``. Parse it once and keep it: httpx would parse a string URL again on every
    request of the hot path."""
    number = phone_number_id or whatsapp.phone_number_id
    return httpx.URL(f"{whatsapp.api_base_url}/{whatsapp.api_version}/{number}/{endpoint}")


def pool_limit(http: HttpSettings) -> int:
    """What the transport's own pool allows: the fixed number, or the automatic limit's ceiling
    (then the sender's own count of requests out, sized while sending, bounds them)."""
    return MAX_AUTO_CONNECTIONS if http.max_connections == "auto" else http.max_connections


class _CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own pool, counting new TCP connections through httpcore's trace extension."""

    def __init__(self, inner: httpx.AsyncHTTPTransport, on_connect: Callable[[], None]) -> None:
        self._inner = inner
        self._on_connect = on_connect

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def trace(event: str, _info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete":
                self._on_connect()

        request.extensions["trace"] = trace
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _dumps(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)  # compact UTF-8, as json.dumps(separators, ensure_ascii=False)


def _loads(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:  # also bad UTF-8
        return None


def _parse_send(status: int, content: bytes, latency: float) -> SendResult:
    body = _loads(content)
    if status == 200 and isinstance(body, dict):
        messages = body.get("messages") or []
        if messages and isinstance(messages[0], dict) and messages[0].get("id"):
            contacts = body.get("contacts") or [{}]
            wa_id = contacts[0].get("wa_id") if isinstance(contacts[0], dict) else None
            return Accepted(messages[0]["id"], wa_id, messages[0].get("message_status", "accepted"), latency)
        return TransportFailure(TransportReason.PROTOCOL, "HTTP 200 without a message id", latency)
    return _api_error(status, body, latency)


def _api_error(status: int, body: object, latency: float) -> ApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ApiError(status, None, None, f"HTTP {status} without an error object", "", None, latency)
    data = error.get("error_data")
    details = data.get("details", "") if isinstance(data, dict) else ""
    code = error.get("code")
    subcode = error.get("error_subcode")
    return ApiError(
        status,
        code if isinstance(code, int) else None,
        subcode if isinstance(subcode, int) else None,
        str(error.get("message") or error.get("error_user_title") or ""),
        str(details),
        error.get("fbtrace_id"),
        latency,
    )


def _reason(error: BaseException) -> TransportReason:
    """Where it broke decides whether the request may have been accepted."""
    # httpx-aiohttp wraps aiohttp's error as the cause, or lets it through unwrapped.
    cause = error if isinstance(error, aiohttp.ClientError) else error.__cause__
    if isinstance(cause, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return TransportReason.CONNECT
    if isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return TransportReason.RESET
    if isinstance(cause, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return TransportReason.PROTOCOL
    if isinstance(cause, TimeoutError | aiohttp.ServerTimeoutError):
        return TransportReason.READ_TIMEOUT
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return TransportReason.CONNECT
    if isinstance(error, httpx.ReadTimeout | httpx.WriteTimeout):
        return TransportReason.READ_TIMEOUT
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return TransportReason.RESET
    if isinstance(error, httpx.DecodingError):
        return TransportReason.PROTOCOL
    return TransportReason.OTHER


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]
