"""Closing the terminal (SIGHUP) must stop watui as cleanly as ctrl+q: the backend's shutdown
runs before the process exits. Runs the real app in a child process on a pseudo-terminal."""

from __future__ import annotations

import contextlib
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


def _children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


async def _database_state(url: str) -> tuple[dict[str, int], dict[str, object], dict[str, int]]:
    from watui.storage import campaigns as campaign_store
    from watui.storage.database import Database

    async with Database(url) as db:
        summary = (await campaign_store.campaign_status(db, "demo-spring-sale")).as_json()
        by_status = await campaign_store.count_by_status(db, summary["id"])
        mismatches = await campaign_store.counters_match_rows(db, summary["id"])
    return by_status, summary, mismatches  # type: ignore[return-value]


def _sent_so_far(database: Path) -> int:
    import sqlite3

    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("select count(*) from recipients where status = 'sent'").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy for a moment
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_mid_campaign_on_the_real_stack_leaves_a_clean_database(tmp_path: Path) -> None:
    """`watui demo` (real engine, real client, mock API in its own process) on a pty; the
    terminal hangs up while it sends. Nothing may be left sending or in doubt."""
    import asyncio

    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30",
           "TMPDIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "watui", "demo", "--keep", "--contacts", "3000", "--rate", "200"],
        cwd=REPO, stdin=terminal, stdout=terminal, stderr=terminal, env=env,
        start_new_session=True,
    )
    os.close(terminal)
    mock_pids: list[int] = []
    try:
        deadline = time.monotonic() + 30
        database: Path | None = None
        while time.monotonic() < deadline:
            _read_until(controller, b"\x00never", time.monotonic() + 0.2)  # keep the pty drained
            database = next(iter(tmp_path.glob("watui-demo-*/demo.db")), None)
            if database is not None and _sent_so_far(database) >= 100:
                break
        assert database is not None and _sent_so_far(database) >= 100, "the demo never sent"
        mock_pids = _children(child.pid)
        child.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while child.poll() is None and time.monotonic() < deadline:
            _read_until(controller, b"\x00never", time.monotonic() + 0.1)
        assert child.poll() == 0, "the app did not exit cleanly on SIGHUP"
        by_status, summary, mismatches = asyncio.run(
            _database_state(f"sqlite+aiosqlite:///{database}")
        )
        assert by_status.get("sending", 0) == 0 and by_status.get("in_doubt", 0) == 0
        assert mismatches == {}
        assert 100 <= summary["sent"] < summary["total"], "stopped mid-campaign"
        assert summary["status"] == "paused"  # "stopped before the end; run it again"
        time.sleep(0.2)
        assert not [pid for pid in mock_pids if Path(f"/proc/{pid}").exists()
                    and "mock-api" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")], \
            "the demo's mock API outlived the app"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in mock_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.close(controller)
