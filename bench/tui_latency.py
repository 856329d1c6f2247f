"""UI cost on the FakeBackend: key-to-screen latency, one monitor refresh, CPU at 4 Hz.

    python -m bench.tui_latency

These are the UI's own costs; the issue's target (p95 <= 100 ms key-to-screen, <= 0.2 core,
while sending 1,000 msg/s) is measured on the real engine by ``python -m bench.tui_live``.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from textual.widgets import Static

from tests.tui_fakes import FakeBackend, make_app
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.widgets.chart import ThroughputChart

KEY_PRESSES = 40
REFRESHES = 100
CPU_SECONDS = 8.0


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


def main() -> None:
    figures = asyncio.run(measure())
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  value")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:8.3f}")


if __name__ == "__main__":
    main()
