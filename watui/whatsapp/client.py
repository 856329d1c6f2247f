"""The one HTTP client that talks to the Cloud API: sends template messages, lists templates.

httpx API throughout; underneath, the aiohttp transport by default (about a third of the CPU of
httpx's own pool at deep windows, see docs/benchmarks.md) or httpx's native one. ``send`` never
raises for a network or API problem: it returns a ``SendResult`` the engine classifies.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from watui.settings import HttpSettings, WhatsAppSettings
from watui.whatsapp.results import (
    Accepted,
    ApiError,
    SendResult,
    TransportFailure,
    TransportReason,
)

TEMPLATE_FIELDS = "id,name,language,status,category,components"
TEMPLATE_PAGE_SIZE = 100
#: A bound on template pages, so a server that always answers "next" cannot loop us forever.
MAX_TEMPLATE_PAGES = 1_000


class TemplateListError(Exception):
    """Listing templates failed; the message is one line that says why (never the token)."""


class TokenRefused(TemplateListError):
    """The API refused the access token (code 190 or HTTP 401)."""


class WhatsAppClient:
    """One pooled HTTP client per process, shared by every sender (keep-alive always on)."""

    def __init__(self, whatsapp: WhatsAppSettings, http: HttpSettings) -> None:
        self._whatsapp = whatsapp
        self._transport_name = http.transport
        base = f"{whatsapp.api_base_url}/{whatsapp.api_version}"
        self._messages_url = f"{base}/{whatsapp.phone_number_id}/messages"
        self._templates_url = f"{base}/{whatsapp.waba_id}/message_templates"
        self._requests = 0
        self._new_connections = 0
        limits = httpx.Limits(
            max_connections=http.max_connections,
            max_keepalive_connections=http.max_keepalive_connections,
            keepalive_expiry=http.keepalive_expiry,
        )
        headers = {
            "Authorization": f"Bearer {whatsapp.access_token.get_secret_value()}",
            "Content-Type": "application/json",
        }
        self._extensions: dict[str, Any] = {}
        if http.transport == "aiohttp":
            transport: httpx.AsyncBaseTransport = AiohttpTransport(
                limits=limits, client=lambda: self._aiohttp_session(http)
            )
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, http2=http.http2)
            self._extensions = {"trace": self._httpcore_trace}
        self._http = httpx.AsyncClient(
            transport=transport, headers=headers, timeout=httpx.Timeout(http.timeout)
        )

    def __repr__(self) -> str:
        return (
            f"WhatsAppClient(phone_number_id={self._whatsapp.phone_number_id!r}, "
            f"base={self._whatsapp.api_base_url!r}, transport={self._transport_name!r})"
        )

    async def send(self, payload: dict[str, Any]) -> SendResult:
        """POST one message; every outcome, network failures included, comes back as a result."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        self._requests += 1
        started = time.perf_counter()
        try:
            response = await self._http.post(
                self._messages_url, content=body, extensions=self._extensions
            )
        except Exception as error:  # every network problem becomes a result, never an exception
            return TransportFailure(
                _transport_reason(error), _describe(error), time.perf_counter() - started
            )
        latency = time.perf_counter() - started
        return _parse_send_answer(response.status_code, response.content, latency)

    async def list_templates(self) -> list[dict[str, Any]]:
        """Every message template of the WABA, all pages followed.

        Raises TokenRefused when the token is refused, TemplateListError for anything else.
        """
        templates: list[dict[str, Any]] = []
        url: str | None = self._templates_url
        params: dict[str, Any] | None = {"fields": TEMPLATE_FIELDS, "limit": TEMPLATE_PAGE_SIZE}
        for _ in range(MAX_TEMPLATE_PAGES):
            if url is None:
                return templates
            page = await self._get_json(url, params)
            templates.extend(page.get("data") or [])
            url, params = self._next_page(page)
        raise TemplateListError(f"more than {MAX_TEMPLATE_PAGES} pages of templates")

    def _next_page(self, page: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        paging = page.get("paging") or {}
        if paging.get("next"):
            return str(paging["next"]), None
        after = (paging.get("cursors") or {}).get("after")
        if after and page.get("data"):
            fields = {"fields": TEMPLATE_FIELDS, "limit": TEMPLATE_PAGE_SIZE, "after": after}
            return self._templates_url, fields
        return None, None

    async def _get_json(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self._requests += 1
        try:
            response = await self._http.get(url, params=params, extensions=self._extensions)
        except Exception as error:
            raise TemplateListError(
                f"cannot reach the Cloud API at {self._whatsapp.api_base_url}: {_describe(error)}"
            ) from None
        answer = _json_or_none(response.content)
        error = answer.get("error") if isinstance(answer, dict) else None
        if response.status_code == 401 or (isinstance(error, dict) and error.get("code") == 190):
            raise TokenRefused("the Cloud API refused the access token (whatsapp.access_token)")
        if response.status_code != 200 or not isinstance(answer, dict):
            detail = error.get("message") if isinstance(error, dict) else response.text[:200]
            raise TemplateListError(
                f"listing templates failed: HTTP {response.status_code}: {detail}"
            )
        return answer

    def connection_stats(self) -> dict[str, int]:
        """Requests made and TCP connections opened so far: reuse = 1 - new / requests."""
        return {"requests": self._requests, "new_connections": self._new_connections}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> WhatsAppClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _aiohttp_session(self, http: HttpSettings) -> aiohttp.ClientSession:
        """Built lazily by the transport, inside the running loop, with a connect counter."""
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(self._count_aiohttp_connection)
        connector = aiohttp.TCPConnector(
            limit=http.max_connections, keepalive_timeout=http.keepalive_expiry
        )
        return aiohttp.ClientSession(connector=connector, trace_configs=[trace])

    async def _count_aiohttp_connection(self, *_args: object) -> None:
        self._new_connections += 1

    async def _httpcore_trace(self, event_name: str, _info: dict[str, Any]) -> None:
        if event_name == "connection.connect_tcp.complete":
            self._new_connections += 1


def _parse_send_answer(status: int, content: bytes, latency: float) -> SendResult:
    answer = _json_or_none(content)
    if status == 200 and isinstance(answer, dict) and answer.get("messages"):
        message = answer["messages"][0]
        contacts = answer.get("contacts") or [{}]
        return Accepted(
            wamid=message.get("id", ""),
            wa_id=contacts[0].get("wa_id"),
            message_status=message.get("message_status", "accepted"),
            latency=latency,
        )
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        details = (error.get("error_data") or {}).get("details") or ""
        return ApiError(
            http_status=status,
            code=_int_or_none(error.get("code")),
            subcode=_int_or_none(error.get("error_subcode")),
            title=str(error.get("message", "")),
            details=str(details),
            fbtrace_id=error.get("fbtrace_id"),
            latency=latency,
        )
    if status == 200:
        return TransportFailure(TransportReason.PROTOCOL, "HTTP 200 without a message id", latency)
    text = content[:200].decode("utf-8", "replace").strip()
    return ApiError(status, None, None, text or f"HTTP {status}", "", None, latency)


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _transport_reason(error: Exception) -> TransportReason:
    """Which kind of network failure; the aiohttp cause decides when there is one.

    httpx-aiohttp maps every aiohttp ClientConnectionError, a server hanging up included, to
    httpx.ConnectTimeout, which would wrongly say "certainly not sent": look underneath first.
    """
    cause = error.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        return TransportReason.CONNECT
    if isinstance(cause, aiohttp.SocketTimeoutError):
        return TransportReason.READ_TIMEOUT
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return TransportReason.CONNECT
    if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        return TransportReason.RESET
    if isinstance(cause, aiohttp.ClientPayloadError):
        return TransportReason.RESET
    if isinstance(cause, aiohttp.ClientResponseError):
        return TransportReason.PROTOCOL
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return TransportReason.CONNECT
    if isinstance(error, (httpx.ReadTimeout, httpx.WriteTimeout)):
        return TransportReason.READ_TIMEOUT
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return TransportReason.RESET
    if isinstance(error, ConnectionError):
        return TransportReason.RESET
    if isinstance(error, httpx.ProtocolError):
        return TransportReason.PROTOCOL
    return TransportReason.OTHER


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
