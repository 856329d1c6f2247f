"""The UI while the REAL engine sends at 1,000 msg/s in the same process.

    python -m bench.tui_live [--contacts 50000] [--rate 1000]

The mock Cloud API runs in its own process (rate limit 1,000/s, latency 0.1-0.3 s); watui's
LiveBackend, engine and client run in this process with the UI (headless Textual: frames are
composed and rendered, not written to a terminal). Figures:

- key to screen: ``app.simulate_key`` to the first frame drawn after the key's effect is in the
  widget tree (``call_after_refresh``), for keys a person presses while watching the monitor:
  ``r`` (rate dialog) / ``escape``, ``?`` (help) / ``q``. Not ``pilot.press``, which waits for
  idle and over-reports under load.
- UI CPU: process CPU with the monitor open (refreshing at 4 Hz) minus the engine's own CPU per
  message, measured over a phase with a static screen, times the messages sent meanwhile. Five
  such pairs of 3 s phases alternate; the figures are their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from textual.screen import Screen
from textual.widgets import Static

from bench.tui_latency import key_to_frame, p95
from watui.demo_data import write_demo_contacts
from watui.eventloop import use_fast_event_loop
from watui.mockapi.process import MockProcess
from watui.service.live import LiveBackend
from watui.service.models import CampaignSpec, StepSpec
from watui.service.open import open_live_backend
from watui.settings import Settings
from watui.storage import templates as template_store
from watui.tui.app import WatuiApp
from watui.tui.screens.help import HelpScreen
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.widgets.modals import PromptModal
from watui.whatsapp.client import WhatsAppClient

TOKEN = "bench-token"
CAMPAIGN = "bench-1000"
KEY_PAIRS = 25
PHASE_SECONDS = 3.0
PHASE_PAIRS = 5
TARGET_P95_MS = 100.0
TARGET_UI_CORES = 0.2
REFRESH: float | None = 0.25
ALL_P95 = "sending: key to screen, all keys, p95 ms"
ALL_MEDIAN = "sending: key to screen, all keys, median ms"


class StaticScreen(Screen[None]):
    """Nothing refreshes: the engine's own CPU cost is what remains."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("engine only")


async def phase(app: WatuiApp, backend: LiveBackend, seconds: float) -> tuple[float, float]:
    """(process CPU in cores, messages accepted per second) over ``seconds``."""
    metrics = backend._metrics[CAMPAIGN]
    sent0, cpu0, wall0 = metrics.accepted_total, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall0
    return (time.process_time() - cpu0) / wall, (metrics.accepted_total - sent0) / wall


async def measure(contacts: int, rate: float) -> dict[str, tuple[float, str]]:
    workdir = Path(tempfile.mkdtemp(prefix="watui-bench-"))
    mock = MockProcess(["--token", TOKEN, "--rate-limit", str(rate), "--latency", "0.1,0.3",
                        "--no-pair-limit", "--seed", "1"])
    base_url = await mock.start()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                  "api_base_url": base_url},
        http={"max_connections": 500}, send={"rate": rate},
    )
    backend = await open_live_backend(settings, lambda: WhatsAppClient(settings.whatsapp, settings.http))
    figures: dict[str, tuple[float, str]] = {}
    try:
        await template_store.sync_templates(backend.db, backend.client)
        path = write_demo_contacts(workdir / "contacts.csv", contacts)
        await backend.create_campaign(CampaignSpec(
            CAMPAIGN, (StepSpec("order_update", "en_US", str(path), ("first_name", "order"), "photo"),),
            rate=rate,
        ))
        app = WatuiApp(backend, refresh_interval=REFRESH)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.push_screen(MonitorScreen(CAMPAIGN))
            await pilot.pause(0.5)
            idle = await keys(app)  # the UI's own cost: nothing sending yet
            figures["idle engine: key to screen, all keys, p95 ms"] = idle[ALL_P95]
            figures["idle engine: key to screen, all keys, median ms"] = idle[ALL_MEDIAN]
            await backend.start(CAMPAIGN)
            await pilot.pause(3.0)  # up to speed
            figures.update(await keys(app))
            figures["monitor refresh (1 query + draw), median ms"] = (
                await refresh_ms(app.screen), "")
            pairs = [await monitor_vs_static(app, backend) for _ in range(PHASE_PAIRS)]
            still_sending = backend.is_sending(CAMPAIGN)
        # Monitor and static phases alternate so that a neighbour's load hits both alike.
        ui_cores = statistics.median(ui for ui, *_ in pairs)
        cpu_ui, rate_ui, cpu_engine, rate_engine = (
            statistics.median(pair[i] for pair in pairs) for i in range(1, 5)
        )
        figures["UI CPU, monitor open at 4 Hz (cores)"] = (ui_cores, f"<= {TARGET_UI_CORES}")
        figures["process CPU, monitor open (cores)"] = (cpu_ui, "")
        figures["process CPU, static screen (cores)"] = (cpu_engine, "")
        figures["send rate, monitor open (msg/s)"] = (rate_ui, f"{rate:g}")
        figures["send rate, static screen (msg/s)"] = (rate_engine, f"{rate:g}")
        if not still_sending:
            print("warning: the campaign ended during the measurement; use more --contacts")
    finally:
        await backend.shutdown()
        await mock.stop()
    return figures


async def monitor_vs_static(
    app: WatuiApp, backend: LiveBackend
) -> tuple[float, float, float, float, float]:
    """(UI cores, process cores and msg/s with the monitor open, the same with a static
    screen): the UI's cost is the process CPU beyond the engine's own CPU per message."""
    cpu_ui, rate_ui = await phase(app, backend, PHASE_SECONDS)
    await app.push_screen(StaticScreen())
    cpu_engine, rate_engine = await phase(app, backend, PHASE_SECONDS)
    app.pop_screen()
    engine_per_msg = cpu_engine / rate_engine if rate_engine else 0.0
    return cpu_ui - engine_per_msg * rate_ui, cpu_ui, rate_ui, cpu_engine, rate_engine


async def refresh_ms(screen: Screen[None]) -> float:
    assert isinstance(screen, MonitorScreen)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        await screen.refresh_data()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def keys(app: WatuiApp) -> dict[str, tuple[float, str]]:
    rate_dialog: list[float] = []
    help_screen: list[float] = []
    back: list[float] = []
    for _ in range(KEY_PAIRS):
        rate_dialog.append(await key_to_frame(app, "r", lambda: isinstance(app.screen, PromptModal)))
        back.append(await key_to_frame(app, "escape", lambda: isinstance(app.screen, MonitorScreen)))
        help_screen.append(await key_to_frame(app, "question_mark",
                                              lambda: isinstance(app.screen, HelpScreen)))
        back.append(await key_to_frame(app, "q", lambda: isinstance(app.screen, MonitorScreen)))
        await asyncio.sleep(0.05)  # a person does not type at machine speed
    every = rate_dialog + help_screen + back
    target = f"<= {TARGET_P95_MS:g}"
    return {
        ALL_P95: (p95(every), target),
        ALL_MEDIAN: (statistics.median(every), ""),
        "  r (rate dialog), p95 ms": (p95(rate_dialog), target),
        "  ? (help), p95 ms": (p95(help_screen), target),
        "  escape / q (back to monitor), p95 ms": (p95(back), target),
    }


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.contacts, args.rate))
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  {'value':>9}  target")
    for name, (value, target) in figures.items():
        print(f"{name:<{width}}  {value:9.3f}  {target}")


if __name__ == "__main__":
    main()
