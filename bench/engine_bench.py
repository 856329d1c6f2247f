"""Engine benchmarks against the mock API on loopback, printed as one table of figures and ratios.

    python -m bench.engine_bench            # everything (several minutes)
    python -m bench.engine_bench --quick    # smaller runs, same shape

The mock runs in its own process so its CPU is not counted as the engine's. Targets are those of
../shared/docs/benchmarks.md; figures are single runs on a shared machine (the unthrottled ratio
is the median of three alternating rounds): read them as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.old_algorithm import run_old_algorithm
from watui.demo_data import write_demo_contacts
from watui.engine.sender import CampaignSender
from watui.eventloop import use_fast_event_loop
from watui.settings import Settings
from watui.storage import creation
from watui.storage.contacts import ContactsSource
from watui.storage.database import Database
from watui.whatsapp.client import WhatsAppClient

TOKEN = "bench-token"
PHONE_ID = "1000001"


@dataclass
class Row:
    scenario: str
    database: str
    figure: str
    value: float
    target: str
    ok: bool | None


class MockProcess:
    """`watui mock-api` in a child process, with a given rate limit and latency."""

    def __init__(
        self, *, rate_limit: float, latency: tuple[float, float], port: int,
        extra: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._args = [
            sys.executable, "-m", "watui", "mock-api", "--port", str(port),
            "--rate-limit", str(rate_limit), "--latency", f"{latency[0]},{latency[1]}",
            "--token", TOKEN, "--no-pair-limit", *extra,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MockProcess:
        self._process = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base_url}/_mock/stats", timeout=0.5)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the mock API did not start")

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/_mock/stats", timeout=5).json()

    def arrivals(self) -> list[float]:
        """When each accepted message arrived at the API, in order."""
        return sorted(e["at"] for e in httpx.get(f"{self.base_url}/_mock/ledger", timeout=30).json())

    def arrival_span_rate(self) -> float:
        """Accepted messages per second between the first and the last arrival at the API."""
        return span_rate(self.arrivals())

    def __exit__(self, *_exc: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(10)


def span_rate(times: list[float]) -> float:
    """Events per second between the first and the last of ``times`` (sorted)."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(database_url: str, base_url: str, *, rate: float, max_connections: int,
                 transport: str = "aiohttp", max_in_flight: int | None = None) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": PHONE_ID, "waba_id": "2000002",
                  "api_base_url": base_url},
        send={"rate": rate, "max_in_flight": max_in_flight},
        http={"transport": transport, "max_connections": max_connections,
              "max_keepalive_connections": max_connections, "timeout": 10},
        safety={"max_failure_rate": 1.0},
    )


async def make_campaign(settings: Settings, workdir: Path, contacts: int, name: str) -> int:
    csv_path = write_demo_contacts(workdir / f"{name}.csv", contacts)
    async with Database(settings.database_url) as db:
        created = await creation.create_campaign(
            db, name,
            [creation.NewStep("order_update", "en_US",
                                     ContactsSource(csv_path, body_params=("first_name", "order")))],
        )
    return created.campaign_id


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(run: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = await run()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


async def paced_scenario(database_url: str, db_label: str, workdir: Path, *, rate: float,
                         contacts: int, label: str) -> list[Row]:
    port = _free_port()
    with MockProcess(rate_limit=rate, latency=(0.1, 0.3), port=port) as mock:
        settings = settings_for(database_url, mock.base_url, rate=rate,
                                max_connections=max(100, int(rate * 0.5)))
        campaign_id = await make_campaign(settings, workdir, contacts, f"{label}-{db_label}")
        async with Database(database_url) as db:
            async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                sender = CampaignSender(db, client, settings, campaign_id)
                releases = record_releases(sender)
                wall, cpu, _ = await timed(sender.run)
        stats = mock.stats()
        achieved = mock.arrival_span_rate()
    accepted = stats.get("accepted", 0)
    throttled = stats.get("errors", {}).get("130429", 0)
    ratio_target = 0.99 if rate <= 80 else 0.98
    wall_target = contacts / rate + 2  # the issue: 10,000 at 80/s within 127 s
    rows = [
        Row(label, db_label, "accepted", accepted, f"= {contacts}", accepted == contacts),
        Row(label, db_label, "wall s", wall, f"<= {wall_target:.0f}", wall <= wall_target),
        Row(label, db_label, "achieved/allowed (at the API)", achieved / rate, f">= {ratio_target}",
            achieved / rate >= ratio_target),
        Row(label, db_label, "accepted / wall / allowed", accepted / wall / rate, "", None),
        Row(label, db_label, "most sends released in any 1 s", most_in_one_second(releases),
            f"<= {rate:g}", most_in_one_second(releases) <= rate),
        Row(label, db_label, "130429 answers", throttled, "= 0", throttled == 0),
        # The budget: 0.3 core per 1,000 msg/s, database writes included.
        Row(label, db_label, "engine CPU s per 1,000 msg", cpu / accepted * 1000, "<= 0.3 at 1,000/s",
            cpu / accepted * 1000 <= 0.3 if rate >= 1000 else None),
        Row(label, db_label, "engine cores", cpu / wall, "", None),
    ]
    return rows


def record_releases(sender: CampaignSender) -> list[float]:
    """When the engine's pacer released each send: our side of the one-second window, apart
    from the jitter between our send and the mock's clock (which 130429 answers also count).
    Told by the pacer itself: a wrapper around ``wait`` cost a coroutine a send, ~4% of the
    engine's CPU that the figure below would have charged to the engine."""
    releases: list[float] = []
    sender.pacer.on_release = releases.append
    return releases


def most_in_one_second(times: list[float]) -> int:
    """The most of ``times`` inside any closed one-second window."""
    import bisect

    return max((bisect.bisect_right(times, start + 1.0) - index for index, start in enumerate(times)),
               default=0)


async def old_vs_new(database_url: str, db_label: str, workdir: Path, *, contacts: int) -> list[Row]:
    port = _free_port()
    with MockProcess(rate_limit=80, latency=(0.1, 0.3), port=port) as mock:
        settings = settings_for(database_url, mock.base_url, rate=80, max_connections=100)
        old_id = await make_campaign(settings, workdir, contacts, f"old-{db_label}")
        new_id = await make_campaign(settings, workdir, contacts, f"new-{db_label}")
        async with Database(database_url) as db:
            async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                old_wall, _, old_sent = await timed(lambda: run_old_algorithm(db, client, old_id))
                sender = CampaignSender(db, client, settings, new_id)
                new_wall, _, _ = await timed(sender.run)
    old_rate, new_rate = old_sent / old_wall, contacts / new_wall
    return [
        Row("old chunk-of-10 @80", db_label, "msg/s", old_rate, "~26", None),
        Row("watui @80", db_label, "msg/s", new_rate, "", None),
        Row("watui / old", db_label, "ratio", new_rate / old_rate, ">= 3", new_rate / old_rate >= 3),
    ]


async def unthrottled(database_url: str, db_label: str, workdir: Path, *, contacts: int,
                      window: int = 64, rounds: int = 3) -> list[Row]:
    """The engine against a bare loop, in alternating rounds: each ratio compares two runs a
    few seconds apart, and the median of the rounds is what a noisy neighbour moves least."""
    port = _free_port()
    engine_rates: list[float] = []
    bare_rates: list[float] = []
    with MockProcess(rate_limit=1_000_000, latency=(0.0, 0.001), port=port) as mock:
        # The same HTTP concurrency for both: a pool of `window` connections. The engine's own
        # window (claim to flushed outcome) is sized by Little's law as in production.
        settings = settings_for(database_url, mock.base_url, rate=100_000, max_connections=window)
        for round_no in range(rounds):
            campaign_id = await make_campaign(settings, workdir, contacts, f"fast-{db_label}-{round_no}")
            async with Database(database_url) as db:
                await settle(db)
                async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                    sender = CampaignSender(db, client, settings, campaign_id)
                    engine_wall, _, _ = await timed(sender.run)
            async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                bare_wall, _, _ = await timed(lambda: bare_loop(client, contacts, window))
            engine_rates.append(contacts / engine_wall)
            bare_rates.append(contacts / bare_wall)
        aiohttp_wall, _, _ = await timed(lambda: bare_aiohttp(mock.base_url, contacts, window))
    ratios = sorted(engine / bare for engine, bare in zip(engine_rates, bare_rates, strict=True))
    ratio = statistics.median(ratios)
    return [
        Row("unthrottled", db_label, "engine msg/s (median)", statistics.median(engine_rates), "", None),
        Row("unthrottled", db_label, "bare httpx+aiohttp loop req/s", statistics.median(bare_rates),
            "", None),
        Row("unthrottled", db_label, f"engine / bare loop ({rounds} rounds)", ratio, ">= 0.75",
            ratio >= 0.75),
        Row("unthrottled", db_label, "lowest round's ratio", ratios[0], "", None),
        Row("unthrottled", db_label, "highest round's ratio", ratios[-1], "", None),
        Row("unthrottled", db_label, "bare aiohttp (floor) req/s", contacts / aiohttp_wall, "", None),
    ]


async def settle(db: Database) -> None:
    """On PostgreSQL, vacuum what the earlier scenarios left (tens of thousands of updated
    rows), so that autovacuum does not start on these two cores in the middle of a run of a
    few seconds. SQLite has no background work."""
    if db.dialect == "postgresql":
        async with db.single_statement() as conn:  # autocommit: VACUUM refuses a transaction
            await conn.exec_driver_sql("VACUUM ANALYZE")


def _payload(index: int) -> dict[str, Any]:
    from watui.whatsapp.payload import build_template_message

    return build_template_message(f"+1201555{index % 10_000:04d}", "order_update", "en_US",
                                  {"body": ["Ana", f"A-{index}"]}, None)


async def bare_loop(client: WhatsAppClient, count: int, window: int) -> None:
    """The same client and transport, no database, no pacing: the ceiling for the engine."""
    counter = iter(range(count))

    async def worker() -> None:
        for index in counter:
            await client.send(_payload(index))

    await asyncio.gather(*(worker() for _ in range(window)))


async def bare_aiohttp(base_url: str, count: int, window: int) -> None:
    import aiohttp

    url = f"{base_url}/v23.0/{PHONE_ID}/messages"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    counter = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=window)) as session:
        async def worker() -> None:
            for index in counter:
                async with session.post(url, json=_payload(index), headers=headers) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(window)))


def rss_child(database_url: str, base_url: str, seconds: float) -> None:
    """Run the engine on a prepared 1M-row campaign for a while; print peak RSS in MB."""
    async def go() -> None:
        settings = settings_for(database_url, base_url, rate=1000, max_connections=400)
        async with Database(database_url) as db:
            async with WhatsAppClient(settings.whatsapp, settings.http) as client:
                sender = CampaignSender(db, client, settings, 1)
                task = asyncio.create_task(sender.run())
                await asyncio.sleep(seconds)
                sender.request_stop()
                await task
    asyncio.run(go())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


async def memory_scenario(workdir: Path, *, contacts: int) -> list[Row]:
    database_url = f"sqlite+aiosqlite:///{workdir / 'million.db'}"
    settings = settings_for(database_url, "http://127.0.0.1:1", rate=1000, max_connections=400)
    await make_campaign(settings, workdir, contacts, "million")
    port = _free_port()
    with MockProcess(rate_limit=1000, latency=(0.1, 0.3), port=port) as mock:
        output = subprocess.run(
            [sys.executable, "-m", "bench.engine_bench", "--rss-child", database_url, mock.base_url],
            capture_output=True, text=True, check=True, timeout=300,
        ).stdout
    rss = float(output.strip().splitlines()[-1])
    return [Row(f"{contacts:,}-recipient campaign", "sqlite", "engine peak RSS MB", rss, "<= 250",
                rss <= 250)]


def print_table(rows: list[Row]) -> None:
    print(f"{'scenario':<28} {'db':<9} {'figure':<32} {'value':>12}  {'target':<18} result")
    for row in rows:
        verdict = "" if row.ok is None else ("PASS" if row.ok else "FAIL")
        print(f"{row.scenario:<28} {row.database:<9} {row.figure:<32} {row.value:>12,.3f}  "
              f"{row.target:<18} {verdict}")


async def main_async(args: argparse.Namespace) -> None:
    quick = args.quick
    workdir = Path(tempfile.mkdtemp(prefix="watui-bench-"))
    databases: list[tuple[str, str, Callable[[], None]]] = []
    sqlite_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    databases.append(("sqlite", sqlite_url, lambda: None))
    server = None
    if not args.sqlite_only:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.pgserver import PostgresServer

        server = PostgresServer().start()
        databases.append(("postgres", server.new_database(), lambda: None))
    rows: list[Row] = []
    try:
        for label, url, _ in databases:
            rows += await paced_scenario(url, label, workdir, rate=80,
                                         contacts=800 if quick else 10_000, label="rate 80")
            rows += await paced_scenario(url, label, workdir, rate=1000,
                                         contacts=5_000 if quick else 20_000, label="rate 1,000")
            rows += await old_vs_new(url, label, workdir, contacts=300 if quick else 1_500)
            rows += await unthrottled(url, label, workdir, contacts=5_000 if quick else 20_000)
        rows += await memory_scenario(workdir, contacts=100_000 if quick else 1_000_000)
    finally:
        if server is not None:
            server.cleanup()
    print_table(rows)


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    if len(sys.argv) == 4 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], sys.argv[3], seconds=15)
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sqlite-only", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
