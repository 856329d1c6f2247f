"""The rate at the API when the engine's event loop stalls, with the pacer repaying missed slots
and without (its plain catch-up, as before), alternated.

    python -m bench.stall_bench                     # 20 ms stalls at 4 Hz, 1,000 msg/s, 3 rounds
    python -m bench.stall_bench --stall-ms 30 --rounds 5
    python -m bench.stall_bench --stall-ms 500 --period 3   # a long stall now and then
    python -m bench.stall_bench --pacer-only        # the pacer alone in a real loop, 10 s a run

A stall is a callback that blocks the loop (``time.sleep``), as a redraw of the live monitor
(10-30 ms at 4 Hz) or the webhook receiver's work does. The real engine sends to the mock in its
own process (SQLite, latency 0.1-0.3 s, rate limit exactly the rate: the judge). Figures per
variant, medians over the rounds: achieved/allowed at the API, 130429 answers (summed), the most
arrivals at the API in any one second. ``--pacer-only`` leaves out the engine, the database and
the mock (the releases are counted where they happen): a light run that a loaded machine
disturbs less, for the pacer's own share of the loss. "repay off" sets REPAY_BOOST to 0, which is the pacer as
it was before the repayment (catch-up of MAX_CATCH_UP slots only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.engine_bench import (
    MockProcess,
    Row,
    _free_port,
    make_campaign,
    most_in_one_second,
    print_table,
    settings_for,
    span_rate,
    timed,
)
from watui.engine import pacer as pacer_module
from watui.engine.sender import CampaignSender
from watui.eventloop import use_fast_event_loop
from watui.storage.database import Database
from watui.whatsapp.client import WhatsAppClient


@contextlib.contextmanager
def stalls(period: float, length: float) -> Iterator[None]:
    """Block the running loop for ``length`` seconds every ``period`` seconds."""
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None

    def stall() -> None:
        nonlocal handle
        time.sleep(length)
        handle = loop.call_later(period, stall)

    handle = loop.call_later(period, stall)
    try:
        yield
    finally:
        handle.cancel()


async def one_run(rate: float, contacts: int, args: argparse.Namespace, name: str) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="watui-stall-bench-"))
    database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    with MockProcess(rate_limit=rate, latency=(0.1, 0.3), port=_free_port()) as mock:
        settings = settings_for(database_url, mock.base_url, rate=rate, max_connections=500)
        campaign_id = await make_campaign(settings, workdir, contacts, name)
        async with Database(database_url) as db, WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(db, client, settings, campaign_id)
            with stalls(args.period, args.stall_ms / 1000):
                wall, cpu, _ = await timed(sender.run)
        ledger = httpx.get(f"{mock.base_url}/_mock/ledger", timeout=30).json()
        arrivals = sorted(entry["at"] for entry in ledger)
        throttled = mock.stats().get("errors", {}).get("130429", 0)
    return {"ratio": span_rate(arrivals) / rate, "130429": throttled,
            "most": most_in_one_second(arrivals), "cores": cpu / wall}


async def pacer_run(rate: float, seconds: float, args: argparse.Namespace) -> dict[str, float]:
    """The pacer alone in the real loop: releases per second against the rate."""
    pacer = pacer_module.Pacer(rate)
    releases: list[float] = []
    with stalls(args.period, args.stall_ms / 1000):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            number = await pacer.wait()
            releases.append(time.monotonic())
            pacer.written(number, releases[-1])
    span = releases[-1] - releases[0]
    return {"ratio": (len(releases) - 1) / span / rate, "130429": 0,
            "most": most_in_one_second(releases), "cores": 0.0}


async def main_async(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    boost = pacer_module.REPAY_BOOST
    runs: dict[str, list[dict[str, float]]] = {"repay on": [], "repay off": []}
    for round_number in range(args.rounds):
        for variant in runs:  # alternated, so that a neighbour's load hits both alike
            pacer_module.REPAY_BOOST = boost if variant == "repay on" else 0.0
            name = f"{variant.replace(' ', '-')}-{round_number}"
            if args.pacer_only:
                runs[variant].append(await pacer_run(args.rate, args.contacts / args.rate, args))
            else:
                runs[variant].append(await one_run(args.rate, args.contacts, args, name))
    pacer_module.REPAY_BOOST = boost
    label = f"{args.rate:g}/s, {args.stall_ms:g} ms every {args.period:g} s"
    if args.pacer_only:
        label = f"pacer only, {args.stall_ms:g} ms/{args.period:g} s"
    rows: list[Row] = []
    for variant, results in runs.items():
        ratio = statistics.median(result["ratio"] for result in results)
        throttled = sum(result["130429"] for result in results)
        most = max(result["most"] for result in results)
        cores = statistics.median(result["cores"] for result in results)
        where = "released" if args.pacer_only else "at the API"
        rows.append(Row(label, variant, f"achieved/allowed ({where})", ratio, ">= 0.98", ratio >= 0.98))
        if not args.pacer_only:
            rows.append(Row(label, variant, "130429 answers (all rounds)", throttled, "= 0", throttled == 0))
        rows.append(Row(label, variant, f"most {where} in any 1 s", most, f"<= {args.rate:g}",
                        most <= args.rate))
        if not args.pacer_only:
            rows.append(Row(label, variant, "engine cores", cores, "", None))
    print_table(rows)
    print("rounds:", {variant: [round(result["ratio"], 3) for result in results]
                      for variant, results in runs.items()})
    print(f"load average: {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after")


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--contacts", type=int, default=8_000)
    parser.add_argument("--stall-ms", type=float, default=20.0)
    parser.add_argument("--period", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pacer-only", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
