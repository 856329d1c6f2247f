"""Run the mock in its own process, so benchmarks measure the client and not the mock's CPU."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from watui.mockapi.server import MockCloudApi, MockConfig

STARTUP_TIMEOUT = 20.0


def install_uvloop() -> bool:
    """Use uvloop for new event loops when it is installed; True when it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve_forever(config: MockConfig, host: str, port: int, ready: Connection | None) -> None:
    mock = MockCloudApi(config)
    base_url = await mock.start(host, port)
    if ready is not None:
        ready.send(base_url)
        ready.close()
    try:
        await asyncio.Event().wait()
    finally:
        await mock.stop()


def _child(config: MockConfig, host: str, port: int, ready: Connection) -> None:
    install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config, host, port, ready))


@dataclass
class MockProcess:
    """A mock running in a child process (its pid lets a benchmark read the mock's CPU time)."""

    base_url: str
    process: BaseProcess

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def start_mock_process(config: MockConfig, host: str = "127.0.0.1", port: int = 0) -> MockProcess:
    """Start the mock (uvloop when installed) in a child process and wait until it listens."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=_child, args=(config, host, port, sender), daemon=True
    )
    process.start()
    sender.close()
    if not receiver.poll(STARTUP_TIMEOUT):
        process.kill()
        raise RuntimeError("the mock Cloud API did not start in time")
    return MockProcess(receiver.recv(), process)


def run_mock_in_subprocess(
    config: MockConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, Callable[[], None]]:
    """Start the mock in a child process; returns its base URL and a function that stops it."""
    mock = start_mock_process(config, host, port)
    return mock.base_url, mock.stop
