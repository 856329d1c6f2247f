"""Run the mock API in its own process, as the demo and the benchmarks do.

In its own process the mock counts arrivals on its own clock and its own event loop, as the real
API would: sharing the sender's loop, it would see the loop's hiccups as bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence

READY_PREFIX = "mock Cloud API on "


class MockProcess:
    """``watui mock-api`` as a child process on a free loopback port."""

    def __init__(self, args: Sequence[str]) -> None:
        self._args = list(args)
        self._process: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self, timeout: float = 20.0) -> str:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watui", "mock-api", "--port", "0", *self._args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # a terminal hangup must not take the "remote" API down
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        text = line.decode().strip()
        if not text.startswith(READY_PREFIX):
            await self.stop()
            raise RuntimeError(f"the mock API did not start: {text or 'no output'}")
        self.base_url = text.removeprefix(READY_PREFIX).split(" ", 1)[0]
        return self.base_url

    @property
    def pid(self) -> int:
        """The child's process id (benchmarks read its CPU time from /proc)."""
        assert self._process is not None, "start() first"
        return self._process.pid

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._process.wait(), 10)
            return
        self._process.kill()
        await self._process.wait()
