"""Open the UI on the FakeBackend, for driving it in tmux: `python -m tests.tui_demo`.

``--shutdown-marker PATH`` writes PATH when the backend is shut down (the SIGHUP test reads it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.tui_fakes import CONTACTS, FakeBackend
from watui.eventloop import use_fast_event_loop
from watui.tui.app import WatuiApp


class MarkedFakeBackend(FakeBackend):
    """Leaves a file behind when shut down, so another process can tell a clean exit."""

    marker: Path | None = None

    async def shutdown(self) -> None:
        await super().shutdown()
        if self.marker is not None:
            self.marker.write_text("shut down cleanly\n", encoding="utf-8")


def main() -> int:
    use_fast_event_loop()  # as `watui` itself does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retry-rows", type=int, default=240)
    parser.add_argument("--shutdown-marker", type=Path)
    args = parser.parse_args()
    sample = FakeBackend.sample(retry_rows=args.retry_rows)
    backend = MarkedFakeBackend(list(sample.campaigns.values()))
    backend.marker = args.shutdown_marker
    app = WatuiApp(backend, clock=lambda: backend.now, start_dir=CONTACTS.parent)
    return app.run() or 0


if __name__ == "__main__":
    raise SystemExit(main())
