"""HTTP benchmarks: the mock's throughput on one core, and the client's CPU per transport.

    python -m bench.http_bench            # full run (about a minute)
    python -m bench.http_bench --quick    # fewer requests, same shape

The mock runs in its own process (`watui mock-api`, uvloop when installed) with no latency and
no limits; its CPU is read from /proc, so "req/s per mock core" does not depend on how busy the
load generator is.
Client figures are CPU ms of this process per 1,000 requests and req/s, at in-flight windows of
4, 64 and 256, for the aiohttp transport (httpx-aiohttp) and httpx's native pool, side by side.
Single runs on a shared 2-core machine: read them as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from watui.eventloop import use_fast_event_loop
from watui.mockapi.process import MockProcess
from watui.settings import HttpSettings, WhatsAppSettings
from watui.whatsapp.client import WhatsAppClient
from watui.whatsapp.payload import build_template_message

TOKEN = "bench-token"
WINDOWS = (4, 64, 256)
MOCK_TARGET = 3_000.0


@dataclass
class ClientFigure:
    transport: str
    window: int
    cpu_ms_per_1000: float
    req_per_s: float
    reuse: float


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload(index: int) -> dict[str, Any]:
    return build_template_message(
        f"+1555{index:07d}", "order_update", "en_US", {"body": ["Ana", "A-1009"]}, None
    )


async def drive(count: int, window: int, send: Any) -> None:
    """``count`` sends through ``window`` workers."""
    next_index = iter(range(count))

    async def worker() -> None:
        for index in next_index:
            await send(payload(index))

    await asyncio.gather(*(worker() for _ in range(window)))


async def mock_throughput(mock: MockProcess, count: int) -> tuple[float, float]:
    """(req/s seen by a raw aiohttp load generator, req/s per core of the mock's own CPU)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{mock.base_url}/v23.0/1000001/messages"
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def send(body: dict[str, Any]) -> None:
            async with session.post(url, json=body) as answer:
                await answer.read()
                assert answer.status == 200, answer.status

        await drive(500, 64, send)  # warm up connections and caches
        cpu_before, started = process_cpu_seconds(mock.pid), time.perf_counter()
        await drive(count, 64, send)
        wall = time.perf_counter() - started
        cpu = process_cpu_seconds(mock.pid) - cpu_before
    return count / wall, count / max(cpu, 1e-9)


async def client_figure(base_url: str, transport: str, window: int, count: int) -> ClientFigure:
    whatsapp = WhatsAppSettings(access_token=TOKEN, phone_number_id="1000001", waba_id="2",
                                api_base_url=base_url)
    http = HttpSettings(transport=transport, max_connections=window,
                        max_keepalive_connections=window)
    async with WhatsAppClient(whatsapp, http) as client:
        await drive(min(count, 300), window, client.send)  # open the pool first
        warm = client.connection_stats()
        cpu_before, started = time.process_time(), time.perf_counter()
        await drive(count, window, client.send)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        stats = client.connection_stats()
    new_connections = stats.new_connections - warm.new_connections
    reuse = 1 - new_connections / (stats.requests - warm.requests)
    return ClientFigure(transport, window, cpu * 1e6 / count, count / wall, reuse)


def print_mock(seen: float, per_core: float) -> None:
    print("Mock Cloud API (own process, uvloop, latency 0, limits off)")
    print(f"  {'req/s seen by the load generator':<40} {seen:>10,.0f}")
    verdict = "ok" if per_core >= MOCK_TARGET else "BELOW TARGET"
    print(f"  {'req/s per core of mock CPU':<40} {per_core:>10,.0f}  (target >= 3,000: {verdict})")


def print_clients(figures: list[ClientFigure]) -> None:
    print("\nWhatsAppClient.send, CPU of the client process (mock in its own process)")
    print(f"  {'window':>6} | {'aiohttp ms/1k':>13} {'req/s':>7} | {'httpx ms/1k':>11} "
          f"{'req/s':>7} | {'CPU httpx/aiohttp':>17} {'req/s aiohttp/httpx':>19} | min reuse")
    by_key = {(f.transport, f.window): f for f in figures}
    for window in WINDOWS:
        fast, native = by_key[("aiohttp", window)], by_key[("httpx", window)]
        print(f"  {window:>6} | {fast.cpu_ms_per_1000:>13,.0f} {fast.req_per_s:>7,.0f} | "
              f"{native.cpu_ms_per_1000:>11,.0f} {native.req_per_s:>7,.0f} | "
              f"{native.cpu_ms_per_1000 / fast.cpu_ms_per_1000:>17.2f} "
              f"{fast.req_per_s / native.req_per_s:>19.2f} | "
              f"{min(fast.reuse, native.reuse):.3f}")


async def main_async(args: argparse.Namespace) -> None:
    mock = MockProcess(["--token", TOKEN, "--latency", "0,0", "--rate-limit", "1e9",
                        "--no-pair-limit"])
    await mock.start()
    try:
        seen, per_core = await mock_throughput(mock, args.mock_requests)
        figures = [
            await client_figure(mock.base_url, transport, window, args.client_requests)
            for window in WINDOWS
            for transport in ("aiohttp", "httpx")
        ]
    finally:
        await mock.stop()
    print_mock(seen, per_core)
    print_clients(figures)


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args()
    args.mock_requests = 5_000 if args.quick else 20_000
    args.client_requests = 1_000 if args.quick else 4_000
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
