"""Engine decisions against a real database and a scripted client (no network, exact answers).

The scripted client answers each request by a rule on the phone number, so retries, permanent
failures, pauses and timeouts can be checked exactly. End-to-end behaviour over real HTTP against
the mock API is in test_engine_http.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.factories import make_campaign
from watui.engine.sender import CampaignSender, RunStatus
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import claims, leases, review
from watui.storage.contacts import ContactsSource
from watui.storage.creation import NewStep, create_campaign
from watui.storage.database import Database
from watui.storage.schema import RecipientStatus, attempts, campaigns, recipients
from watui.whatsapp.results import Accepted, ApiError, SendResult, TransportFailure, TransportReason

Rule = Callable[[str, int], SendResult | None]


def api_error(code: int, title: str = "error", status: int = 400) -> ApiError:
    return ApiError(status, code, None, f"(#{code}) {title}", "", "trace", 0.001)


class ScriptedClient:
    """Answers by rule; records every request (phone, time) as the API would see it."""

    def __init__(self, rule: Rule | None = None, latency: float = 0.0) -> None:
        self.rule = rule or (lambda _phone, _n: None)
        self.latency = latency
        self.requests: list[tuple[str, float]] = []
        self.seen: Counter[str] = Counter()
        self.accepted: Counter[tuple[str, str]] = Counter()  # (phone, template) the API accepted

    async def send(
        self, payload: dict[str, Any], on_written: Callable[[float], None] | None = None,
        url: object = None,
    ) -> SendResult:
        phone = payload["to"]
        self.seen[phone] += 1
        self.requests.append((phone, time.monotonic()))
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = self.rule(phone, self.seen[phone])
        if answer is not None:
            return answer
        self.accepted[(phone, payload["template"]["name"])] += 1
        return Accepted(f"wamid.{phone}.{self.seen[phone]}", phone.lstrip("+"), "accepted", 0.001)

    def connection_stats(self) -> tuple[int, int]:
        return len(self.requests), 1

    async def open_connections(self, count: int) -> int:
        return 0

    async def can_connect(self) -> bool:
        return False  # nothing behind a script to connect to: the outage guard probes alone

    async def aclose(self) -> None:
        return None


def fast_settings(**send: Any) -> Settings:
    return Settings(
        send={"rate": 2000, "flush_interval_ms": 20, **send},
        retry={"max_retries": 2, "delays": [0.2, 0.4]},
        safety={"max_failure_rate": 1.0},
    )


async def status_counts(db: Database, campaign_id: int) -> dict[str, int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.status, func.count())
            .where(recipients.c.campaign_id == campaign_id)
            .group_by(recipients.c.status)
        )
        return {status: count for status, count in rows}


async def assert_counters_match(db: Database, campaign_id: int) -> None:
    counts = await status_counts(db, campaign_id)
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).one()
    for column in ("sent", "failed", "in_doubt", "skipped"):
        assert getattr(row, column) == counts.get(column, 0), column


async def run(db: Database, client: ScriptedClient, campaign_id: int, settings: Settings | None = None):
    sender = CampaignSender(db, client, settings or fast_settings(), campaign_id)
    outcome = await asyncio.wait_for(sender.run(), 60)
    return sender, outcome


async def test_every_recipient_is_sent_exactly_once(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=300, steps_count=2)
    client = ScriptedClient(latency=0.002)
    _, outcome = await run(database, client, campaign_id)
    assert outcome.status is RunStatus.COMPLETED
    assert len(client.seen) == 300  # the same 300 numbers in both steps
    assert set(client.seen.values()) == {2}  # once per step
    assert len(client.accepted) == 600 and max(client.accepted.values()) == 1
    assert await status_counts(database, campaign_id) == {"sent": 600}
    await assert_counters_match(database, campaign_id)
    async with database.engine.connect() as conn:
        logged = (await conn.execute(select(func.count()).select_from(attempts))).scalar_one()
        status = (await conn.execute(select(campaigns.c.status))).scalar_one()
    assert logged == 600
    assert status == "completed"


async def test_steps_run_strictly_in_order(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=50, steps_count=2)
    order: list[str] = []

    class Recording(ScriptedClient):
        async def send(
            self, payload: dict[str, Any], on_written: Callable[[float], None] | None = None,
            url: object = None,
        ) -> SendResult:
            order.append(payload["template"]["name"])
            return await super().send(payload)

    await run(database, Recording(), campaign_id)
    assert order == ["template_0"] * 50 + ["template_1"] * 50


async def test_transient_errors_retry_with_the_configured_spacing(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=20)
    always_failing = "+15550000003"
    client = ScriptedClient(lambda phone, _n: api_error(131000, "Something went wrong", 500)
                            if phone == always_failing else None)
    await run(database, client, campaign_id)
    times = [at for phone, at in client.requests if phone == always_failing]
    assert len(times) == 3  # the first try and max_retries=2 retries
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4
    counts = await status_counts(database, campaign_id)
    assert counts == {"sent": 19, "failed": 1}
    async with database.engine.connect() as conn:
        row = (await conn.execute(select(recipients).where(recipients.c.phone == always_failing))).one()
    assert (row.attempts, row.last_error_code) == (3, 131000)
    await assert_counters_match(database, campaign_id)


async def test_a_retry_that_succeeds_is_sent_once(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=10)
    client = ScriptedClient(lambda phone, n: api_error(131016, "unavailable", 503)
                            if phone.endswith("5") and n == 1 else None)
    await run(database, client, campaign_id)
    assert await status_counts(database, campaign_id) == {"sent": 10}
    assert client.seen["+15550000005"] == 2


async def test_permanent_errors_are_never_retried(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=10)
    client = ScriptedClient(lambda phone, _n: api_error(131026, "undeliverable")
                            if phone.endswith("7") else None)
    await run(database, client, campaign_id)
    assert client.seen["+15550000007"] == 1
    assert await status_counts(database, campaign_id) == {"sent": 9, "failed": 1}


async def test_read_timeout_leaves_the_recipient_in_doubt_not_resent(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=10)
    timeout = TransportFailure(TransportReason.READ_TIMEOUT, "no answer in 30 s", 30.0)
    client = ScriptedClient(lambda phone, _n: timeout if phone.endswith("2") else None)
    await run(database, client, campaign_id)
    assert client.seen["+15550000002"] == 1
    assert await status_counts(database, campaign_id) == {"sent": 9, "in_doubt": 1}
    await assert_counters_match(database, campaign_id)


async def test_connect_errors_are_retried(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=5)
    refused = TransportFailure(TransportReason.CONNECT, "connection refused", 0.001)
    client = ScriptedClient(lambda _phone, n: refused if n == 1 else None)
    await run(database, client, campaign_id)
    assert await status_counts(database, campaign_id) == {"sent": 5}


async def test_account_error_pauses_at_once_and_resume_finishes_without_duplicates(
    database: Database,
) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=200)
    state = {"spam": True}

    def rule(_phone: str, _n: int) -> SendResult | None:
        if state["spam"] and len(client.requests) > 50:
            return api_error(131048, "Spam rate limit hit")
        return None

    client = ScriptedClient(rule, latency=0.001)
    _, outcome = await run(database, client, campaign_id, fast_settings(rate=500))
    assert outcome.status is RunStatus.PAUSED and outcome.by_safety_rule
    assert "131048" in (outcome.reason or "")
    async with database.engine.connect() as conn:
        row = (await conn.execute(select(campaigns))).one()
    assert row.status == "paused" and "131048" in row.pause_reason
    assert await status_counts(database, campaign_id) != {"sent": 200}
    await assert_counters_match(database, campaign_id)

    state["spam"] = False
    _, outcome = await run(database, client, campaign_id)
    assert outcome.status is RunStatus.COMPLETED
    assert await status_counts(database, campaign_id) == {"sent": 200}
    assert len(client.accepted) == 200 and max(client.accepted.values()) == 1


async def test_failure_rate_rule_pauses(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=400)
    client = ScriptedClient(lambda phone, _n: api_error(132000, "param mismatch")
                            if int(phone[-1]) < 5 else None)
    settings = Settings(send={"rate": 2000, "flush_interval_ms": 20},
                        safety={"max_failure_rate": 0.3, "window": 100, "min_outcomes": 50})
    _, outcome = await run(database, client, campaign_id, settings)
    assert outcome.status is RunStatus.PAUSED
    assert "failure rate" in (outcome.reason or "") and "132000" in (outcome.reason or "")
    assert len(client.requests) < 200


async def test_clean_stop_leaves_nothing_in_doubt_and_releases_claims(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=500)
    client = ScriptedClient(latency=0.05)
    sender = CampaignSender(database, client, fast_settings(rate=200), campaign_id)
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(0.5)
    sender.request_stop()
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.status is RunStatus.STOPPED
    counts = await status_counts(database, campaign_id)
    assert "sending" not in counts and "in_doubt" not in counts
    assert counts["sent"] == len(client.requests)
    await assert_counters_match(database, campaign_id)


async def test_rows_left_sending_by_a_dead_process_become_in_doubt(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=30)
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    dead_owner = "some-other-host:12345:abcdef"
    claimed = await claims.claim(database, step.id, dead_owner, 7, lease_seconds=60, now=time.time())
    assert len(claimed) == 7
    # Another host's lease has not expired yet: not touched.
    assert await leases.recover_in_doubt(database, campaign_id) == 0
    assert await leases.recover_in_doubt(database, campaign_id, now=time.time() + 61) == 7
    client = ScriptedClient()
    await run(database, client, campaign_id)
    assert await status_counts(database, campaign_id) == {"sent": 23, "in_doubt": 7}
    assert len(client.seen) == 23  # in-doubt rows are never resent automatically
    await assert_counters_match(database, campaign_id)


async def test_requeue_in_doubt_sends_them_and_reopens_the_campaign(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=10)
    timeout = TransportFailure(TransportReason.READ_TIMEOUT, "slow", 30.0)
    await run(database, ScriptedClient(lambda p, n: timeout if p.endswith("1") else None), campaign_id)
    assert (await campaign_store.campaign_row(database, campaign_id)).status == "completed"
    moved = await review.requeue(database, campaign_id, statuses=[RecipientStatus.IN_DOUBT])
    assert moved == 1
    assert (await campaign_store.campaign_row(database, campaign_id)).status == "paused"
    await run(database, ScriptedClient(), campaign_id)
    assert await status_counts(database, campaign_id) == {"sent": 10}
    await assert_counters_match(database, campaign_id)


async def test_throttle_answers_slow_the_pacer_and_are_retried(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=40)
    client = ScriptedClient(lambda _p, n: api_error(130429, "Rate limit hit") if n == 1 else None)
    sender, outcome = await run(database, client, campaign_id, fast_settings(rate=400))
    assert outcome.status is RunStatus.COMPLETED
    assert sender.pacer.effective_rate < 400 or sender.metrics.throttled.values(600)
    assert await status_counts(database, campaign_id) == {"sent": 40}
    assert any(event.kind == "throttled" for event in sender.metrics.events_since(0))


async def test_throttle_answers_at_full_pace_are_resent_at_once_and_not_charged(
    database: Database,
) -> None:
    """A burst of 130429s met at full pace is the API counting a send or two early: those
    recipients go back due at once with their attempts as they were. With the policy's delay
    (a day here) the run would wait for it; it completes instead."""
    campaign_id = await make_campaign(database, recipients_per_step=40)

    def throttled_once(phone: str, n: int) -> SendResult | None:
        return api_error(130429, "Rate limit hit") if n == 1 and phone.endswith("1") else None

    settings = fast_settings(rate=400)
    settings.retry.delays = [86_400.0]
    sender, outcome = await run(database, ScriptedClient(throttled_once), campaign_id, settings)
    assert outcome.status is RunStatus.COMPLETED
    assert await status_counts(database, campaign_id) == {"sent": 40}
    assert sender.metrics.retried_total == 0 and sender.metrics.throttled.values(600)
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.phone, recipients.c.attempts, attempts.c.outcome)
            .join(attempts, attempts.c.recipient_id == recipients.c.id)
            .where(recipients.c.phone.like("%1"))
            .order_by(attempts.c.id)
        )
        logged: dict[str, list[str]] = {}
        for phone, attempts_made, outcome_logged in rows:
            assert attempts_made == 1, "a throttle judged jitter is not charged to the recipient"
            logged.setdefault(phone, []).append(outcome_logged)
    assert len(logged) == 4 and set(map(tuple, logged.values())) == {("throttle-jitter", "accepted")}


async def test_a_dead_peers_rows_do_not_block_the_campaign(database: Database, monkeypatch) -> None:
    """A peer on another host died holding leases: once they expire, the live sender turns them
    in_doubt and finishes, instead of waiting for them forever."""
    import watui.engine.control as control_module

    monkeypatch.setattr(control_module, "CONTROL_INTERVAL", 0.05)
    monkeypatch.setattr(control_module, "RECOVERY_EVERY", 2)
    campaign_id = await make_campaign(database, recipients_per_step=20)
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    await claims.claim(database, step.id, "far-host:999:dead", 5, lease_seconds=0.2, now=time.time())
    client = ScriptedClient()
    _, outcome = await run(database, client, campaign_id)
    assert outcome.status is RunStatus.COMPLETED
    assert await status_counts(database, campaign_id) == {"sent": 15, "in_doubt": 5}
    await assert_counters_match(database, campaign_id)


ALWAYS_FAILING = "+34612345601"


async def campaign_with_policy(
    db: Database, tmp_path: Path, *, max_retries: int | None = None,
    retry_delays: tuple[float, ...] | None = None,
) -> int:
    """A two-recipient campaign created as the UI and the CLI do, with its own retry policy."""
    path = tmp_path / "contacts.csv"
    path.write_text(f"phone,name\n{ALWAYS_FAILING},A\n+34612345602,B\n")
    source = ContactsSource(path=path, body_params=("name",))
    created = await create_campaign(
        db, "own-policy", [NewStep("welcome", "en_US", source)],
        max_retries=max_retries, retry_delays=retry_delays,
    )
    return created.campaign_id


def failing_client() -> ScriptedClient:
    return ScriptedClient(lambda phone, _n: api_error(131000, "Something went wrong", 500)
                          if phone == ALWAYS_FAILING else None)


async def test_campaigns_own_max_retries_wins_over_the_settings(
    database: Database, tmp_path: Path
) -> None:
    campaign_id = await campaign_with_policy(database, tmp_path, max_retries=0)
    client = failing_client()
    await run(database, client, campaign_id)  # the settings say max_retries=2
    assert client.seen[ALWAYS_FAILING] == 1
    assert await status_counts(database, campaign_id) == {"sent": 1, "failed": 1}
    await assert_counters_match(database, campaign_id)


async def test_campaigns_own_retry_delays_win_over_the_settings(
    database: Database, tmp_path: Path
) -> None:
    campaign_id = await campaign_with_policy(database, tmp_path, max_retries=1, retry_delays=(1,))
    client = failing_client()
    await run(database, client, campaign_id)  # the settings say delays [0.2, 0.4]
    times = [at for phone, at in client.requests if phone == ALWAYS_FAILING]
    assert len(times) == 2
    assert times[1] - times[0] >= 1.0
    assert await status_counts(database, campaign_id) == {"sent": 1, "failed": 1}
