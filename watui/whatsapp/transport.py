"""httpx-aiohttp's transport with a shorter path per request, for the send hot path.

httpx-aiohttp's ``AiohttpTransport`` is general: per request it formats the URL again for
aiohttp to parse again, converts httpx's headers through a mapping view, builds a
``ClientTimeout``, enters an exception-mapping context manager three times and streams the
answer through an async generator. We send one fixed POST to a few URLs with ~150-byte
answers, so ``LeanAiohttpTransport.post`` takes the body, a URL it parses once and the headers
as plain pairs, with no httpx Request or Response around them (``handle_async_request`` serves
the rest through httpx), reads the answer whole and maps aiohttp's errors to httpx's (the same
table, the same ``__cause__``) only when one is raised.

Below that it drives aiohttp's connector itself instead of ``ClientSession._request``, whose
cookie jar, proxy lookup, header merging, timeout handle, redirect loop and middleware chain did
nothing for us on every request. A POST (``_post_direct``) is written on a pooled connection as
one buffer and its answer read from that connection's parser, with no ``ClientRequest``,
``StreamWriter`` or ``ClientResponse`` per send; other requests (``_exchange``) go through
aiohttp's request and response objects. Both keep what ``_request`` did that matters: the same
timeouts, the same error types, no retry of a POST. Figures in docs/performance.md.

Two per-request signals the client needs come from subclasses instead of aiohttp's tracing
(``trace_configs``): with any trace config, aiohttp creates its trace objects and awaits a
dozen signals for every request, ~40 us of CPU each time, for the two we use.
- ``WrittenClockRequest`` calls the sending task's ``on_written`` just before the body is
  written to the socket (where the chunk-sent signal fired);
- ``CountingConnector`` counts new TCP connections (where the connection-created signal fired).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractStreamWriter
from aiohttp.client import IDEMPOTENT_METHODS
from aiohttp.client_exceptions import ClientConnectionResetError, ClientOSError, ConnectionTimeoutError
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.helpers import EMPTY_BODY_METHODS, TimerNoop
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.tracing import Trace
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from yarl import URL

#: Distinct URLs ``post`` keeps parsed: a few per step and number; more means callers build a
#: new URL per send, and the cache starts again rather than grow.
MAX_POST_URLS = 256
#: The ``on_written`` of the request being sent. A context variable, because aiohttp may write
#: the body from a task of its own, which starts with a copy of the sending task's context.
ON_WRITTEN: ContextVar[Callable[[float], None] | None] = ContextVar("watui_on_written", default=None)
#: Whether the connection being opened is opened ahead of the requests (in the tasks of
#: ``open_connections``, which start with a copy of its context).
OPENING_AHEAD: ContextVar[bool] = ContextVar("watui_opening_ahead", default=False)


@dataclass(frozen=True, slots=True)
class PostTarget:
    """A URL and headers that ``LeanAiohttpTransport.post`` sends to, converted for aiohttp."""

    url: httpx.URL
    headers: Sequence[tuple[str, str]]
    aiohttp_url: URL
    #: Built once and never sent: the connector's key (host, port, TLS) and the request info
    #: that aiohttp's errors carry.
    request: aiohttp.ClientRequest
    #: The request line and headers, up to the value of Content-Length.
    head: bytes


class WrittenClockRequest(aiohttp.ClientRequest):
    """aiohttp's request, telling ``ON_WRITTEN`` when its body (with the headers) leaves: for
    the requests that go through ``_exchange`` (a POST through a proxy, the httpx interface)."""

    async def write_bytes(
        self, writer: AbstractStreamWriter, conn: Connection, content_length: int | None = None
    ) -> None:
        on_written = ON_WRITTEN.get()
        if on_written is not None:
            on_written(time.monotonic())
        await super().write_bytes(writer, conn, content_length)


class CountingConnector(aiohttp.TCPConnector):
    """aiohttp's TCP pool, calling ``on_connect`` for each new connection a request had to
    open: those opened ahead (``LeanAiohttpTransport.open_connections``) are found open by
    the requests that use them, so they count as reused."""

    def __init__(self, *, on_connect: Callable[[], None], **options: Any) -> None:
        super().__init__(**options)
        self._on_connect = on_connect

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        protocol = await super()._create_connection(req, traces, timeout)
        if not OPENING_AHEAD.get():
            self._on_connect()
        return protocol


class LeanAiohttpTransport(AiohttpTransport):
    """``AiohttpTransport`` for small answers: an httpx.Request in, an httpx.Response out with
    its body already read (so the connection goes back to the pool at once)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._timeout: tuple[dict[str, Any] | None, aiohttp.ClientTimeout] = (None, aiohttp.ClientTimeout())
        #: What ClientSession._request passes to the connection's protocol, read once.
        self._response_params: dict[str, Any] = {}
        #: ``post``'s targets by the identity of the caller's httpx.URL (held in the target, so
        #: that its id is not reused): str() and a parse again cost ~10 us a send.
        self._post_targets: dict[int, PostTarget] = {}

    def _aiohttp_timeout(self, timeout: dict[str, Any]) -> aiohttp.ClientTimeout:
        if self._timeout[0] is not timeout:
            self._timeout = (timeout, aiohttp.ClientTimeout(
                sock_connect=timeout.get("connect"), sock_read=timeout.get("read"),
                connect=timeout.get("pool"),
            ))
        return self._timeout[1]

    def _session(self) -> aiohttp.ClientSession:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = session = self.get_client()
            self._response_params = {
                "read_bufsize": session._read_bufsize,
                "max_line_size": session._max_line_size,
                "max_field_size": session._max_field_size,
                "max_headers": session._max_headers,
            }
        return self.client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed body: httpx-aiohttp's general path
            return await super().handle_async_request(request)
        if self.proxy is not None:
            return await super().handle_async_request(request)
        try:
            status, headers, content = await self._exchange(
                request.method, URL(str(request.url), encoded=True),
                [(name.decode(), value.decode()) for name, value in request.headers.raw],
                body, self._aiohttp_timeout(request.extensions.get("timeout", {})),
                request.extensions.get("sni_hostname"),
            )
        except Exception:
            with map_aiohttp_exceptions():
                raise
        # A stream over the bytes, not ``content=``: that runs them through httpx's decoders.
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def post(
        self, url: httpx.URL, headers: Sequence[tuple[str, str]], body: bytes,
        timeout: dict[str, Any],
    ) -> tuple[int, bytes]:
        """The send hot path: ``body`` POSTed to ``url``, (status, answer) back, without an
        httpx Request and Response around them (their headers, URL copy and streams cost
        ~25 us a send). Raises what ``handle_async_request`` raises. ``url``, ``headers`` and
        ``timeout`` should be the same objects from send to send: each is converted once."""
        target = self._target(url, headers)
        try:
            if self.proxy is None:
                return await self._post_direct(target, body, self._aiohttp_timeout(timeout))
            status, _headers, content = await self._exchange(
                "POST", target.aiohttp_url, headers, body, self._aiohttp_timeout(timeout))
        except Exception:
            with map_aiohttp_exceptions():
                raise
        return status, content

    async def open_connections(
        self, url: httpx.URL, headers: Sequence[tuple[str, str]], count: int, within: float,
    ) -> int:
        """Open up to ``count`` connections to ``url``'s host at once (idle ones already in the
        pool count), leave them idle in the pool and say how many it holds ready. Those not
        open within ``within`` seconds are given up; errors are not raised: a send will meet
        them. Nothing is sent on them."""
        connector = self._session().connector
        if self.proxy is not None or connector is None or count <= 0:
            return 0
        target = self._target(url, headers)
        timeout = aiohttp.ClientTimeout(sock_connect=within)
        token = OPENING_AHEAD.set(True)
        try:
            tasks = [asyncio.ensure_future(connector.connect(target.request, traces=[], timeout=timeout))
                     for _ in range(min(count, connector.limit or count))]
        finally:
            OPENING_AHEAD.reset(token)
        _done, pending = await asyncio.wait(tasks, timeout=within)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ready = [task.result() for task in tasks if not task.cancelled() and task.exception() is None]
        for connection in ready:
            connection.release()
        return len(ready)

    def _target(self, url: httpx.URL, headers: Sequence[tuple[str, str]]) -> PostTarget:
        target = self._post_targets.get(id(url))
        if target is None or target.headers is not headers:
            if len(self._post_targets) >= MAX_POST_URLS:
                self._post_targets.clear()
            target = self._post_targets[id(url)] = self._post_target(url, headers)
        return target

    def _post_target(self, url: httpx.URL, headers: Sequence[tuple[str, str]]) -> PostTarget:
        """What every POST to ``url`` with ``headers`` shares: aiohttp's request as the pool's
        key (built once, never sent) and the request's head as aiohttp would write it."""
        session = self._session()
        aiohttp_url = URL(str(url), encoded=True)
        request = session._request_class(
            "POST", aiohttp_url, headers=headers, data=b"", loop=session._loop,
            response_class=session._response_class, timer=_NO_TIMER, session=session,
        )
        fields = [(name, value) for name, value in request.headers.items()
                  if name.lower() not in _PER_BODY_HEADERS]
        if any(char in field for pair in fields for field in pair for char in "\r\n"):
            raise ValueError("a header of the send request holds a line break")
        head = "".join(f"{name}: {value}\r\n" for name, value in fields)
        return PostTarget(
            url=url, headers=headers, aiohttp_url=aiohttp_url, request=request,
            head=f"POST {aiohttp_url.raw_path_qs} HTTP/1.1\r\n{head}Content-Length: ".encode("latin-1"),
        )

    async def _post_direct(
        self, target: PostTarget, body: bytes, timeout: aiohttp.ClientTimeout
    ) -> tuple[int, bytes]:
        """One POST on a pooled connection of aiohttp's connector, written as one buffer and its
        answer read from the connection's own parser: what ``_exchange`` does, without a
        ``ClientRequest``, ``StreamWriter`` and ``ClientResponse`` per send (~35 us of CPU).
        The same timeouts (connect, pool, socket read) and the same aiohttp errors; never
        retried, as a POST the API may have taken must not be."""
        connector = self._session().connector
        assert connector is not None
        try:
            connection = await connector.connect(target.request, traces=[], timeout=timeout)
        except TimeoutError as error:
            raise ConnectionTimeoutError(f"Connection timeout to host {target.aiohttp_url}") from error
        protocol = connection.protocol
        assert protocol is not None
        try:
            protocol.set_response_params(
                timer=_NO_TIMER, read_until_eof=True, auto_decompress=False,
                read_timeout=timeout.sock_read,
                timeout_ceil_threshold=connector._timeout_ceil_threshold, **self._response_params,
            )
            socket_transport = protocol.transport
            if socket_transport is None or socket_transport.is_closing():
                raise ClientConnectionResetError("Cannot write to closing transport")
            on_written = ON_WRITTEN.get()
            if on_written is not None:
                on_written(time.monotonic())
            socket_transport.write(b"%b%d\r\n\r\n%b" % (target.head, len(body), body))
            protocol.start_timeout()
            status, payload = await self._read_head(protocol, target)
            # Mostly whole already: the ~150-byte answer comes in the head's packet.
            content = payload.read_nowait() if payload.is_eof() else await payload.read()
        except BaseException:
            connection.close()
            raise
        connection.release()
        return status, content

    @staticmethod
    async def _read_head(protocol: ResponseHandler, target: PostTarget) -> tuple[int, StreamReader]:
        """The answer's status and body stream, past any 1xx, as ``ClientResponse.start``."""
        while True:
            try:
                message, payload = await protocol.read()
            except HttpProcessingError as error:
                raise aiohttp.ClientResponseError(
                    target.request.request_info, (), status=error.code, message=error.message,
                    headers=error.headers,
                ) from error
            if not 100 <= message.code <= 199 or message.code == 101:
                return message.code, payload

    async def _exchange(
        self, method: str, url: URL, headers: Iterable[tuple[str, str]], body: bytes,
        timeout: aiohttp.ClientTimeout, server_hostname: str | None = None,
    ) -> tuple[int, Any, bytes]:
        """One request on a pooled connection, its answer read whole: (status, raw headers,
        body). Raises aiohttp's errors as ``ClientSession.request`` would, and like it tries
        an idempotent request once more when a kept-alive connection turns out closed (never
        a POST: the API may have taken it)."""
        session = self._session()
        if session.closed:
            raise RuntimeError("Session is closed")
        retry = method in IDEMPOTENT_METHODS
        while True:
            request = session._request_class(
                method, url, headers=headers, data=body or None, loop=session._loop,
                response_class=session._response_class, timer=_NO_TIMER, session=session,
                server_hostname=server_hostname,
            )
            try:
                response = await self._send(request, timeout)
            except (ConnectionTimeoutError, aiohttp.ClientConnectorError):
                raise
            except (ClientOSError, aiohttp.ServerDisconnectedError):
                if not retry:
                    raise
                retry = False
                continue
            except aiohttp.ClientError:
                raise
            except OSError as error:
                if error.errno is None and isinstance(error, TimeoutError):
                    raise
                raise ClientOSError(*error.args) from error
            try:
                content = await response.read()
            finally:
                response.release()
            return response.status, response.raw_headers, content

    async def _send(
        self, request: aiohttp.ClientRequest, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """Take a connection, send ``request`` on it and read the answer's head."""
        connector = self._session().connector
        assert connector is not None
        try:
            connection = await connector.connect(request, traces=[], timeout=timeout)
        except TimeoutError as error:
            raise ConnectionTimeoutError(f"Connection timeout to host {request.url}") from error
        protocol = connection.protocol
        assert protocol is not None
        protocol.set_response_params(
            timer=_NO_TIMER, skip_payload=request.method in EMPTY_BODY_METHODS,
            read_until_eof=True, auto_decompress=False, read_timeout=timeout.sock_read,
            timeout_ceil_threshold=connector._timeout_ceil_threshold, **self._response_params,
        )
        try:
            response = await request.send(connection)
            try:
                await response.start(connection)
            except BaseException:
                response.close()
                raise
        except BaseException:
            connection.close()
            raise
        return response


#: Headers of aiohttp's request that depend on the body: ``_post_direct`` writes its own.
_PER_BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})
#: No total timeout (httpx has none): aiohttp's own stand-in for the timer it would not start.
_NO_TIMER = TimerNoop()
