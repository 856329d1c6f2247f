"""Open the UI on the FakeBackend: `python -m tests.tui_demo` (for driving it in tmux)."""

from __future__ import annotations

import sys

from tests.tui_fakes import CONTACTS, FakeBackend
from watui.tui.app import WatuiApp

if __name__ == "__main__":
    backend = FakeBackend.sample(retry_rows=int(sys.argv[1]) if len(sys.argv) > 1 else 240)
    WatuiApp(backend, clock=lambda: backend.now, start_dir=CONTACTS.parent).run()
