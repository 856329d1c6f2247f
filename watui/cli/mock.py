"""``watui mock-api``: run the fake Cloud API until Ctrl-C (for demos and trying things out)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from watui.cli.errors import EXIT_OK, CliError
from watui.mockapi.config import FAILURE_CLASSES, MockConfig
from watui.mockapi.process import install_uvloop, serve_forever


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mock-api", help="run a fake WhatsApp Cloud API locally")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rate-limit", type=float, default=80.0, help="msg/s per number; 0: off")
    parser.add_argument("--pair-limit", type=float, default=6.0, help="seconds; 0: off")
    parser.add_argument("--latency", default="0.10,0.25", metavar="MIN,MAX", help="seconds")
    parser.add_argument("--token", default="mock-token", help="the access token it accepts")
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="CLASS=RATE",
        help=f"inject failures, CLASS one of {', '.join(FAILURE_CLASSES)}",
    )
    parser.add_argument("--spam-after", type=int, metavar="N", help="131048 from message N on")
    parser.add_argument("--webhook-url", help="POST signed status updates here")
    parser.add_argument("--seed", type=int)
    parser.set_defaults(handler=_run)


def config_from_args(args: argparse.Namespace) -> MockConfig:
    try:
        low, high = (float(part) for part in args.latency.split(","))
    except ValueError:
        raise CliError(
            f"--latency {args.latency!r}: give MIN,MAX in seconds, e.g. 0.1,0.25"
        ) from None
    rates: dict[str, float] = {}
    for item in args.fail:
        name, _, rate = item.partition("=")
        try:
            rates[name] = float(rate)
        except ValueError:
            raise CliError(f"--fail {item!r}: give CLASS=RATE, e.g. transient=0.05") from None
    try:
        return MockConfig(
            access_token=args.token,
            rate_limit=args.rate_limit,
            pair_limit_seconds=args.pair_limit,
            latency_min=low,
            latency_max=high,
            failure_rates=rates,
            spam_after=args.spam_after,
            webhook_url=args.webhook_url,
            seed=args.seed,
        )
    except ValueError as error:
        raise CliError(str(error)) from None


def _run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    install_uvloop()
    print(f"mock Cloud API on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        asyncio.run(serve_forever(config, args.host, args.port, None))
    except OSError as error:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    return EXIT_OK
