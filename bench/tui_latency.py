"""UI cost on the FakeBackend: key-to-screen latency, one monitor refresh, CPU at 4 Hz.

    python -m bench.tui_latency

These are the UI's own costs; the issue's target (p95 <= 100 ms key-to-screen, <= 0.2 core,
while sending 1,000 msg/s) is measured on the real engine by ``python -m bench.tui_live``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import statistics
import time
from collections.abc import Callable, Iterator

from textual.widgets import Footer, Static

from tests.tui_fakes import FakeBackend, make_app
from watui.eventloop import use_fast_event_loop
from watui.tui.app import WatuiApp
from watui.tui.screens.help import HelpScreen
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.widgets.chart import ThroughputChart
from watui.tui.widgets.modals import PromptModal

KEY_PRESSES = 40
REFRESHES = 100
CPU_SECONDS = 8.0
VARIANT_ROUNDS = 6
KEYS_PER_ROUND = 5
SCREEN_MODULES = ("campaigns", "help", "monitor", "retry_queue", "settings", "setup")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def measure() -> dict[str, float]:
    backend = FakeBackend.sample(retry_rows=100_000)
    app = make_app(backend, refresh_interval=0.25)
    figures: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(MonitorScreen("spring-sale"))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MonitorScreen)

        refresh_ms = []
        for _ in range(REFRESHES):
            start = time.perf_counter()
            await screen.refresh_data()
            refresh_ms.append((time.perf_counter() - start) * 1000)
        figures["monitor refresh, median ms"] = statistics.median(refresh_ms)
        figures["monitor refresh, p95 ms"] = p95(refresh_ms)

        chart = screen.query_one(ThroughputChart)
        chart_ms = []
        for _ in range(REFRESHES):
            start = time.perf_counter()
            chart.render()
            chart_ms.append((time.perf_counter() - start) * 1000)
        figures[f"chart draw {chart.size.width}x{chart.size.height}, median ms"] = (
            statistics.median(chart_ms)
        )

        status_line = screen.query_one("#status-line", Static)
        latencies = []
        for _ in range(KEY_PRESSES):
            before = str(status_line.content)
            start = time.perf_counter()
            app.simulate_key("space")
            while str(status_line.content) == before and time.perf_counter() - start < 2:
                await asyncio.sleep(0.0005)
            latencies.append((time.perf_counter() - start) * 1000)
        figures["key to screen (pause/resume), median ms"] = statistics.median(latencies)
        figures["key to screen (pause/resume), p95 ms"] = p95(latencies)

        cpu_start, wall_start = time.process_time(), time.perf_counter()
        await asyncio.sleep(CPU_SECONDS)
        figures["CPU with the monitor open at 4 Hz, cores"] = (time.process_time() - cpu_start) / (
            time.perf_counter() - wall_start
        )
    return figures


@contextlib.contextmanager
def textual_footer() -> Iterator[None]:
    """Every screen built with Textual's Footer instead of our KeyBar (the "before")."""
    modules = [importlib.import_module(f"watui.tui.screens.{name}") for name in SCREEN_MODULES]
    saved = [module.KeyBar for module in modules]
    for module in modules:
        module.KeyBar = Footer
    try:
        yield
    finally:
        for module, key_bar in zip(modules, saved, strict=True):
            module.KeyBar = key_bar


async def key_to_frame(app: WatuiApp, key: str, shown: Callable[[], bool]) -> float:
    """Milliseconds from the key to the first frame drawn once ``shown()`` holds."""
    start = time.perf_counter()
    app.simulate_key(key)
    while not shown():
        if time.perf_counter() - start > 5:
            raise RuntimeError(f"key {key!r} had no effect within 5 s")
        await asyncio.sleep(0.0005)
    drawn = asyncio.Event()
    app.call_after_refresh(drawn.set)
    await drawn.wait()
    return (time.perf_counter() - start) * 1000


async def variant_keys(rounds: int) -> dict[str, list[float]]:
    """Open/close the rate dialog and help over the monitor, before and after, interleaved
    round by round so both see the same load on a shared machine."""
    variants: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
        "before (Textual Footer)": textual_footer,
        "after (KeyBar)": contextlib.nullcontext,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, patch in variants.items():
            with patch():
                times[name] += await _open_close_keys()
    return times


async def _open_close_keys() -> list[float]:
    app = make_app(FakeBackend.sample(), refresh_interval=0.25)
    times: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(MonitorScreen("spring-sale"))
        await pilot.pause()
        for _ in range(KEYS_PER_ROUND):
            times.append(await key_to_frame(app, "r", lambda: isinstance(app.screen, PromptModal)))
            times.append(
                await key_to_frame(app, "escape", lambda: isinstance(app.screen, MonitorScreen)))
            times.append(await key_to_frame(
                app, "question_mark", lambda: isinstance(app.screen, HelpScreen)))
            times.append(await key_to_frame(app, "q", lambda: isinstance(app.screen, MonitorScreen)))
            await asyncio.sleep(0.05)
    return times


def compare_variants() -> dict[str, float]:
    figures: dict[str, float] = {}
    for name, times in asyncio.run(variant_keys(VARIANT_ROUNDS)).items():
        figures[f"{name}: r/esc/?/q key to frame, median ms"] = statistics.median(times)
        figures[f"{name}: r/esc/?/q key to frame, p95 ms"] = p95(times)
    return figures


def main() -> None:
    use_fast_event_loop()  # as `watui` itself does
    figures = compare_variants()
    figures.update(asyncio.run(measure()))
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  value")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:8.3f}")


if __name__ == "__main__":
    main()
