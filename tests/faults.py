"""Helpers for the fault-injection tests: start `watui run` as a real process, and audit a
campaign afterwards against the mock API's ledger (what the "remote" API really accepted)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from tests import factories
from tests.test_engine_http import TOKEN
from watui.mockapi.server import MockCloudApi
from watui.storage.campaigns import counters_match_rows
from watui.storage.database import Database
from watui.storage.schema import recipients

#: Where every recipient must end up once a campaign has run to its end.
FINAL_STATUSES = {"sent", "failed", "in_doubt"}


def running_mock(**config: Any) -> contextlib.AbstractAsyncContextManager[MockCloudApi]:
    """The mock API as `tests.factories.running_mock`, with the engine tests' token."""
    return factories.running_mock(**{"access_token": TOKEN, **config})


async def spawn_run(name: str, env: dict[str, str], *, rate: float) -> asyncio.subprocess.Process:
    """`watui run NAME` as a child process (stdout/stderr discarded: it will be killed)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "run", name, "--rate", str(rate), "--quiet", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def run_to_end(name: str, env: dict[str, str], *, rate: float, timeout: float = 120) -> tuple[int, str]:
    """`watui run NAME` to its end; (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "run", name, "--rate", str(rate), "--quiet", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return await ended(process, f"watui run {name}", timeout)


async def ended(process: asyncio.subprocess.Process, what: str, timeout: float) -> tuple[int, str]:
    """(exit code, stderr) of ``process``; one that does not end within ``timeout`` fails."""
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        raise AssertionError(f"{what} hung; its stderr: {stderr.decode()[-3000:]}") from None
    return process.returncode or 0, stderr.decode()


async def status_counts(db: Database, campaign_id: int) -> dict[str, int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.status, func.count())
            .where(recipients.c.campaign_id == campaign_id).group_by(recipients.c.status)
        )
        return {status: int(count) for status, count in rows}


@dataclass(frozen=True)
class Audit:
    """What happened to every recipient, checked against the API's own ledger."""

    by_status: dict[str, int]
    lost: int  # rows not in a final status, or missing altogether
    duplicates: int  # phones the API accepted more than once
    sent_not_in_ledger: int  # rows marked sent whose message the API never accepted
    counter_mismatches: dict[str, tuple[int, int]]


async def audit(db: Database, campaign_id: int, mock: MockCloudApi, expected_total: int) -> Audit:
    by_status = await status_counts(db, campaign_id)
    accepted = Counter(entry.to for entry in mock.ledger)
    ledger_wamids = {entry.wamid for entry in mock.ledger}
    async with db.engine.connect() as conn:
        sent_wamids = (
            await conn.execute(
                select(recipients.c.wamid).where(
                    recipients.c.campaign_id == campaign_id, recipients.c.status == "sent"
                )
            )
        ).scalars().all()
    final = sum(count for status, count in by_status.items() if status in FINAL_STATUSES)
    return Audit(
        by_status=by_status,
        lost=expected_total - final,
        duplicates=sum(count - 1 for count in accepted.values() if count > 1),
        sent_not_in_ledger=sum(1 for wamid in sent_wamids if wamid not in ledger_wamids),
        counter_mismatches=await counters_match_rows(db, campaign_id),
    )


def assert_clean(result: Audit) -> None:
    """Nobody lost, nobody sent twice, every `sent` backed by the API, counters equal rows."""
    assert result.lost == 0, result
    assert result.duplicates == 0, result
    assert result.sent_not_in_ledger == 0, result
    assert result.counter_mismatches == {}, result
