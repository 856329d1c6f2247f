"""Webhook ingest benchmark: signed status POSTs offered at a fixed rate to `watui webhook`.

    python -m bench.webhook_bench            # SQLite and PostgreSQL, 20 s per run
    python -m bench.webhook_bench --quick    # 6 s per run, same shape
    python -m bench.webhook_bench --sqlite-only
    python -m bench.webhook_bench --quick --shape single --before /tmp/before   # A/B, alternated

The receiver runs in its own process (`watui webhook`, as in production) so that its CPU is
measured alone; this process offers the POSTs on a fixed schedule (open loop: a slow answer
does not slow the offer) from requests built and signed beforehand, and an answer's latency
counts from when its POST was due. Two shapes of traffic, both at 3,000 statuses/s (three per
message at 1,000 msg/s): POSTs of mixed sizes (1 to 100 statuses, ~12 on average) and the
worst case, one status per POST (3,000 POSTs/s). A status counts once it is in the database
(counted after the run). Figures are single runs on a shared machine: read them with the load
average printed below the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import func, select

from bench.engine_bench import Row, print_table
from watui.eventloop import use_fast_event_loop
from watui.storage.database import Database
from watui.storage.schema import delivery_events

APP_SECRET = "bench-app-secret"
TARGET_RATE = 3_000.0  # statuses/s
TARGET_P99_MS = 250.0
#: Keep-alive connections (Meta posts concurrently): answers wait for a commit (~20-40 ms), so
#: 3,000 POSTs/s need about 100 in flight (Little's law).
CONNECTIONS = 200
#: POST sizes (statuses) and their weights for the mixed shape: mean ~12.
MIXED_SIZES = ((1, 50), (5, 25), (25, 20), (100, 5))
#: Seconds the answers may take after the last request was offered before the run gives up.
ANSWER_TIMEOUT = 120.0
#: The source tree the receiver runs from unless another is given (``--before``).
SOURCE = Path(__file__).resolve().parent.parent


class ReceiverProcess:
    """`watui webhook` in a child process on a free loopback port, importing watui from
    ``source`` (a source tree: this one, or an older one to compare with)."""

    def __init__(self, database_url: str, source: Path = SOURCE) -> None:
        self.port = _free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
        env.update(WATUI_DATABASE_URL=database_url, WATUI_WHATSAPP__APP_SECRET=APP_SECRET,
                   PYTHONPATH=str(source))  # fmt: skip
        self._process = subprocess.Popen(
            [sys.executable, "-m", "watui", "webhook", "--port", str(self.port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def wait_listening(self) -> None:
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode()
        if not line.startswith("listening on"):
            _, stderr = self._process.communicate(timeout=60)
            raise RuntimeError(f"the receiver did not start: {line}{stderr.decode()}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        self._process.terminate()
        _, stderr = self._process.communicate(timeout=60)
        return stderr.decode().strip().splitlines()[-1] if stderr.strip() else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def signed_requests(sizes: list[int], run: str, port: int) -> list[tuple[bytes, int]]:
    """One Meta-shaped POST per size (each status of its own message), signed like Meta does,
    as the bytes of an HTTP/1.1 request; with its number of statuses."""
    requests: list[tuple[bytes, int]] = []
    serial = 0
    for size in sizes:
        statuses = []
        for _ in range(size):
            statuses.append({
                "id": f"wamid.HBgLMzQ2MDAwMDAwMDEVAgARGBI{run}{serial:09d}", "status": "delivered",
                "timestamp": str(int(time.time())), "recipient_id": f"3460{serial:07d}",
                "biz_opaque_callback_data": f"r:{serial}",
                "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing",
                            "type": "regular"},
            })  # fmt: skip
            serial += 1
        raw = orjson.dumps({"object": "whatsapp_business_account", "entry": [{
            "id": "419561257915477", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1065403"},
                "statuses": statuses}}]}]})  # fmt: skip
        signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        head = (f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
                f"\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {len(raw)}\r\n\r\n")
        requests.append((head.encode() + raw, size))
    return requests


def post_sizes(shape: str, statuses: int, seed: int) -> list[int]:
    if shape == "single":
        return [1] * statuses
    rng = random.Random(seed)
    choices, weights = zip(*MIXED_SIZES, strict=True)
    sizes: list[int] = []
    while sum(sizes) < statuses:
        sizes.append(rng.choices(choices, weights)[0])
    return sizes


@dataclass
class Offered:
    latencies: list[float]  # from when each request was due to its answer
    failures: int  # answers other than 200
    offer_seconds: float  # until the last request was handed to a connection
    seconds: float  # until the last answer
    cpu_seconds: float  # this process's CPU while offering: the load generator's cost


async def offer(port: int, requests: list[tuple[bytes, int]], rate: float) -> Offered:
    """Send each request when its statuses are due at ``rate`` over CONNECTIONS keep-alive
    connections.

    A bare HTTP/1.1 client on asyncio streams (requests serialised beforehand): aiohttp's
    client cost ~0.4 ms a POST, so at 3,000 POSTs/s on these two shared cores it, not the
    receiver, set the pace (1,100 POSTs/s with the receiver at 0.2 core). This one takes
    0.07-0.15 core at 3,000 POSTs/s (so did a callback-per-connection protocol client)."""
    due: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    failures = 0

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await due.get()) is not None:
            request, due_at = item
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - due_at)
            failures += not head.startswith(b"HTTP/1.1 200 ")
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    cpu_before = time.process_time()
    start = time.perf_counter()
    at = 0.0
    for request, statuses in requests:
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((request, start + at))
        at += statuses / rate
    offer_seconds = time.perf_counter() - start
    for _ in workers:
        due.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), ANSWER_TIMEOUT)
    seconds = time.perf_counter() - start
    return Offered(latencies, failures, offer_seconds, seconds, time.process_time() - cpu_before)


def percentile_ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def scenario(
    database_url: str, label: str, shape: str, seconds: float, *, source: Path = SOURCE, tag: str = ""
) -> list[Row]:
    before = await stored_statuses(database_url)  # also creates the schema before the clock
    receiver = ReceiverProcess(database_url, source)
    sizes = post_sizes(shape, int(TARGET_RATE * seconds), seed=7)
    statuses = sum(sizes)
    run_id = f"{label[:2]}{shape[:2]}{tag[:2]}{before}"  # unique: each run adds rows
    requests = signed_requests(sizes, run_id, receiver.port)
    try:
        await asyncio.to_thread(receiver.wait_listening)
        cpu_before = receiver.cpu_seconds()
        offered = await offer(receiver.port, requests, TARGET_RATE)
        cores = (receiver.cpu_seconds() - cpu_before) / offered.seconds
    finally:
        summary = receiver.stop()
    stored = await stored_statuses(database_url) - before
    rate = stored / offered.seconds
    p50, p99 = percentile_ms(offered.latencies, 0.50), percentile_ms(offered.latencies, 0.99)
    name = f"{shape} ({len(requests)} POSTs){' ' + tag if tag else ''}"
    print(f"  {label} {shape} {tag}: {summary}", file=sys.stderr)
    return [
        Row(name, label, "statuses offered per second", statuses / offered.offer_seconds,
            f"{TARGET_RATE:,.0f}", None),
        Row(name, label, "statuses stored / offered", stored / statuses, "1.000", stored == statuses),
        Row(name, label, "statuses ingested per second", rate, f">= {TARGET_RATE:,.0f}",
            rate >= TARGET_RATE * 0.98),
        Row(name, label, "ack latency p50 (ms)", p50, "", None),
        Row(name, label, "ack latency p99 (ms)", p99, f"<= {TARGET_P99_MS:.0f}", p99 <= TARGET_P99_MS),
        Row(name, label, "non-200 answers", offered.failures, "0", offered.failures == 0),
        Row(name, label, "receiver CPU (cores)", cores, "", None),
        Row(name, label, "receiver CPU per POST (ms)", cores * 1000 / (len(requests) / offered.seconds),
            "", None),
        Row(name, label, "load generator CPU (cores)", offered.cpu_seconds / offered.seconds, "", None),
    ]  # fmt: skip


async def stored_statuses(database_url: str) -> int:
    async with Database(database_url) as db, db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(delivery_events))).scalar_one())


@contextlib.contextmanager
def bench_databases(prefix: str, *, sqlite_only: bool) -> Iterator[list[tuple[str, str]]]:
    """(label, URL) of a fresh SQLite file and, unless ``sqlite_only``, of a throwaway
    PostgreSQL server's database (the tests' own), stopped afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    databases = [("sqlite", f"sqlite+aiosqlite:///{workdir / 'bench.db'}")]
    server = None
    if not sqlite_only:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.pgserver import PostgresServer

        server = PostgresServer().start()
        databases.append(("postgres", server.new_database()))
    try:
        yield databases
    finally:
        if server is not None:
            server.cleanup()


async def main_async(args: argparse.Namespace) -> None:
    seconds = 6.0 if args.quick else 20.0
    shapes = [args.shape] if args.shape else ["mixed", "single"]
    rows: list[Row] = []
    load_before = os.getloadavg()[0]
    with bench_databases("watui-webhook-bench-", sqlite_only=args.sqlite_only) as databases:
        for label, url in databases:
            for shape in shapes:
                for _ in range(args.rounds):
                    if args.before is not None:  # the older code first, then this, seconds apart
                        rows += await scenario(url, label, shape, seconds, source=args.before,
                                               tag="before")  # fmt: skip
                    rows += await scenario(url, label, shape, seconds,
                                           tag="after" if args.before is not None else "")  # fmt: skip
    print_table(rows)
    print(f"machine: {os.cpu_count()} cores, load average (1 min) {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="6 s per run instead of 20 s")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--shape", choices=["mixed", "single"], help="only this shape of traffic")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each scenario (default 1)")
    parser.add_argument(
        "--before", type=Path, metavar="SOURCE_TREE",
        help="also run the receiver from this source tree (e.g. `git archive 2a564db | tar -x -C "
             "/tmp/before`), alternated with this one, each scenario before then after",
    )  # fmt: skip
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
