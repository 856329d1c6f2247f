"""Closing the terminal (SIGHUP) must stop watui as cleanly as ctrl+q: the backend's shutdown
runs before the process exits. Runs the real app in a child process on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_shuts_the_backend_down_before_exit(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown"
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.tui_demo", "--shutdown-marker", str(marker)],
        cwd=REPO,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        drawn = _read_until(controller, b"spring-sale", time.monotonic() + 20)
        assert b"spring-sale" in drawn, "the app never drew its campaigns table"
        child.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:
            _read_until(controller, b"\x00never", time.monotonic() + 0.1)  # keep the pty drained
        assert child.poll() is not None, "the app did not exit on SIGHUP"
        assert marker.read_text(encoding="utf-8") == "shut down cleanly\n"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(controller)
