"""Waiting for the app under Pilot to be still: the one way every TUI test waits."""

from __future__ import annotations

from textual.pilot import Pilot


async def settle(pilot: Pilot[object]) -> None:
    """Let posted messages start their workers, wait for those, then for what they posted.

    Waiting for workers first missed a worker whose message (an ``Input.Changed``) was still
    queued: on a busy CI machine a snapshot then lacked the contacts preview."""
    for _ in range(2):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()
