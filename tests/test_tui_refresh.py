"""Which screen reads the backend on the refresh tick: only the one shown. The campaigns table
under the live monitor used to poll and re-lay-out the whole screen 4 times a second."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.tui_fakes import FakeBackend, make_app
from watui.tui.screens.campaigns import CampaignsScreen
from watui.tui.screens.monitor import MonitorScreen

pytestmark = pytest.mark.usefixtures("tui_deterministic")


def counting(backend: FakeBackend) -> Counter[str]:
    """How often the campaigns table and the monitor read the backend."""
    reads: Counter[str] = Counter()
    for name in ("list_campaigns", "metrics"):
        method = getattr(backend, name)

        async def counted(*args: Any, _method: Any = method, _name: str = name) -> Any:
            reads[_name] += 1
            return await _method(*args)

        setattr(backend, name, counted)
    return reads


async def test_only_the_screen_shown_polls_and_the_one_below_polls_again_when_shown() -> None:
    backend = FakeBackend.sample()
    reads = counting(backend)
    app = make_app(backend, refresh_interval=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(MonitorScreen("spring-sale"))
        await pilot.pause(0.1)
        reads.clear()
        await pilot.pause(0.5)
        assert reads["metrics"] >= 5  # the monitor ticks
        assert reads["list_campaigns"] == 0  # the table under it does not
        app.pop_screen()
        await pilot.pause(0.3)
        assert isinstance(app.screen, CampaignsScreen) and reads["list_campaigns"] >= 3
