"""Whether the way to the Cloud API is open again, learnt without sending anything: a plain TCP
connect to the API base URL's host and port, closed at once.

While the sender's circuit breaker is open because requests could not even connect (network
down, DNS, a firewall, the API's port closed), this tells within a fraction of a second that
the next request would connect, so the breaker's probe (a real send) need not wait out its
growing schedule. No HTTP request and no TLS handshake: an open port is the news, and whether
the API is well is for the probe to say. Nothing reaches Meta's application to be counted.

watui's client never goes through a proxy (aiohttp's session ignores the proxy variables of the
environment, and httpx uses none with a transport of its caller's), so connecting straight to
the host is the very way the sends take. Were a proxy ever added, this check would have to
connect to it instead, or be left out (``OutageGuard`` then keeps the probe schedule alone).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

#: Seconds a check may take, name lookup and connect together.
CHECK_TIMEOUT = 1.0

#: host, port -> getaddrinfo's entries (``loop.getaddrinfo``, or a fake in tests).
Lookup = Callable[[str, int], Awaitable[list[tuple[Any, ...]]]]


class ApiReachability:
    """``await can_connect()``: whether a TCP connection to the API opens now."""

    def __init__(
        self, api_base_url: str, *, timeout: float = CHECK_TIMEOUT, lookup: Lookup | None = None
    ) -> None:
        url = httpx.URL(api_base_url)
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self._timeout = timeout
        self._lookup = lookup or _system_lookup
        #: The name lookup under way. One at a time: a lookup runs in one of the loop's executor
        #: threads and cannot be cancelled, so while DNS hangs, checks wait for the same one
        #: instead of filling the executor that aiohttp's own lookups need.
        self._looking_up: asyncio.Task[list[tuple[Any, ...]]] | None = None

    def __repr__(self) -> str:
        return f"ApiReachability({self.host}:{self.port})"

    async def can_connect(self) -> bool:
        """Connect and close at once; False when no address connects within the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        addresses = await self._addresses(self._timeout)
        for family, _type, _proto, _name, address in addresses:
            left = deadline - loop.time()
            if left <= 0:
                return False
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setblocking(False)
                try:
                    await asyncio.wait_for(loop.sock_connect(sock, address), left)
                except (OSError, TimeoutError):
                    continue  # this address does not answer (IPv6 without a route, ...)
                return True
        return False

    async def _addresses(self, timeout: float) -> list[tuple[Any, ...]]:
        """The host's addresses, or none while the lookup fails or has not answered in time."""
        if self._looking_up is None:
            self._looking_up = asyncio.ensure_future(self._lookup(self.host, self.port))
            self._looking_up.add_done_callback(_retrieved)  # no warning if it is left behind
        lookup = self._looking_up
        done, _pending = await asyncio.wait({lookup}, timeout=timeout)
        if not done:
            return []
        self._looking_up = None
        try:
            return lookup.result()
        except (OSError, UnicodeError):  # socket.gaierror: no such name, or DNS is down
            return []


def _retrieved(task: asyncio.Future[list[tuple[Any, ...]]]) -> None:
    if not task.cancelled():
        task.exception()


async def _system_lookup(host: str, port: int) -> list[tuple[Any, ...]]:
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
