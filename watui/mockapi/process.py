"""Run the mock in its own process, so benchmarks measure the client and not the mock's CPU."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection

from watui.mockapi.config import MockConfig
from watui.mockapi.server import MockCloudApi

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


def run_mock_in_subprocess(
    config: MockConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, Callable[[], None]]:
    """Start the mock in a child process; returns its base URL and a function that stops it."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=_child, args=(config, host, port, sender), daemon=True
    )
    process.start()
    sender.close()
    if not receiver.poll(STARTUP_TIMEOUT):
        process.kill()
        raise RuntimeError("the mock Cloud API did not start in time")
    base_url: str = receiver.recv()

    def stop() -> None:
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()

    return base_url, stop
