"""The API goes away under a running campaign, over real HTTP against the mock and a real
database: the circuit breaker holds sending, nobody fails or is charged a retry for it, and
everyone is sent exactly once when the API is back (by the mock's ledger). A single recipient's
131000 is still that recipient's, and `watui run` gives up only after send.max_outage_s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from tests.factories import make_campaign
from tests.faults import assert_clean, audit, run_to_end, running_mock, status_counts
from tests.test_client_mock import closed_port
from tests.test_engine_http import env_for, settings_for
from tests.test_engine_logic import ScriptedClient, api_error, fast_settings
from watui.engine import breaker
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.storage import claims, leases
from watui.storage.database import Database
from watui.storage.schema import attempts, recipients
from watui.whatsapp.client import WhatsAppClient

RATE = 200
TOTAL = 400
PHASE_TIMEOUT = 10.0


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def failed_probes(sender: CampaignSender) -> int:
    return sum(event.text.startswith("API still unreachable") for event in sender.metrics.events_since(0))


def most_in_one_second(times: list[float]) -> int:
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture
def quick_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probes after 0.1, 0.2, 0.4, 0.4 ... s: each phase of the outage meets one soon."""
    monkeypatch.setattr(breaker, "FIRST_WAIT", 0.1)
    monkeypatch.setattr(breaker, "MAX_WAIT", 0.4)


async def play_outage(mock: MockCloudApi, sender: CampaignSender) -> float:
    """A gateway refusing (bare 503), then the API stopped (connections refused), then Meta's
    131000s, each until a probe has met it; returns when the API came back (monotonic).

    The gateway goes first so that the API stops between requests: a server that dies under
    a request leaves it in doubt (maybe accepted), which is right, but not this test's point."""
    await until(lambda: len(mock.ledger) >= 100, "the first sends")
    mock.update_config({"refuse_status": 503})
    await until(lambda: sender.metrics.outage is not None and sender.metrics.in_flight == 0,
                "the breaker to open")
    await until(lambda: failed_probes(sender) >= 1, "a probe to meet the refusing gateway")
    port = int(mock.base_url.rsplit(":", 1)[1])
    await mock.stop()
    met = failed_probes(sender)
    await until(lambda: failed_probes(sender) > met, "a probe to meet the stopped API")
    mock.update_config({"refuse_status": None, "transient_rate": 1.0})
    await mock.start(port=port)
    met = failed_probes(sender)
    await until(lambda: mock.counters["error_131000"] >= 1 and failed_probes(sender) > met,
                "a probe to meet the 131000s")
    mock.update_config({"transient_rate": 0.0})
    return time.monotonic()


@pytest.mark.usefixtures("quick_probes")
async def test_an_outage_fails_nobody_and_everyone_is_sent_once_when_it_is_back(
    database: Database,
) -> None:
    async with running_mock(latency=(0.005, 0.02), seed=5) as mock:
        campaign_id = await make_campaign(database, "outage", recipients_per_step=TOTAL)
        # The default safety rule (pause above 20% failures): answers during an outage must
        # not feed it.
        settings = settings_for(database.url, mock, rate=RATE)
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(database, client, settings, campaign_id)
            run = asyncio.create_task(sender.run())
            back_at = await play_outage(mock, sender)
            outcome = await asyncio.wait_for(run, 30)
        result = await audit(database, campaign_id, mock, TOTAL)
        arrivals_after = [entry.at for entry in mock.ledger if entry.at >= back_at]
        requests_seen = mock.counters["requests"]
    assert outcome.status is RunStatus.COMPLETED, outcome
    assert_clean(result)
    assert result.by_status == {"sent": TOTAL}, "nobody failed, nobody in doubt"
    assert len(mock.ledger) == TOTAL
    async with database.engine.connect() as conn:
        most_attempts = (await conn.execute(select(func.max(recipients.c.attempts)))).scalar_one()
        logged = dict((await conn.execute(
            select(attempts.c.http_status.is_(None), func.count())
            .where(attempts.c.outcome == "outage").group_by(attempts.c.http_status.is_(None))
        )).all())
        answered = (await conn.execute(
            select(func.count()).select_from(attempts).where(attempts.c.http_status.is_not(None))
        )).scalar_one()
    assert most_attempts == 1, "nobody was charged a retry for the outage"
    assert logged.get(True, 0) > 0 and logged.get(False, 0) > 0, "connect errors and 5xx logged"
    assert answered == requests_seen, "every request the API answered is in the attempt log"
    events = [event.text for event in sender.metrics.events_since(0)]
    assert any(text.startswith("API unreachable since ") for text in events)
    assert any(text.startswith("API back after ") for text in events)
    assert sender.metrics.outage is None
    # Back at the paced rate, not a burst that sends at once every row held in memory (hundreds);
    # the room either side is for arrivals that bunch on a busy machine.
    assert RATE * 0.5 <= most_in_one_second(arrivals_after) <= RATE * 1.25


async def test_one_recipients_131000_is_still_its_own_and_retries_together_trip_nothing(
    database: Database,
) -> None:
    """Numbers ending in 3 always get 131000: among successes each is retried as today, and
    their retries, due together with nothing else to send, are not taken for an outage."""
    campaign_id = await make_campaign(database, recipients_per_step=60)
    client = ScriptedClient(lambda phone, _n: api_error(131000, "Something went wrong", 500)
                            if phone.endswith("3") else None)
    sender = CampaignSender(database, client, fast_settings(), campaign_id)
    outcome = await asyncio.wait_for(sender.run(), 30)
    assert outcome.status is RunStatus.COMPLETED
    assert await status_counts(database, campaign_id) == {"sent": 54, "failed": 6}
    failing = [phone for phone in client.seen if phone.endswith("3")]
    assert len(failing) == 6 and {client.seen[phone] for phone in failing} == {3}
    assert not any(event.kind == "outage" for event in sender.metrics.events_since(0))


async def test_watui_run_gives_up_after_max_outage_s_with_nobody_failed(sqlite_url: str) -> None:
    unreachable = SimpleNamespace(base_url=f"http://127.0.0.1:{closed_port()}")
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, "unreachable", recipients_per_step=50)
        env = env_for(settings_for(sqlite_url, unreachable))  # type: ignore[arg-type]
        env["WATUI_SEND__MAX_OUTAGE_S"] = "1"
        started = time.monotonic()
        code, stderr = await run_to_end("unreachable", env, rate=100, timeout=30)
        took = time.monotonic() - started
        counts = await status_counts(db, campaign_id)
        async with db.engine.connect() as conn:
            charged = (await conn.execute(select(func.max(recipients.c.attempts)))).scalar_one()
    assert code == 3, stderr
    assert "API unreachable since " in stderr and "send.max_outage_s (1 s)" in stderr
    assert "Traceback" not in stderr
    assert counts == {"queued": 50} and charged == 0, "nobody failed or was charged"
    assert took < 15


async def test_renewed_leases_keep_waiting_rows_from_a_peers_recovery(database: Database) -> None:
    """Rows that wait in memory through a long outage keep their lease: a peer's recovery,
    after the first lease would have expired, leaves them alone."""
    campaign_id = await make_campaign(database, recipients_per_step=10)
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    now = time.time()
    ours = await claims.claim(database, step.id, "here:1:aa", 4, lease_seconds=60, now=now)
    theirs = await claims.claim(database, step.id, "far:2:bb", 3, lease_seconds=60, now=now)
    renewed = await leases.renew(database, "here:1:aa", [row.id for row in ours + theirs], now + 600)
    assert renewed == 4, "only our own claimed rows"
    moved = await leases.recover_in_doubt(database, campaign_id, now=now + 61)
    assert moved == 3, "the other owner's expired rows only"
    assert await status_counts(database, campaign_id) == {"sending": 4, "in_doubt": 3, "queued": 3}
