"""httpx-aiohttp's transport with a shorter path per request, for the send hot path.

httpx-aiohttp's ``AiohttpTransport`` is general: per request it formats the URL again for
aiohttp to parse again, converts httpx's headers through a mapping view, builds a
``ClientTimeout``, enters an exception-mapping context manager three times and streams the
answer through an async generator. We send one fixed POST to one URL with ~150-byte answers,
so ``LeanAiohttpTransport`` keeps the parsed URL and the timeout of the last request, passes
the headers as plain pairs, reads the answer whole and maps aiohttp's errors to httpx's (the
same table, the same ``__cause__``) only when one is raised. Figures in docs/performance.md.

Two per-request signals the client needs come from subclasses instead of aiohttp's tracing
(``trace_configs``): with any trace config, aiohttp creates its trace objects and awaits a
dozen signals for every request, ~40 us of CPU each time, for the two we use.
- ``WrittenClockRequest`` calls the sending task's ``on_written`` just before the body is
  written to the socket (where the chunk-sent signal fired);
- ``CountingConnector`` counts new TCP connections (where the connection-created signal fired).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractStreamWriter
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from yarl import URL

#: The ``on_written`` of the request being sent. A context variable, because aiohttp writes the
#: body from a task of its own, which starts with a copy of the sending task's context.
ON_WRITTEN: ContextVar[Callable[[float], None] | None] = ContextVar("watui_on_written", default=None)


class WrittenClockRequest(aiohttp.ClientRequest):
    """aiohttp's request, telling ``ON_WRITTEN`` when its body (with the headers) leaves."""

    async def write_bytes(
        self, writer: AbstractStreamWriter, conn: Connection, content_length: int | None = None
    ) -> None:
        on_written = ON_WRITTEN.get()
        if on_written is not None:
            on_written(time.monotonic())
        await super().write_bytes(writer, conn, content_length)


class CountingConnector(aiohttp.TCPConnector):
    """aiohttp's TCP pool, calling ``on_connect`` for each new connection it opens."""

    def __init__(self, *, on_connect: Callable[[], None], **options: Any) -> None:
        super().__init__(**options)
        self._on_connect = on_connect

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        protocol = await super()._create_connection(req, traces, timeout)
        self._on_connect()
        return protocol


class LeanAiohttpTransport(AiohttpTransport):
    """``AiohttpTransport`` for small answers: an httpx.Request in, an httpx.Response out with
    its body already read (so the connection goes back to the pool at once)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._url: tuple[httpx.URL | None, URL] = (None, URL())
        self._timeout: tuple[dict[str, Any] | None, aiohttp.ClientTimeout] = (None, aiohttp.ClientTimeout())

    def _aiohttp_url(self, url: httpx.URL) -> URL:
        if self._url[0] is not url:
            self._url = (url, URL(str(url), encoded=True))
        return self._url[1]

    def _aiohttp_timeout(self, timeout: dict[str, Any]) -> aiohttp.ClientTimeout:
        if self._timeout[0] is not timeout:
            self._timeout = (timeout, aiohttp.ClientTimeout(
                sock_connect=timeout.get("connect"), sock_read=timeout.get("read"),
                connect=timeout.get("pool"),
            ))
        return self._timeout[1]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed body: httpx-aiohttp's general path
            return await super().handle_async_request(request)
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        try:
            async with self.client.request(
                request.method,
                self._aiohttp_url(request.url),
                headers=[(name.decode(), value.decode()) for name, value in request.headers.raw],
                data=body or None,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=self._aiohttp_timeout(request.extensions.get("timeout", {})),
                server_hostname=request.extensions.get("sni_hostname"),
            ) as answer:
                content = await answer.read()
        except Exception:
            with map_aiohttp_exceptions():
                raise
        # A stream over the bytes, not ``content=``: that runs them through httpx's decoders.
        return httpx.Response(
            answer.status, headers=answer.raw_headers, stream=httpx.ByteStream(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )
