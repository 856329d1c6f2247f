"""``watui mock-api``: run the fake Cloud API on a loopback port until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
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
    parser.add_argument("--spam-after", type=int, help="answer 131048 after this many accepted")
    parser.set_defaults(handler=_mock_api)


def _latency(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--latency {text!r}: give MIN,MAX in seconds, e.g. 0.1,0.25") from None
    if not 0 <= low <= high:
        raise CliError("--latency: MIN must be at least 0 and at most MAX")
    return low, high


def _mock_api(args: argparse.Namespace) -> int:
    from watui.mockapi.server import MockConfig

    if not 0 <= args.port <= 65535:
        raise CliError("--port must be between 0 and 65535")
    config = MockConfig(
        access_token=args.token, rate_limit=args.rate_limit, latency=_latency(args.latency),
        pair_limit_seconds=0 if args.no_pair_limit else 6.0, transient_rate=args.transient_rate,
        permanent_rate=args.permanent_rate, spam_after=args.spam_after,
    )
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(config, args.host, args.port))
    return 0


async def _serve(config: Any, host: str, port: int) -> None:
    from watui.mockapi.server import MockCloudApi

    mock = MockCloudApi(config)
    try:
        base_url = await mock.start(host, port)
    except OSError as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    print(f"mock Cloud API on {base_url} (token {config.access_token!r}); Ctrl-C stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await mock.stop()
