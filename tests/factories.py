"""Build campaigns directly in the database for engine tests (independent of the CSV importer),
and run the mock API for a test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import insert

from watui.mockapi.server import MockCloudApi, MockConfig
from watui.storage.database import Database
from watui.storage.schema import campaigns, recipients, steps


async def make_campaign(
    db: Database,
    name: str = "spring",
    *,
    recipients_per_step: int = 100,
    steps_count: int = 1,
    rate: float | None = None,
    first_number: int = 15550000000,
) -> int:
    """A draft campaign with ``steps_count`` steps of ``recipients_per_step`` distinct numbers."""
    now = time.time()
    total = recipients_per_step * steps_count
    async with db.engine.begin() as conn:
        campaign_id = (
            await conn.execute(
                insert(campaigns).values(
                    name=name, status="draft", rate=rate, total=total, created_at=now, updated_at=now
                ).returning(campaigns.c.id)
            )
        ).scalar_one()
        for position in range(steps_count):
            mapping = {"body": ["name"], "header": None, "header_format": None, "buttons": []}
            step_id = (
                await conn.execute(
                    insert(steps).values(
                        campaign_id=campaign_id, position=position,
                        template_name=f"template_{position}", language="en_US",
                        mapping=json.dumps(mapping), phone_column="phone", total=recipients_per_step,
                    ).returning(steps.c.id)
                )
            ).scalar_one()
            rows = [
                {
                    "campaign_id": campaign_id, "step_id": step_id, "line_no": index + 2,
                    "phone": f"+{first_number + index}", "params": json.dumps({"body": [f"N{index}"]}),
                    "status": "queued", "attempts": 0, "next_attempt_at": 0.0,
                }
                for index in range(recipients_per_step)
            ]
            if rows:  # none: the caller writes them (tests.delivery_seed, in bulk)
                await conn.execute(insert(recipients), rows)
    return campaign_id


@contextlib.asynccontextmanager
async def running_mock(**config: Any) -> AsyncIterator[MockCloudApi]:
    """The mock API on a free loopback port, with no limit of its own unless ``config`` sets one."""
    mock = MockCloudApi(MockConfig(**{"rate_limit": 10_000, "pair_limit_seconds": 0, **config}))
    await mock.start()
    try:
        yield mock
    finally:
        await mock.stop()


@contextlib.asynccontextmanager
async def serving(path: str, handler: Handler) -> AsyncIterator[str]:
    """``handler`` answering POSTs to ``path`` on a free loopback port; yields the base URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def mock_on_thread(api: MockCloudApi) -> Iterator[MockCloudApi]:
    """``api`` served on its own thread and loop, so that a synchronous caller (the CLI run
    in-process, which starts its own loop) can call it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(api.start(), loop).result(10)
    try:
        yield api
    finally:
        asyncio.run_coroutine_threadsafe(api.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def unreachable_url() -> str:
    """A loopback URL nothing listens on (a port bound, then let go): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
