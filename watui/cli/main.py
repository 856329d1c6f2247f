"""Entry point: parse arguments, load settings, dispatch, and turn every failure into one line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from watui import __version__
from watui.cli.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNEXPECTED, CliError
from watui.errors import ReceiverError, WatuiError
from watui.eventloop import use_fast_event_loop
from watui.settings import Settings, SettingsError, load_settings
from watui.storage import StorageError

T = TypeVar("T")

#: Each command module exposes ``register(subparsers)``; they are imported lazily so that
#: ``watui --help`` stays fast and a broken optional part cannot break the others.
COMMAND_MODULES = (
    "watui.cli.campaign",
    "watui.cli.status",
    "watui.cli.report",
    "watui.cli.export",
    "watui.cli.templates",
    "watui.cli.numbers",
    "watui.cli.run",
    "watui.cli.mock",
    "watui.cli.webhook",
    "watui.cli.demo",
    "watui.cli.suppress",
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line that says what to fix, with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"watui: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="watui",
        description="Send WhatsApp Cloud API template campaigns at exactly the allowed rate. "
        "With no command, opens the terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"watui {__version__}")
    parser.add_argument("--config", metavar="PATH", help="settings file (default: ./watui.toml)")
    parser.add_argument("--database-url", metavar="URL", help="overrides database_url")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=ArgumentParser
    )
    import importlib

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def settings_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    """Settings with the command line's overrides on top (highest precedence)."""
    overrides: dict[str, Any] = dict(extra or {})
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return load_settings(overrides, config_file=args.config)


def main(argv: Sequence[str] | None = None) -> int:
    use_fast_event_loop()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        handler = _open_tui
    try:
        return handler(args)
    except CliError as error:
        print(f"watui: error: {error}", file=sys.stderr)
        return error.exit_code
    except (SettingsError, StorageError, ReceiverError) as error:
        print(f"watui: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("watui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``watui campaign list | head``): not an error worth a line.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if os.environ.get("WATUI_DEBUG"):
            raise
        print(
            f"watui: unexpected error: {type(error).__name__}: {error} "
            "(set WATUI_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED


def _open_tui(args: argparse.Namespace) -> int:
    """``watui`` with no command: the terminal UI over the live backend of these settings."""
    try:
        from watui.tui.app import WatuiApp
    except ModuleNotFoundError as error:
        raise CliError(
            "the terminal UI is not available in this build; see 'watui --help'"
        ) from error
    from watui.receiver import require_app_secret
    from watui.service.open import open_live_backend

    settings = settings_from_args(args)
    if settings.webhook.enabled:
        require_app_secret(settings.whatsapp.app_secret)  # one line before the UI opens
    backend = run_async(open_live_backend(settings))

    async def start_receiver(app: WatuiApp) -> None:
        try:
            await backend.start_receiver()
        except WatuiError as error:  # the port is taken: the UI works on without webhooks
            app.notify(str(error), severity="error", timeout=30)

    return WatuiApp(backend, startup=start_receiver if settings.webhook.enabled else None).run_to_exit_code()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on a fresh loop (uvloop where it exists: see watui.eventloop)."""
    return asyncio.run(coro)


if __name__ == "__main__":
    sys.exit(main())
