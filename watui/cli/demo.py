"""``watui demo``: the whole product against the built-in mock Cloud API, nothing to configure.

A fresh SQLite file in a temp dir, the mock API on a loopback port in this process, the sample
templates synced, and a 5,000-contact campaign already sending at 80 msg/s with a few injected
failures, so retries, the graph and the retry queue have something to show.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watui.cli.errors import CliError
from watui.cli.mock import DEFAULT_APP_SECRET

if TYPE_CHECKING:
    from watui.service.live import LiveBackend

DEMO_TOKEN = "demo-token"  # the mock's token: not a secret, never valid on the real API
DEMO_PHONE_ID = "106540352242922"
DEMO_WABA_ID = "102290129340398"
DEMO_CAMPAIGN = "demo-spring-sale"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="try watui against a built-in fake of the Cloud API (no account needed)"
    )
    parser.add_argument("--contacts", type=int, default=5_000, help="sample contacts (default 5000)")
    parser.add_argument("--rate", type=float, default=80.0, help="messages/s (default 80)")
    parser.add_argument("--keep", action="store_true", help="keep the demo's temp dir afterwards")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    if not 1 <= args.contacts <= 1_000_000:
        raise CliError("--contacts must be between 1 and 1000000")
    if not 0 < args.rate <= 1000:
        raise CliError("--rate must be above 0 and at most 1000 in the demo")
    workdir = Path(tempfile.mkdtemp(prefix="watui-demo-"))
    try:
        return run_demo(workdir, contacts=args.contacts, rate=args.rate, keep=args.keep)
    finally:
        if args.keep:
            print(f"demo files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def demo_settings(workdir: Path, base_url: str = "http://127.0.0.1:1") -> Any:
    from pydantic import SecretStr

    from watui.settings import Settings
    from watui.settings.model import RetrySettings, WebhookSettings, WhatsAppSettings

    return Settings(
        database_url=f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        whatsapp=WhatsAppSettings(access_token=SecretStr(DEMO_TOKEN), phone_number_id=DEMO_PHONE_ID,
                                  waba_id=DEMO_WABA_ID, api_base_url=base_url,
                                  app_secret=SecretStr(DEFAULT_APP_SECRET)),
        retry=RetrySettings(max_retries=2, delays=[5, 10]),
        # The receiver on a free loopback port: the mock posts its status webhooks there.
        webhook=WebhookSettings(enabled=True, port=0),
    )


def demo_mock_args(rate: float) -> list[str]:
    """The demo's weather: mostly fine, with a sprinkle of every kind of trouble."""
    return [
        "--token", DEMO_TOKEN, "--rate-limit", str(max(rate, 80)), "--latency", "0.10,0.25",
        "--number", f"{DEMO_PHONE_ID}:{'HIGH' if rate > 80 else 'STANDARD'}",
        "--transient-rate", "0.02",  # 131000: retried, then sent
        "--permanent-rate", "0.01",  # 131026: not on WhatsApp
        "--http500-rate", "0.005",
        "--seed", "2026",
    ]


def run_demo(workdir: Path, *, contacts: int, rate: float, keep: bool = False) -> int:
    from watui.mockapi.process import MockProcess
    from watui.service.open import open_live_backend
    from watui.tui.app import WatuiApp

    backend = asyncio.run(open_live_backend(demo_settings(workdir)))
    mocks: list[MockProcess] = []

    async def startup(app: WatuiApp) -> None:
        """In the app's event loop: the webhook receiver, the mock API posting its status
        webhooks to it (and whose port the client then uses), the campaign, its monitor, and
        then the sending."""
        receiver_url = await backend.start_receiver()
        mock = MockProcess([*demo_mock_args(rate), "--webhook-url", str(receiver_url)])
        mocks.append(mock)
        backend.settings = demo_settings(workdir, await mock.start())
        await prepare_demo_campaign(backend, workdir, contacts=contacts, rate=rate)
        await app.open_monitor(DEMO_CAMPAIGN)
        await asyncio.sleep(0.3)  # let the first frames render before the sending starts
        await backend.start(DEMO_CAMPAIGN)

    async def cleanup() -> None:
        for mock in mocks:
            await mock.stop()
        if not keep:  # also on a hangup, which leaves without returning here
            shutil.rmtree(workdir, ignore_errors=True)

    return WatuiApp(backend, startup=startup, cleanup=cleanup).run_to_exit_code()


async def prepare_demo_campaign(backend: LiveBackend, workdir: Path, *, contacts: int, rate: float) -> None:
    """Sync the mock's templates, write the contacts, create the campaign and start it."""
    from watui.demo_data import write_demo_contacts
    from watui.service.models import CampaignSpec, StepSpec
    from watui.storage import templates as template_store

    await template_store.sync_templates(backend.db, backend.client)
    csv_path = write_demo_contacts(workdir / "contacts.csv", contacts, bad_every=250)
    spec = CampaignSpec(
        name=DEMO_CAMPAIGN,
        steps=(StepSpec("order_update", "en_US", str(csv_path), body_params=("first_name", "order"),
                        header_param="photo"),),
        rate=rate,
        start_now=False,
    )
    await backend.create_campaign(spec)
