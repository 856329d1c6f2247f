"""``watui mock-api``: run the fake Cloud API on a loopback port until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
from collections.abc import Callable
from typing import Any

from watui.cli.errors import CliError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mock-api", help="run the built-in fake Cloud API (for trials and tests)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 picks a free one)")
    parser.add_argument("--rate-limit", type=float, default=80.0, help="messages/s per number (default 80)")
    parser.add_argument("--latency", default="0.10,0.25", help="MIN,MAX answer latency in seconds")
    parser.add_argument("--token", default="mock-token", help="the access token it accepts")
    parser.add_argument("--no-pair-limit", action="store_true", help="turn the 131056 pair limit off")
    parser.add_argument("--transient-rate", type=float, default=0.0, help="share answered 131000")
    parser.add_argument("--permanent-rate", type=float, default=0.0, help="share answered 131026")
    parser.add_argument("--http500-rate", type=float, default=0.0, help="share answered HTTP 500")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share accepted, then reset")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share answered after 60 s")
    parser.add_argument("--fail-suffix", action="append", default=[], metavar="DIGITS=CODE",
                        help="numbers ending in DIGITS get error CODE (repeatable)")
    parser.add_argument("--spam-after", type=int, help="answer 131048 after this many accepted")
    parser.add_argument("--refuse-status", type=int, metavar="STATUS",
                        help="answer every send with this bare HTTP status (a gateway refusing, "
                             "e.g. 503); change it while running with POST /_mock/config")
    parser.add_argument("--number-fault", action="append", default=[], metavar="ID=CODE",
                        help="every message from phone_number_id ID gets error CODE, e.g. "
                             "1000002=131048 (repeatable)")
    parser.add_argument("--webhook-url", help="POST signed webhooks here, as Meta does (signed with "
                        f"${APP_SECRET_VARIABLE}, default {DEFAULT_APP_SECRET!r})")
    parser.add_argument("--webhook-delivered-delay", default="0.5,3", metavar="MIN,MAX",
                        help="seconds from acceptance to 'delivered' (default 0.5,3)")
    parser.add_argument("--webhook-read-share", type=float, default=0.6,
                        help="share of delivered messages also 'read' (default 0.6)")
    parser.add_argument("--webhook-read-delay", default="2,20", metavar="MIN,MAX",
                        help="seconds from 'delivered' to 'read' (default 2,20)")
    parser.add_argument("--webhook-failure", action="append", default=[], metavar="CODE=SHARE",
                        help="share of accepted messages that fail later with CODE, e.g. "
                             "131026=0.02 (repeatable)")
    parser.add_argument("--webhook-duplicate-share", type=float, default=0.0,
                        help="share of updates posted twice (default 0)")
    parser.add_argument("--webhook-late-share", type=float, default=0.0,
                        help="share of POSTs held back and sent late (default 0)")
    parser.add_argument("--webhook-give-up", type=float, default=120.0, metavar="SECONDS",
                        help="stop retrying a refused POST after this long, counting it dropped "
                             "(default 120)")
    parser.add_argument("--number", action="append", default=[], metavar="ID[:LEVEL]",
                        help="a phone number GET .../phone_numbers lists (throughput LEVEL "
                        "STANDARD or HIGH; POST /_mock/numbers changes it while it runs)")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable runs")
    parser.set_defaults(handler=_mock_api)


#: The mock signs webhooks with this variable's value: a secret is never an option (ps shows those).
APP_SECRET_VARIABLE = "WATUI_MOCK_APP_SECRET"
DEFAULT_APP_SECRET = "mock-app-secret"


def _seconds(option: str, text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"{option} {text!r}: give MIN,MAX in seconds, e.g. 0.1,0.25") from None
    if not 0 <= low <= high:
        raise CliError(f"{option}: MIN must be at least 0 and at most MAX")
    return low, high


def _webhooks(args: argparse.Namespace) -> dict[str, Any]:
    """The MockConfig webhook fields the options set."""
    failures: dict[int, float] = {}
    for item in args.webhook_failure:
        code, _, share = item.partition("=")
        try:
            failures[int(code)] = _share("--webhook-failure", float(share))
        except ValueError:
            raise CliError(f"--webhook-failure {item!r}: give CODE=SHARE, e.g. 131026=0.02") from None
    if sum(failures.values()) > 1:
        raise CliError("--webhook-failure: the shares add up to more than 1")
    if args.webhook_url and not args.webhook_url.startswith(("http://", "https://")):
        raise CliError(f"--webhook-url {args.webhook_url!r}: give an http:// or https:// URL")
    if args.webhook_give_up <= 0:
        raise CliError("--webhook-give-up must be above 0 seconds")
    return {
        "webhook_url": args.webhook_url,
        "app_secret": os.environ.get(APP_SECRET_VARIABLE) or DEFAULT_APP_SECRET,
        "webhook_delivered_delay": _seconds("--webhook-delivered-delay", args.webhook_delivered_delay),
        "webhook_read_share": _share("--webhook-read-share", args.webhook_read_share),
        "webhook_read_delay": _seconds("--webhook-read-delay", args.webhook_read_delay),
        "webhook_failures": failures,
        "webhook_duplicate_share": _share("--webhook-duplicate-share", args.webhook_duplicate_share),
        "webhook_late_share": _share("--webhook-late-share", args.webhook_late_share),
        "webhook_give_up_s": args.webhook_give_up,
    }


def _share(option: str, share: float) -> float:
    if not 0 <= share <= 1:
        raise CliError(f"{option} must be between 0 and 1")
    return share


def _fail_suffixes(items: list[str]) -> dict[str, int]:
    return _codes_by_key("--fail-suffix", items, "DIGITS=CODE, e.g. 13=131026")


def _codes_by_key(option: str, items: list[str], form: str) -> dict[str, int]:
    """``KEY=CODE`` items, both digits, as {KEY: CODE}."""
    codes: dict[str, int] = {}
    for item in items:
        key, _, code = item.partition("=")
        if not key.isdigit() or not code.isdigit():
            raise CliError(f"{option} {item!r}: give {form}")
        codes[key] = int(code)
    return codes


def _refuse_status(status: int | None) -> int | None:
    if status is not None and not 400 <= status <= 599:
        raise CliError("--refuse-status must be an HTTP error status, 400-599 (e.g. 503)")
    return status


def _rates(args: argparse.Namespace) -> dict[str, Any]:
    names = ("transient_rate", "permanent_rate", "http500_rate", "reset_rate", "slow_rate")
    rates = {name: getattr(args, name) for name in names}
    for name, rate in rates.items():
        _share(f"--{name.replace('_', '-')}", rate)
    return rates


def _numbers(items: list[str]) -> list[dict[str, str]]:
    """``--number 106540352242922:HIGH`` as the body of a POST /_mock/numbers."""
    numbers = []
    for item in items:
        number, _, level = item.partition(":")
        if not number.isdigit() or level not in ("", "STANDARD", "HIGH"):
            raise CliError(f"--number {item!r}: give ID[:LEVEL], the ID in digits and LEVEL "
                           "STANDARD or HIGH, e.g. --number 106540352242922:HIGH")
        numbers.append({"id": number, "throughput": level or "STANDARD"})
    return numbers


def _mock_api(args: argparse.Namespace) -> int:
    from watui.mockapi.server import MockConfig

    if not 0 <= args.port <= 65535:
        raise CliError("--port must be between 0 and 65535")
    config = MockConfig(
        access_token=args.token, rate_limit=args.rate_limit,
        latency=_seconds("--latency", args.latency),
        pair_limit_seconds=0 if args.no_pair_limit else 6.0, spam_after=args.spam_after,
        refuse_status=_refuse_status(args.refuse_status),
        fail_suffixes=_fail_suffixes(args.fail_suffix), seed=args.seed, **_rates(args),
        number_faults=_codes_by_key(
            "--number-fault", args.number_fault, "ID=CODE, e.g. 1000002=131048"),
        **_webhooks(args),
    )
    # The limiter counts a request when its bytes arrive, and a collector pause (up to 16 ms)
    # stamps the requests that came meanwhile late, as a burst: rare 130429s that no sender
    # caused. Serving makes no reference cycles (after 20,000 requests a collection found no
    # unreachable object), so the mock collects only when idle (collect_while_idle).
    numbers = _numbers(args.number)
    gc.freeze()
    gc.disable()
    asyncio.run(_serve(config, args.host, args.port, numbers))
    return 0


async def _serve(config: Any, host: str, port: int, numbers: list[dict[str, str]]) -> None:
    from watui.mockapi.server import MockCloudApi

    mock = MockCloudApi(config)
    for number in numbers:
        mock.numbers.change(number)
    try:
        base_url = await mock.start(host, port)
    except OSError as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    print(f"mock Cloud API on {base_url} (token {config.access_token!r}); Ctrl-C stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    collector = asyncio.create_task(collect_while_idle(lambda: mock.counters["requests"]))
    await stop.wait()
    collector.cancel()
    await mock.stop()


async def collect_while_idle(requests_so_far: Callable[[], int], quiet: float = 1.0) -> None:
    """Collect cyclic garbage (an error's traceback, say) once no request came for ``quiet``
    seconds, and freeze what survives so that the next collection does not walk it again."""
    seen = -1
    while True:
        await asyncio.sleep(quiet)
        requests = requests_so_far()
        if requests == seen and gc.get_count()[0] > gc.get_threshold()[0]:
            gc.collect()
            gc.freeze()
        seen = requests
